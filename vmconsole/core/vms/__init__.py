"""VM operations, planned as tasks, one module per verb group: ``lifecycle`` (enable, disable, start,
stop, cleanup, remove, console), ``create`` (create, import), ``clone`` (clone, flatten), ``update``
(update in place), ``metadata`` (metadata, colocation, pacemaker-remote); ``options`` holds the
settings they share. Each validates everything before it changes anything, then runs as a task whose
completed steps are undone in reverse on failure or cancel.
"""

from vmconsole.core.vms.clone import CloneSpec, plan_clone, plan_flatten
from vmconsole.core.vms.create import CreateSpec, LocalDomain, local_domains, plan_create, plan_import
from vmconsole.core.vms.lifecycle import (
    console_argv,
    plan_cleanup,
    plan_disable,
    plan_enable,
    plan_remove,
    plan_start,
    plan_stop,
)
from vmconsole.core.vms.metadata import (
    colocation_settings,
    domain_config,
    metadata_get,
    metadata_list,
    plan_colocate,
    plan_metadata_set,
    plan_remote,
    plan_uncolocate,
)
from vmconsole.core.vms.options import VmOptions
from vmconsole.core.vms.update import UpdatePlan, plan_update, update_plan

__all__ = [
    "CloneSpec",
    "CreateSpec",
    "LocalDomain",
    "UpdatePlan",
    "VmOptions",
    "colocation_settings",
    "console_argv",
    "domain_config",
    "local_domains",
    "metadata_get",
    "metadata_list",
    "plan_cleanup",
    "plan_clone",
    "plan_colocate",
    "plan_create",
    "plan_disable",
    "plan_enable",
    "plan_flatten",
    "plan_import",
    "plan_metadata_set",
    "plan_remote",
    "plan_remove",
    "plan_start",
    "plan_stop",
    "plan_uncolocate",
    "plan_update",
    "update_plan",
]
