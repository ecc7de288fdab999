"""Snapshots, one module per verb group: ``create`` (one VM, many at once), ``remove`` (remove,
protect), ``listing``, ``rollback`` (guided, undoable), ``purge`` (purge, retention, prune), over
vmconsole's ``records`` of them.

A snapshot is of the configured kind (``[snapshots] kind``): "image", one per-image snapshot of one
name on every disk taken at one instant (``instant``), which vm_manager lists, purges, removes and
rolls back; or "group", an RBD group snapshot of the VM's group.
Whatever the kind configured, both kinds are read, rolled back, protected, removed and purged, and so
are the per-image snapshots vm_manager makes.
"""

from vmconsole.core.snapshots.create import plan_bulk_snapshot, plan_snapshot_create
from vmconsole.core.snapshots.listing import SnapshotInfo, list_snapshots, select_vms, written_since
from vmconsole.core.snapshots.purge import (
    PurgePlan,
    RetentionPolicy,
    plan_purge,
    plan_purge_many,
    policies,
    prune_plan,
    purge_plan,
    retention_selection,
    set_policy,
)
from vmconsole.core.snapshots.records import last_rollback
from vmconsole.core.snapshots.remove import plan_snapshot_protect, plan_snapshot_remove
from vmconsole.core.snapshots.rollback import RollbackPlan, plan_rollback, plan_rollback_undo, rollback_plan

__all__ = [
    "PurgePlan",
    "RetentionPolicy",
    "RollbackPlan",
    "SnapshotInfo",
    "last_rollback",
    "list_snapshots",
    "plan_bulk_snapshot",
    "plan_purge",
    "plan_purge_many",
    "plan_rollback",
    "plan_rollback_undo",
    "plan_snapshot_create",
    "plan_snapshot_protect",
    "plan_snapshot_remove",
    "policies",
    "prune_plan",
    "purge_plan",
    "retention_selection",
    "rollback_plan",
    "select_vms",
    "set_policy",
    "written_since",
]
