"""Tasks whose process died mid-way: find them in the journal and undo what they had done.

The journal entry of a task holds its operation, arguments and the ``data`` its steps recorded
*before* acting (the names of images, groups and snapshots they were about to create), so the undo
here needs nothing from the dead process.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from vmconsole.core.journal import Journal
from vmconsole.core.services import Services
from vmconsole.core.snapshots.instant import release_held
from vmconsole.core.snapshots.records import disk_images, snapshot_exists
from vmconsole.core.snapshots.rollback import put_back_rollback_record
from vmconsole.core.steps import START_WAIT, stop_and_delete, undo_swap
from vmconsole.core.tasks import Step, Task
from vmconsole.core.vms.build import GROUPS_MADE, IMAGES_INTENDED, IMAGES_MADE, NAMES_CHECKED
from vmconsole.core.vms.clone import CLONE_SNAPSHOTS
from vmconsole.domain import naming
from vmconsole.domain.errors import ConflictError, NotFoundError, VmConsoleError
from vmconsole.domain.model import VmStatus

SAME_HOST = socket.gethostname()


def _alive(journal: Journal, entry: dict[str, Any]) -> bool:
    """Is the task's process still running? By its PID on this host; elsewhere by its lease, which a
    live task renews and a dead one lets run out (the cluster's clock, not this host's, decides)."""
    holder = str(entry.get("holder", ""))
    if not holder.endswith(f"@{SAME_HOST}"):
        return journal.task_alive(str(entry.get("task", "")))
    pid = entry.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _finished(entry: dict[str, Any]) -> bool:
    """The task ended well (only its journal entry survived): there is nothing to undo."""
    steps = entry.get("steps") or []
    return entry.get("state") == "finished" or (bool(steps) and set(steps) <= set(entry.get("done") or []))


def incomplete_tasks(services: Services) -> list[dict[str, Any]]:
    """Journal entries of tasks that are not running any more (their process is gone)."""
    journal = services.journal
    entries = []
    for entry in journal.entries():
        entry["alive"] = _alive(journal, entry)
        entry["finished"] = _finished(entry)
        if entry["alive"] and entry.get("pid") == os.getpid():
            continue
        entries.append(entry)
    return [e for e in entries if not e["alive"] or e.get("state") == "needs-recovery"]


def forget(services: Services, task_id: str) -> None:
    services.require_writable(f"forgetting task {task_id}")
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
    if _finished(entry):
        raise ConflictError(
            f"task {task_id} ({entry.get('operation')}) finished: there is nothing to undo",
            hint=f"`vmconsole recover {task_id} --forget` drops its journal entry",
        )
    if _alive(journal, entry):
        raise ConflictError(f"task {task_id} is still running (pid {entry.get('pid')})")
    vm = entry.get("vm")
    data: dict[str, Any] = dict(entry.get("data") or {})
    args: dict[str, Any] = dict(entry.get("args") or {})
    locks = [v for v in (vm, args.get("source")) if v]
    services.require_writable(f"undo of task {task_id}")  # first: breaking its locks is a change too
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
    verb = "finished (it had passed its point of no return)" if data.get("_no_return") else "undone"
    message = f"task {task_id} {verb}: " + ("; ".join(actions) if actions else "it had changed nothing")
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
        "holder_alive": _alive(journal, holder) if holder else None,
    }


def break_lock(services: Services, vm: str, *, force: bool = False) -> list[str]:
    """Break a VM's lock when its holder is dead (a holder on another host needs ``force``)."""
    services.require_writable(f"breaking the lock of {vm}")
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
    broken = services.journal.break_lock(vm)
    services.journal.audit(
        "lock-break",
        vm,
        {"holder": holder.get("holder"), "operation": holder.get("operation"), "force": force},
        f"lock of {vm} broken (held by {holder.get('holder', 'unknown')} for {holder.get('operation', 'unknown')})",
    )
    return broken


