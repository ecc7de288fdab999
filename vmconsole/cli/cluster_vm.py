"""The commands of the ``cluster_vm`` Ansible module, a drop-in for SEAPATH's, on vmconsole's core.

The module file (``ansible/plugins/modules/cluster_vm.py``) declares the options and reports; this
module does the work, in the vmconsole installed on the hypervisor, so that the module and the code it
drives are always of one version. Every change is a core plan run as a task (locks, journal, history:
the same as the console and the CLI); nothing goes through the CLI or a shell.

The contract, command by command:
- check mode plans and changes nothing (the services are read-only: core refuses any change), and
  ``changed`` says whether the real run would change something;
- ``changed`` is true exactly when something changed: a state that holds already (an enabled VM
  enabled, a Started VM started, an absent VM removed, an absent snapshot removed, a colocation that
  is recorded already) is ``ok``, with core's ``already_*`` reason; a real conflict fails with core's
  message;
- an option is honoured by the command it is given to, or refused: never accepted and dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vmconsole.core import snapshots, vms
from vmconsole.core.services import Services
from vmconsole.core.tasks import Task
from vmconsole.domain import validate
from vmconsole.domain.errors import NotFoundError, OperationIncomplete, ValidationError, VmConsoleError
from vmconsole.domain.model import VmStatus

COMMANDS = (
    "create",
    "remove",
    "list_vms",
    "start",
    "status",
    "stop",
    "clone",
    "list_snapshots",
    "create_snapshot",
    "remove_snapshot",
    "rollback_snapshot",
    "purge_image",
    "list_metadata",
    "get_metadata",
    "disable",
    "enable",
    "define_colocation",
    "add_pacemaker_remote",
    "remove_pacemaker_remote",
)

# what SEAPATH's module requires per command (its ``required_if``)
REQUIRED: dict[str, tuple[str, ...]] = {
    "create": ("name", "xml", "system_image"),
    "clone": ("name", "src_name"),
    "remove": ("name",),
    "start": ("name",),
    "stop": ("name",),
    "status": ("name",),
    "enable": ("name",),
    "disable": ("name",),
    "list_metadata": ("name",),
    "get_metadata": ("name", "metadata_name"),
    "purge_image": ("name",),
    "create_snapshot": ("name", "snapshot_name"),
    "remove_snapshot": ("name", "snapshot_name"),
    "rollback_snapshot": ("name", "snapshot_name"),
    "list_snapshots": ("name",),
    "define_colocation": ("name", "colocated_vms"),
    "add_pacemaker_remote": ("name", "remote_name", "remote_address"),
    "remove_pacemaker_remote": ("name",),
}

_SETTINGS = (
    "preferred_host",
    "pinned_host",
    "live_migration",
    "migration_user",
    "stop_timeout",
    "migrate_to_timeout",
    "migration_downtime",
    "priority",
    "pacemaker_meta",
    "pacemaker_params",
    "pacemaker_utilization",
    "crm_config_cmd",
    "metadata",
)
_NEW_VM = ("xml", "force", "enable", "nostart", *_SETTINGS)
# the options each command honours, besides ``command`` and ``name``
OPTIONS: dict[str, frozenset[str]] = {
    "create": frozenset((*_NEW_VM, "system_image", "additional_disks", "disk_bus")),
    "clone": frozenset(
        (
            *_NEW_VM,
            "src_name",
            "clear_constraint",
            "clear_pacemaker_meta",
            "clear_pacemaker_params",
            "clear_pacemaker_utilization",
        )
    ),
    "stop": frozenset(("force",)),
    "enable": frozenset(("nostart",)),
    "create_snapshot": frozenset(("snapshot_name",)),
    "remove_snapshot": frozenset(("snapshot_name",)),
    "rollback_snapshot": frozenset(("snapshot_name",)),
    "purge_image": frozenset(("purge_date", "purge_number")),
    "get_metadata": frozenset(("metadata_name",)),
    "define_colocation": frozenset(("colocated_vms", "strong")),
    "add_pacemaker_remote": frozenset(("remote_name", "remote_address", "remote_port", "remote_timeout")),
}
# an option left at these values was not given
DEFAULTS: dict[str, Any] = {
    "force": False,
    "enable": True,
    "additional_disks": [],
    "clear_constraint": False,
    "clear_pacemaker_meta": False,
    "clear_pacemaker_params": False,
    "clear_pacemaker_utilization": False,
    "strong": False,
}
# options of the module itself, not of a command
MODULE_OPTIONS = frozenset(("command", "config"))
STATUS_UNDEFINED = "Undefined"  # SEAPATH's status of a VM that does not exist (its deployment role tests it)


@dataclass
class Outcome:
    """What the module reports: ``changed``, a message, the command's return keys, warnings."""

    changed: bool = False
    msg: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_result(self) -> dict[str, Any]:
        return {"changed": self.changed, "msg": self.msg, **self.values}


