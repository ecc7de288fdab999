"""The console's actions, declared once: the key bindings, the help, the command palette and the
``:`` command line are all built from this table, so they never disagree.

Every binding has an ``id`` (``vm.start``...) so a keymap can remap it (``App.set_keymap``).
Keys: nothing destructive on ``ctrl+d``/``ctrl+k`` (reflexes from shells and editors) or on a vim
motion; the destructive verbs are upper-case or ``delete``, and always go through a confirmation.
Every action has exactly one handler, in ``vmconsole.tui.handlers.HANDLERS`` under its name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionSpec:
    name: str  # what ``perform`` receives (``handlers.HANDLERS`` key), and the ``:`` verb
    key: str  # the default key (Textual key names, comma-separated)
    label: str  # short, for the footer
    description: str  # for the palette and the help
    mutating: bool  # changes the cluster: disabled in read-only mode
    needs_vm: bool = True  # acts on the VM under the cursor (or the one named on the command line)
    show: bool = False  # shown in the footer
    aliases: tuple[str, ...] = ()
    needs_node: bool = False  # acts on the node under the cluster pane's cursor (or the one named)

    @property
    def binding_id(self) -> str:
        if self.needs_node:
            return f"node.{self.name}"
        return f"vm.{self.name}" if self.needs_vm else f"console.{self.name}"


VM_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("detail", "enter", "Detail", "Open the VM's detail view (status, failure, disks, metadata)", False),
    ActionSpec(
        "log",
        "l",
        "Log/diagnose",
        "Why the VM failed: its failures (newest first, with their cause), Pacemaker's operations, the QEMU log",
        False,
        aliases=("diagnose",),
    ),
    ActionSpec("start", "s", "Start", "Start the VM (set target-role Started and wait)", True),
    ActionSpec("stop", "x", "Stop", "Stop the VM (y/n confirmation)", True),
    ActionSpec("enable", "e", "Enable", "Enable the VM: add its Pacemaker primitive and start it (y/n)", True),
    ActionSpec("disable", "E", "Disable", "Disable the VM: remove its primitive (y/n confirmation)", True),
    ActionSpec("cleanup", "c", "Cleanup", "Clear the VM's Pacemaker failures", True),
    ActionSpec("remove", "delete", "Remove", "Remove the VM and its disks (type the name to confirm)", True),
    ActionSpec("snapshot", "n", "Snapshot", "Take a snapshot of the VM", True, show=True, aliases=("snap",)),
    ActionSpec(
        "rollback", "R", "Rollback", "Guided rollback to a snapshot (impact, safety snapshot, undo)", True, show=True
    ),
    ActionSpec("purge", "P", "Purge", "Purge old snapshots (dry-run list first)", True),
    ActionSpec("clone", "C", "Clone", "Clone the VM (deep copy or linked)", True),
    ActionSpec(
        "flatten",
        "f",
        "Flatten",
        "Make a linked clone independent: copy what it shares with its source's snapshot (y/n)",
        True,
    ),
    ActionSpec(
        "move",
        "M",
        "Move",
        "Move (live-migrate) the VM to another online node: pick the node, then y/n",
        True,
        aliases=("migrate",),
    ),
    ActionSpec(
        "update",
        "u",
        "Update",
        "Update the VM in place: new domain XML and/or settings, review the diff, then confirm",
        True,
        aliases=("edit",),
    ),
    ActionSpec("metadata", "m", "Metadata", "View and edit the VM's metadata", False, aliases=("meta",)),
    ActionSpec("config", "v,y", "XML", "View the VM's domain XML (_base_xml vs xml diff)", False, aliases=("xml",)),
    ActionSpec(
        "colocate",
        "W",
        "Colocation",
        "Keep the VM on the same node as other resources (colocation, strong or not)",
        True,
        aliases=("colocation", "constraint"),
    ),
    ActionSpec(
        "remote",
        "Z",
        "Pcmk remote",
        "The pacemaker-remote node the VM carries: add it (name, address, port, timeout) or remove it",
        True,
        aliases=("pacemaker-remote",),
    ),
    ActionSpec(
        "retention",
        "K",
        "Retention",
        "The VM's snapshot retention policy (keep the last N, one a day for D days) and its prune, dry run first",
        False,
        aliases=("policy",),
    ),
    ActionSpec(
        "lock", "L", "Lock", "Who holds the VM's operation lock; break a dead holder's lock (typed name)", False
    ),
    ActionSpec("console", "o", "Console", "Attach to the VM's serial console (virsh console)", True),
    ActionSpec("mark", "space", "Mark", "Mark or unmark the VM for a bulk snapshot", False),
)

GLOBAL_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("create", "a", "Create", "Create a VM from a disk image and a domain XML", True, needs_vm=False),
    ActionSpec(
        "import",
        "I",
        "Import",
        "Import a VM defined in this host's libvirt into the cluster (add-to-cluster)",
        True,
        needs_vm=False,
        aliases=("add-to-cluster",),
    ),
    ActionSpec(
        "bulk-snapshot", "N", "Bulk snap", "Snapshot every marked VM at once (type the count)", True, needs_vm=False
    ),
    ActionSpec("tasks", "t", "Tasks", "List running and finished tasks", False, needs_vm=False, show=True),
    ActionSpec(
        "timeline",
        "T",
        "Timeline",
        "What happened, newest first: failures, operations, nodes, libvirt events, tasks (who, from where)",
        False,
        needs_vm=False,
        show=True,
    ),
    ActionSpec(
        "failed",
        "exclamation_mark",
        "Failed only",
        "Show only the VMs that failed (again: every VM)",
        False,
        needs_vm=False,
    ),
    ActionSpec(
        "prune",
        "B",
        "Prune all",
        "Apply every VM's retention policy: the dry run of each, then type the count to remove",
        True,
        needs_vm=False,
    ),
    ActionSpec("history", "H", "History", "The audit history of operations", False, needs_vm=False),
    ActionSpec("recover", "F", "Recover", "Incomplete tasks left by a killed vmconsole", False, needs_vm=False),
    ActionSpec("refresh", "r,f5", "Refresh", "Read the cluster state now", False, needs_vm=False),
)

ALL_ACTIONS: tuple[ActionSpec, ...] = VM_ACTIONS + GLOBAL_ACTIONS

BY_NAME: dict[str, ActionSpec] = {a.name: a for a in ALL_ACTIONS}
for _spec in ALL_ACTIONS:
    for _alias in _spec.aliases:
        BY_NAME[_alias] = _spec

# Node actions: bound in the cluster pane (on the node under its cursor), listed per node in the
# palette, and ``:standby hv1`` / ``:online hv1`` on the command line. Not on the VM table's keys.
NODE_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "standby",
        "S",
        "Standby (drain)",
        "Put the node in standby: its VMs move away (type the node name to confirm)",
        True,
        needs_vm=False,
        needs_node=True,
        aliases=("drain", "node-standby"),
    ),
    ActionSpec(
        "online",
        "O",
        "Online",
        "Bring the node back online: it can host VMs again (y/n confirmation)",
        True,
        needs_vm=False,
        needs_node=True,
        aliases=("node-online",),
    ),
)
for _spec in NODE_ACTIONS:
    BY_NAME[_spec.name] = _spec
    for _alias in _spec.aliases:
        BY_NAME[_alias] = _spec

# Actions that are not VM/console verbs but that the snapshot pane offers on its own row.
SNAPSHOT_REMOVE = ActionSpec(
    "snapshot-remove", "delete", "Remove snap", "Remove the snapshot under the cursor (y/n confirmation)", True
)
SNAPSHOT_PROTECT = ActionSpec("snapshot-protect", "p", "Protect", "Protect or unprotect the snapshot", True)
BY_NAME[SNAPSHOT_REMOVE.name] = SNAPSHOT_REMOVE
BY_NAME[SNAPSHOT_PROTECT.name] = SNAPSHOT_PROTECT
METADATA_SET = ActionSpec("metadata-set", "", "Set metadata", "Set or remove a metadata key", True)
RECOVERY_UNDO = ActionSpec("recovery-undo", "", "Undo task", "Undo an incomplete task's completed steps", True)
LOCK_BREAK = ActionSpec("lock-break", "", "Break lock", "Break the lock of a dead holder", True)
POLICY_SET = ActionSpec("policy-set", "", "Set policy", "Set the VM's snapshot retention policy", True)

# Offered on a finished task (undo after a rollback, force after a stop that did not finish); also
# ``:rollback-undo vm`` / ``:force-stop vm``. Gated like every mutating action.
FOLLOW_UPS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "rollback-undo", "", "Undo rollback", "Undo the last rollback of the VM (back to its safety snapshot)", True
    ),
    ActionSpec("force-stop", "", "Force stop", "Stop the VM, forcing it off if it does not stop in time", True),
)
for _spec in FOLLOW_UPS:
    BY_NAME[_spec.name] = _spec