def _undo(services: Services, vm: str | None, operation: str, data: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """Undo what a dead task made, from what it recorded; past its point of no return, finish it."""
    actions = _release_guest(services, data)
    if data.get("_no_return"):
        return actions + _finish(services, vm, operation, data, args)
    rbd = services.rbd
    if data.get("enabled") and vm and vm in services.primitives():
        stop_and_delete(services, vm, None)
        actions.append(f"removed the primitive of {vm}")
    if vm and data.get("swap_renames"):
        undo_swap(services, vm, data)
        actions.append(f"put the previous {vm} back")
    saved = data.get("disabled_saved")
    # never re-enable a VM that is gone, or one whose disks a partial rollback left inconsistent
    if saved and vm and data.get("disabled") and vm not in services.primitives() and rbd.group_exists(vm):
        services.pacemaker.modify_configuration(saved)
        if data.get("disabled_was_running"):
            services.pacemaker.set_target_role(vm, "Started")
            services.wait_status(vm, {VmStatus.STARTED}, START_WAIT)
        actions.append(f"re-enabled {vm}")
    if data.get("saved_primitive") and data.get("primitive_rewritten") and vm:
        services.pacemaker.restore_vm(
            vm, data["saved_primitive"], set(data["added_constraints"]), data["saved_constraints"]
        )
        actions.append(f"put the previous primitive of {vm} back")
    if data.get("metadata_before") is not None and vm:
        image = naming.system_image(vm)
        before: dict[str, str] = data["metadata_before"]
        rbd.metadata_remove(image, [k for k in rbd.metadata(image) if k not in before])
        rbd.metadata_set_many(image, before)
        actions.append(f"put the previous configuration of {vm} back")
    actions += _remove_made(services, vm, operation, data)
    if operation.startswith("snapshot-rollback") and vm:
        # a safety snapshot is a net: it stays, with its record; --undo points where it pointed before
        put_back_rollback_record(services, vm, data)
        recorded = data.get("recorded")
        if recorded and not snapshot_exists(services, vm, recorded):
            rbd.omap_remove(naming.snapshot_records_object(vm), [recorded])  # a record of no snapshot
        if data.get("snapshot_taken"):
            actions.append(f"kept the safety snapshot {data['snapshot_taken']} of {vm}")
        return actions
    snap = data.get("snapshot_taken")
    if snap and vm and snap in rbd.group_snapshots(vm):
        rbd.group_snap_remove(vm, snap)
        actions.append(f"removed snapshot {snap} of {vm}")
    making = data.get("snapshot_making")  # its name was checked free under the lock: any disk's is this task's
    for image in disk_images(services, vm) if making and vm else []:
        with contextlib.suppress(NotFoundError):
            if making in rbd.image_snap_names(image):
                rbd.image_snap_remove(image, making)
                actions.append(f"removed snapshot {image}@{making}")
    if data.get("recorded") and vm:
        rbd.omap_remove(naming.snapshot_records_object(vm), [data["recorded"]])
    return actions


def _release_guest(services: Services, data: dict[str, Any]) -> list[str]:
    """A guest the dead task froze or paused runs freely again, first of all."""
    return release_held(services, data)


def _remove_made(services: Services, vm: str | None, operation: str, data: dict[str, Any]) -> list[str]:
    """Images, snapshots and groups the task made, and those it was making under names it had checked
    free under its lock (a kill between a create and its record)."""
    rbd = services.rbd
    actions: list[str] = []
    checked = bool(data.get(NAMES_CHECKED))
    made = [*data.get(IMAGES_MADE, []), *data.get("cloned", [])]
    if checked:
        made += [*data.get(IMAGES_INTENDED, []), *data.get("copied_images", [])]
    groups = list(data.get(GROUPS_MADE, []))
    if checked and data.get("group_created"):
        groups.append(data["group_created"])
    for image in dict.fromkeys(made):
        for group in groups:
            with contextlib.suppress(VmConsoleError):
                rbd.group_remove_image(group, image)
        try:
            rbd.remove_image(image)
            actions.append(f"deleted image {image}")
        except NotFoundError:
            pass
    for group in dict.fromkeys(groups):
        if not rbd.group_exists(group):
            continue
        leftover = rbd.group_images(group)
        if leftover:
            actions.append(f"kept group {group}: it still holds {', '.join(leftover)}")
            continue
        rbd.remove_group(group)
        actions.append(f"deleted group {group}")
        if operation in ("create", "clone", "import"):
            with contextlib.suppress(VmConsoleError):
                rbd.remove_object(naming.snapshot_records_object(group))
    for key, snapshot_key in (("base_created", "base_snapshot"), (CLONE_SNAPSHOTS, "clone_snapshot")):
        for image in data.get(key, []):
            with contextlib.suppress(VmConsoleError):
                rbd.image_snap_remove(image, data[snapshot_key])
                actions.append(f"removed snapshot {image}@{data[snapshot_key]}")
    for image in data.get("base_protected", []):
        if image not in data.get("base_created", []):
            with contextlib.suppress(VmConsoleError):
                rbd.image_snap_protect(image, data["base_snapshot"], False)
                actions.append(f"unprotected {image}@{data['base_snapshot']}")
    return actions


def _finish(
    services: Services, vm: str | None, operation: str, data: dict[str, Any], args: dict[str, Any]
) -> list[str]:
    """A task killed past its point of no return: what it made is kept, what it had left is done."""
    rbd = services.rbd
    actions: list[str] = []
    old = data.get("swap_old")
    if old and rbd.group_exists(old):
        for snapshot in rbd.group_snapshots(old):
            rbd.group_snap_remove(old, snapshot)
        for image in rbd.group_images(old):
            rbd.group_remove_image(old, image)
            rbd.remove_image(image)
        rbd.remove_group(old)
        actions.append(f"finished deleting the replaced {vm} ({old})")
    if operation == "remove" and vm:
        for snapshot in rbd.group_snapshots(vm) if rbd.group_exists(vm) else []:
            rbd.group_snap_remove(vm, snapshot)
        for image in args.get("images", []):
            if rbd.group_exists(vm) and image in rbd.group_images(vm):
                rbd.group_remove_image(vm, image)
            with contextlib.suppress(NotFoundError):
                rbd.remove_image(image)
        if rbd.group_exists(vm):
            rbd.remove_group(vm)
        rbd.remove_object(naming.snapshot_records_object(vm))
        actions.append(f"finished removing {vm}")
    if operation.startswith("snapshot-rollback") and vm:
        if data.get("rolled_back_partially"):
            actions.append(
                f"{vm} stays disabled: its disks may be partly rolled back; finish with "
                f"`vmconsole snapshot rollback {vm} {args.get('snapshot')} --no-safety` or `--undo`"
            )
        elif data.get("disabled_saved") and vm not in services.primitives() and rbd.group_exists(vm):
            services.pacemaker.modify_configuration(data["disabled_saved"])
            if data.get("disabled_was_running"):
                services.pacemaker.set_target_role(vm, "Started")
                services.wait_status(vm, {VmStatus.STARTED}, START_WAIT)
            actions.append(f"{vm} is rolled back to {args.get('snapshot')} and enabled again as it was")
    if operation in ("create", "clone", "import") and vm and not actions:
        actions.append(f"kept {vm}: it was built; enable or remove it (`vmconsole vm enable|remove {vm}`)")
    return actions