def given(params: Mapping[str, Any], option: str) -> bool:
    value = params.get(option)
    return value is not None and value != DEFAULTS.get(option)


def check_params(params: Mapping[str, Any]) -> str:
    """The command, once its required options are there and it was given no option it would not
    honour (SEAPATH's module accepted them all and dropped most); a ValidationError otherwise."""
    command = params.get("command")
    if command not in COMMANDS:
        raise ValidationError(f"unknown command {command!r}; one of: {', '.join(COMMANDS)}", field="command")
    missing = [o for o in REQUIRED.get(command, ()) if params.get(o) in (None, "", [], {})]
    if missing:
        raise ValidationError(f"{', '.join(missing)} required when command is {command}", field=missing[0])
    honoured = OPTIONS.get(command, frozenset()) | MODULE_OPTIONS | ({"name"} if command != "list_vms" else set())
    dropped = sorted(o for o in params if o not in honoured and given(params, o))
    if dropped:
        raise ValidationError(
            f"{', '.join(dropped)} {'does' if len(dropped) == 1 else 'do'} nothing for command {command}:"
            " refused rather than ignored",
            field=dropped[0],
            hint=_hint(command, dropped),
        )
    return str(command)


def _hint(command: str, dropped: list[str]) -> str:
    if command == "create_snapshot" and "force" in dropped:
        return "an existing snapshot of that name is kept (ok, unchanged): remove it first to take it again"
    if command == "clone" and {"disk_bus", "additional_disks", "system_image"} & set(dropped):
        return "a clone copies the source's disks and keeps its disk bus"
    if command == "list_vms":
        return "list_vms takes no VM name"
    takes = ", ".join(sorted(OPTIONS.get(command, ()))) or "no option besides name"
    return f"{command} takes: {takes}"


# ---------------------------------------------------------------------------------------------- values


