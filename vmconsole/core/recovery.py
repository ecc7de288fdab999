"""Tasks whose process died mid-way: find them in the journal and undo what they had done.

The journal entry of a task holds its operation, arguments and the ``data`` its steps recorded
*before* acting (the names of images, groups and snapshots they were about to create), so the undo
here needs nothing from the dead process.
"""

from __future__ import annotations

import contextlib
import os
import socket
from datetime import UTC, datetime
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.steps import stop_and_delete, undo_swap
from vmconsole.core.tasks import Step, Task
from vmconsole.domain import naming
from vmconsole.domain.errors import ConflictError, NotFoundError, VmConsoleError

SAME_HOST = socket.gethostname()


HEARTBEAT_GRACE = 45.0  # a running task refreshes its journal entry every 10 s


def _alive(entry: dict[str, Any]) -> bool:
    """Is the task's process still running? By its PID on this host, by its heartbeat elsewhere."""
    holder = str(entry.get("holder", ""))
    if not holder.endswith(f"@{SAME_HOST}"):
        try:
            updated = datetime.fromisoformat(str(entry.get("updated")))
        except ValueError:
            return False
        return (datetime.now(UTC) - updated).total_seconds() < HEARTBEAT_GRACE and entry.get("state") == "running"
    pid = entry.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def incomplete_tasks(services: Services) -> list[dict[str, Any]]:
    """Journal entries of tasks that are not running any more (their process is gone)."""
    entries = []
    for entry in services.journal.entries():
        entry["alive"] = _alive(entry)
        if entry["alive"] and entry.get("pid") == os.getpid():
            continue
        entries.append(entry)
    return [e for e in entries if not e["alive"] or e.get("state") == "needs-recovery"]


def forget(services: Services, task_id: str) -> None:
    journal = services.journal
    if not any(e.get("task") == task_id for e in journal.entries()):
        raise NotFoundError(f"no journal entry {task_id!r}", field="task")
    journal.remove(task_id)


def undo_task(services: Services, task_id: str) -> dict[str, Any]:
    """Undo what a dead task had done, under its VMs' locks, then drop its journal entry."""
    journal = services.journal
    entry = next((e for e in journal.entries() if e.get("task") == task_id), None)
    if entry is None:
        raise NotFoundError(f"no journal entry {task_id!r}", field="task")
    if _alive(entry):
        raise ConflictError(f"task {task_id} is still running (pid {entry.get('pid')})")
    vm = entry.get("vm")
    data: dict[str, Any] = dict(entry.get("data") or {})
    args: dict[str, Any] = dict(entry.get("args") or {})
    locks = [v for v in (vm, args.get("source")) if v]
    # the dead task's lock leases would free themselves within 30 s: break them now instead
    for locked_vm in locks:
        journal.break_lock(str(locked_vm), cookie=task_id)
    actions: list[str] = []

    def undo(ctx: Any) -> None:
        actions.extend(_undo(services, str(vm) if vm else None, entry.get("operation", ""), data, args))

    task = Task(
        f"recover-{entry.get('operation')}",
        vm,
        {"task": task_id},
        [Step("undo the completed steps", undo)],
        locks=locks,
        description=f"undo incomplete task {task_id}",
    )
    services.run(task)
    journal.remove(task_id)
    message = f"task {task_id} undone: " + ("; ".join(actions) if actions else "it had changed nothing")
    return {"task": task_id, "actions": actions, "message": message}


def lock_status(services: Services, vm: str) -> dict[str, Any]:
    journal = services.journal
    holder = journal.lock_holder(vm)
    lockers = services.rbd.lock_lockers(naming.lock_object(vm), "vmconsole")
    return {
        "vm": vm,
        "locked": bool(lockers),
        "holder": holder,
        "lockers": lockers,
        "holder_alive": _alive(holder) if holder else None,
    }


def break_lock(services: Services, vm: str, *, force: bool = False) -> list[str]:
    """Break a VM's lock when its holder is dead (a holder on another host needs ``force``)."""
    status = lock_status(services, vm)
    if not status["locked"]:
        raise ConflictError(f"{vm} is not locked")
    holder = status["holder"] or {}
    if status["holder_alive"]:
        raise ConflictError(
            f"{vm} is locked by a live process: {holder.get('holder')} pid {holder.get('pid')} "
            f"({holder.get('operation')})"
        )
    on_this_host = str(holder.get("holder", "")).endswith(f"@{SAME_HOST}")
    if not on_this_host and not force:
        raise ConflictError(
            f"{vm} is locked from another host ({holder.get('holder', 'unknown')}): vmconsole "
            "cannot see whether that process is alive",
            hint="check there, then use --force",
        )
    return services.journal.break_lock(vm)


def _undo(services: Services, vm: str | None, operation: str, data: dict[str, Any], args: dict[str, Any]) -> list[str]:
    actions: list[str] = []
    rbd = services.rbd
    primitives = services.primitives()
    if data.get("enabled") and vm and vm in primitives:
        stop_and_delete(services, vm, None)
        actions.append(f"removed the primitive of {vm}")
    if vm and (data.get("swap_new_in") or data.get("swap_old_moved")):
        undo_swap(services, vm, data)
        actions.append(f"put the previous {vm} back")
    saved = data.get("disabled_saved")
    # never re-enable a VM that is gone, or one whose disks a partial rollback left inconsistent
    if (
        saved
        and vm
        and vm not in services.primitives()
        and rbd.group_exists(vm)
        and not data.get("rolled_back_partially")
    ):
        services.pacemaker.modify_configuration(saved)
        if data.get("disabled_was_running"):
            services.pacemaker.set_target_role(vm, "Started")
        actions.append(f"re-enabled {vm}")
    group = data.get("group_created")
    images = [*data.get("created_images", []), *data.get("copied_images", []), *data.get("cloned", [])]
    for image in images:
        if group:
            with contextlib.suppress(VmConsoleError):
                rbd.group_remove_image(group, image)
        try:
            rbd.remove_image(image)
            actions.append(f"deleted image {image}")
        except NotFoundError:
            pass
    if group and rbd.group_exists(group) and not (group == vm and operation not in ("create", "clone")):
        leftover = rbd.group_images(group)
        if not leftover:
            rbd.remove_group(group)
            actions.append(f"deleted group {group}")
        else:
            actions.append(f"kept group {group}: it still holds {', '.join(leftover)}")
    for source_image in data.get("base_created", []):
        with contextlib.suppress(VmConsoleError):
            rbd.image_snap_remove(source_image, data["base_snapshot"])
            actions.append(f"removed snapshot {source_image}@{data['base_snapshot']}")
    if operation in ("create", "clone") and vm:
        with contextlib.suppress(VmConsoleError):
            rbd.remove_object(naming.snapshot_records_object(str(group or vm)))
    return actions