def _scalar(value: Any, option: str) -> str:
    """A metadata or Pacemaker value as vm_manager stores it: text; YAML's booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValidationError(f"expected a text or number value, got {type(value).__name__}", field=option)


def _text_map(value: Mapping[str, Any] | None, option: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(f"expected a dictionary, got {type(value).__name__}", field=option)
    return {str(k): _scalar(v, f"{option}.{k}") for k, v in value.items()}


def _optional_text(value: Any, option: str) -> str | None:
    return None if value is None else _scalar(value, option)


def vm_options(params: Mapping[str, Any]) -> vms.VmOptions:
    """The shared settings of create and clone, as core takes them."""
    return vms.VmOptions(
        pinned_host=params.get("pinned_host"),
        preferred_host=params.get("preferred_host"),
        live_migration=params.get("live_migration"),
        migration_user=params.get("migration_user"),
        stop_timeout=_optional_text(params.get("stop_timeout"), "stop_timeout"),
        migrate_to_timeout=_optional_text(params.get("migrate_to_timeout"), "migrate_to_timeout"),
        migration_downtime=_optional_text(params.get("migration_downtime"), "migration_downtime"),
        priority=_optional_text(params.get("priority"), "priority"),
        pacemaker_meta=_text_map(params.get("pacemaker_meta"), "pacemaker_meta"),
        pacemaker_params=_text_map(params.get("pacemaker_params"), "pacemaker_params"),
        pacemaker_utilization=_text_map(params.get("pacemaker_utilization"), "pacemaker_utilization"),
        crm_config_cmd=tuple(params.get("crm_config_cmd") or ()),
        metadata=_text_map(params.get("metadata"), "metadata"),
        enable=params.get("enable", True) is not False,
        start=not params.get("nostart"),
    )


def purge_before(purge_date: Mapping[str, Any], now: datetime | None = None) -> datetime:
    """SEAPATH's ``purge_date``: ``date`` + ``time`` (local time), ``iso_8601`` (its zone when it has
    one, else local time) or ``posix`` (seconds since 1970-01-01 UTC: SEAPATH documented milliseconds
    and read seconds; this module reads seconds and documents seconds)."""
    date, time, iso, posix = (purge_date.get(k) for k in ("date", "time", "iso_8601", "posix"))
    forms = sum(1 for f in (date is not None or time is not None, iso is not None, posix is not None) if f)
    if forms != 1:
        raise ValidationError("give one of: date and time, iso_8601, posix", field="purge_date")
    if posix is not None:
        if isinstance(posix, bool) or not isinstance(posix, int) or posix < 0:
            raise ValidationError(f"expected whole seconds since 1970, got {posix!r}", field="purge_date.posix")
        return datetime.fromtimestamp(posix, UTC)
    if iso is not None:
        return validate.parse_datetime(iso, field="purge_date.iso_8601").value
    if date is None or time is None:
        raise ValidationError("date and time go together", field="purge_date")
    if not isinstance(date, str) or not validate_date_only(date):
        raise ValidationError(f"expected YYYY-MM-DD, got {date!r}", field="purge_date.date")
    return validate.parse_datetime(f"{date} {time}", field="purge_date.time").value


def validate_date_only(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- tasks


class Runner:
    """Plan, then (not in check mode) run: the one path every changing command takes."""

    def __init__(self, services: Services, *, check_mode: bool, cancel: threading.Event | None = None) -> None:
        self.services = services
        self.check_mode = check_mode
        self.cancel = cancel or threading.Event()

    def task(self, plan: Callable[[], Task]) -> Outcome:
        try:
            task = plan()
        except VmConsoleError as exc:
            if exc.already_done:
                return Outcome(False, exc.message, {"reason": exc.reason})
            raise
        warnings = list(task.warnings)
        plan_values = {"plan": plan_document(task)}
        if self.check_mode:
            return Outcome(True, f"would {task.description or task.operation}", plan_values, warnings)
        task.args["via"] = "ansible cluster_vm"  # the history says which face ran it
        try:
            result = self.services.run(task, self.cancel)
        except VmConsoleError as exc:
            # planned as a change, found done already under the lock (another operator was faster)
            if exc.already_done:
                return Outcome(False, exc.message, {"reason": exc.reason}, warnings)
            raise
        return Outcome(True, result.message, {**plan_values, "task": result.to_dict()}, warnings)


def plan_document(task: Task) -> dict[str, Any]:
    return {
        "operation": task.operation,
        "vm": task.vm,
        "description": task.description,
        "steps": [s.name for s in task.steps],
    }


def run(
    services: Services,
    params: Mapping[str, Any],
    *,
    check_mode: bool = False,
    cancel: threading.Event | None = None,
) -> Outcome:
    """One ``cluster_vm`` call; raises VmConsoleError (the module fails with its message and reason)."""
    command = check_params(params)
    runner = Runner(services, check_mode=check_mode, cancel=cancel)
    return HANDLERS[command](runner, params)


def _name(params: Mapping[str, Any]) -> str:
    return str(params["name"])


def _list_vms(r: Runner, params: Mapping[str, Any]) -> Outcome:
    state = r.services.state()
    names = sorted(vm.name for vm in state.vms if vm.status is not VmStatus.UNDEFINED or vm.disks)
    if state.problems and not names:
        raise VmConsoleError("the cluster could not be read: " + "; ".join(state.problems), reason="partial")
    return Outcome(False, f"{len(names)} VM(s)", {"list_vms": names}, [f"partial: {p}" for p in state.problems])


def _status(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name = validate.vm_name(_name(params))
    try:
        vm = r.services.vm(name)
    except NotFoundError:
        return Outcome(False, f"{name} does not exist", {"status": STATUS_UNDEFINED, "node": None, "enabled": False})
    return Outcome(
        False, f"{name} is {vm.status.value}", {"status": vm.status.value, "node": vm.node, "enabled": vm.enabled}
    )


def _create(r: Runner, params: Mapping[str, Any]) -> Outcome:
    additional = params.get("additional_disks") or []
    if isinstance(additional, str) or not all(isinstance(d, str) for d in additional):
        raise ValidationError("give a list of image files", field="additional_disks")
    spec = vms.CreateSpec(
        name=_name(params),
        image=str(params["system_image"]),
        xml=str(params["xml"]),
        data_disks=list(additional),
        disk_bus=params.get("disk_bus") or "virtio",
        force=bool(params.get("force")),
        options=vm_options(params),
    )
    return r.task(lambda: vms.plan_create(r.services, spec))


def _clone(r: Runner, params: Mapping[str, Any]) -> Outcome:
    spec = vms.CloneSpec(
        source=str(params["src_name"]),
        name=_name(params),
        xml=params.get("xml"),
        force=bool(params.get("force")),
        clear_constraint=bool(params.get("clear_constraint")),
        clear_pacemaker_meta=bool(params.get("clear_pacemaker_meta")),
        clear_pacemaker_params=bool(params.get("clear_pacemaker_params")),
        clear_pacemaker_utilization=bool(params.get("clear_pacemaker_utilization")),
        options=vm_options(params),
    )
    return r.task(lambda: vms.plan_clone(r.services, spec))


def _exists(r: Runner, name: str) -> bool:
    return r.services.vm_exists(validate.vm_name(name))


def _remove(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name = _name(params)
    if not _exists(r, name):
        return Outcome(False, f"{name} does not exist", {"reason": "already_absent"})
    return r.task(lambda: vms.plan_remove(r.services, name))


def _start(r: Runner, params: Mapping[str, Any]) -> Outcome:
    return r.task(lambda: vms.plan_start(r.services, _name(params)))


def _stop(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name = _name(params)
    force = bool(params.get("force"))

    def plan() -> Task:
        # force powers off a VM a normal stop cannot stop; a Stopped VM is stopped already, force or not
        task = vms.plan_stop(r.services, name)
        return vms.plan_stop(r.services, name, force=True) if force else task

    return r.task(plan)


def _enable(r: Runner, params: Mapping[str, Any]) -> Outcome:
    return r.task(lambda: vms.plan_enable(r.services, _name(params), start=not params.get("nostart")))


def _disable(r: Runner, params: Mapping[str, Any]) -> Outcome:
    return r.task(lambda: vms.plan_disable(r.services, _name(params)))


def _snapshot_names(r: Runner, name: str) -> list[str]:
    return [i.snapshot.name for i in snapshots.list_snapshots(r.services, name, with_written=False)]


def _list_snapshots(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name = _name(params)
    infos = snapshots.list_snapshots(r.services, name, with_written=False)
    names = [i.snapshot.name for i in infos]
    details = [
        {
            "name": i.snapshot.name,
            "kind": i.snapshot.kind,
            "created": i.snapshot.created.isoformat() if i.snapshot.created else None,
            "protected": i.snapshot.protected,
            "safety": i.safety,
            "disks": list(i.snapshot.disks),
        }
        for i in infos
    ]
    # SEAPATH's module returns ``list_snapshot`` (its documentation said ``list_snapshots``): both are here
    return Outcome(
        False,
        f"{name} has {len(names)} snapshot(s)",
        {"list_snapshot": names, "list_snapshots": names, "snapshots": details},
    )


def _create_snapshot(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name, snapshot = _name(params), str(params["snapshot_name"])
    return r.task(lambda: snapshots.plan_snapshot_create(r.services, name, snapshot))


def _remove_snapshot(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name, snapshot = _name(params), str(params["snapshot_name"])
    validate.snapshot_name(snapshot, field="snapshot_name")
    if snapshot not in _snapshot_names(r, name):
        return Outcome(False, f"{name} has no snapshot {snapshot}", {"reason": "already_absent"})
    return r.task(lambda: snapshots.plan_snapshot_remove(r.services, name, snapshot))


def _rollback_snapshot(r: Runner, params: Mapping[str, Any]) -> Outcome:
    """Not a state but an action: every run rolls back (and reports changed), as SEAPATH's did; core
    takes a safety snapshot first (``vmconsole snapshot rollback VM --undo`` returns to it)."""
    name, snapshot = _name(params), str(params["snapshot_name"])

    def plan() -> Task:
        rollback = snapshots.rollback_plan(r.services, name, snapshot)
        task = snapshots.plan_rollback(r.services, rollback)
        task.warnings = (*task.warnings, *(w for w in rollback.warnings if w not in task.warnings))
        return task

    outcome = r.task(plan)
    if outcome.changed and not r.check_mode:
        last = snapshots.last_rollback(r.services, name) or {}
        if last.get("safety"):
            outcome.values["safety_snapshot"] = last["safety"]
    return outcome


def _purge_image(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name = _name(params)
    if params.get("purge_date") is not None and params.get("purge_number") is not None:
        raise ValidationError("purge_date and purge_number are mutually exclusive", field="purge_date")
    if params.get("purge_date") is not None:
        plan = snapshots.purge_plan(r.services, name, before=purge_before(params["purge_date"]))
    elif params.get("purge_number") is not None:
        plan = snapshots.purge_plan(r.services, name, oldest=validate.count(params["purge_number"], "purge_number"))
    else:
        plan = snapshots.purge_plan(r.services, name, all=True)
    values = {
        "purged": [s.name for s in plan.remove],
        "kept": [{"name": s.name, "reason": reason} for s, reason in plan.keep],
    }
    if not plan.remove:
        return Outcome(False, f"nothing to purge on {name} ({plan.mode})", {**values, "reason": "already_purged"})
    outcome = r.task(lambda: snapshots.plan_purge(r.services, plan))
    outcome.values.update(values)
    return outcome


def _list_metadata(r: Runner, params: Mapping[str, Any]) -> Outcome:
    values = vms.metadata_list(r.services, _name(params))
    return Outcome(False, f"{len(values)} key(s)", {"list_metadata": sorted(values), "metadata": values})


def _get_metadata(r: Runner, params: Mapping[str, Any]) -> Outcome:
    value = vms.metadata_get(r.services, _name(params), str(params["metadata_name"]))
    return Outcome(False, "", {"metadata_value": value})


def _define_colocation(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name = _name(params)
    resources = params.get("colocated_vms") or []
    if isinstance(resources, str) or not all(isinstance(x, str) for x in resources):
        raise ValidationError("give a list of resource names", field="colocated_vms")
    strong = bool(params.get("strong"))
    wanted = {"resources": list(resources), "strong": strong}
    # validates the names and that the resources exist, even when nothing is to be done
    vms.colocation_settings(r.services, name, resources, strong)
    recorded = r.services.vm(name).settings.get("colocations") or []
    if any(list(c.get("resources") or []) == wanted["resources"] and bool(c.get("strong")) == strong for c in recorded):
        return Outcome(False, f"{name} is colocated with {', '.join(resources)} already", {"reason": "already_defined"})
    return r.task(lambda: vms.plan_colocate(r.services, name, resources, strong))


def _remote_settings(r: Runner, name: str) -> dict[str, Any]:
    settings = r.services.vm(name).settings
    keys = ("remote_node", "remote_node_address", "remote_node_port", "remote_node_timeout")
    return {k: settings.get(k) for k in keys}


def _add_pacemaker_remote(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name = _name(params)
    port, timeout = params.get("remote_port"), params.get("remote_timeout")
    remote_name, address = str(params["remote_name"]), str(params["remote_address"])
    port_text = str(validate.count(_scalar(port, "remote_port"), "remote_port")) if port is not None else None
    timeout_text = (
        validate.timeout_seconds(_scalar(timeout, "remote_timeout"), "remote_timeout") if timeout is not None else None
    )
    wanted = {
        "remote_node": remote_name,
        "remote_node_address": address,
        "remote_node_port": port_text,
        "remote_node_timeout": timeout_text,
    }
    if _remote_settings(r, name) == wanted:
        return Outcome(False, f"{name} carries the remote node {remote_name} already", {"reason": "already_defined"})
    return r.task(
        lambda: vms.plan_remote(
            r.services, name, remote_name=remote_name, address=address, port=port_text, timeout=timeout_text
        )
    )


def _remove_pacemaker_remote(r: Runner, params: Mapping[str, Any]) -> Outcome:
    name = _name(params)
    if _remote_settings(r, name)["remote_node"] is None:
        return Outcome(False, f"{name} carries no pacemaker-remote node", {"reason": "already_absent"})
    return r.task(lambda: vms.plan_remote(r.services, name, remote_name=None))


HANDLERS: dict[str, Callable[[Runner, Mapping[str, Any]], Outcome]] = {
    "create": _create,
    "remove": _remove,
    "list_vms": _list_vms,
    "start": _start,
    "status": _status,
    "stop": _stop,
    "clone": _clone,
    "list_snapshots": _list_snapshots,
    "create_snapshot": _create_snapshot,
    "remove_snapshot": _remove_snapshot,
    "rollback_snapshot": _rollback_snapshot,
    "purge_image": _purge_image,
    "list_metadata": _list_metadata,
    "get_metadata": _get_metadata,
    "disable": _disable,
    "enable": _enable,
    "define_colocation": _define_colocation,
    "add_pacemaker_remote": _add_pacemaker_remote,
    "remove_pacemaker_remote": _remove_pacemaker_remote,
}
assert tuple(HANDLERS) == COMMANDS


def failure(exc: VmConsoleError) -> dict[str, Any]:
    """What the module reports when a command fails: core's message, reason and hint; ``changed`` when
    the task stopped part-way and kept what it had made (the message says what, and how to finish)."""
    return {
        "msg": str(exc),
        "reason": exc.reason,
        "error": exc.to_dict(),
        "changed": isinstance(exc, OperationIncomplete),
    }
