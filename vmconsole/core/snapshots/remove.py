"""Remove, protect and unprotect a snapshot (group snapshots and vm_manager's per-image ones alike)."""

from __future__ import annotations

from vmconsole.core.services import Services
from vmconsole.core.snapshots.records import (
    current_records,
    find_snapshot,
    remove_record,
    stamp_record,
    vm_state,
    write_record,
)
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.domain.errors import ConflictError, NotFoundError
from vmconsole.domain.model import Snapshot, VmState


def children_of(services: Services, state: VmState, snap: Snapshot) -> list[str]:
    if snap.kind != "image":
        return []
    children: list[str] = []
    for disk in snap.disks:
        info = services.rbd.image_info(disk)
        if any(s.name == snap.name and s.protected for s in info.snapshots):
            children += services.rbd.children(disk)
    return children


def remove_snapshot(services: Services, vm: str, snap: Snapshot) -> None:
    if snap.kind == "group":
        services.rbd.group_snap_remove(vm, snap.name)
    else:
        for disk in snap.disks:
            services.rbd.image_snap_remove(disk, snap.name)
    remove_record(services, vm, snap.name)


def plan_snapshot_remove(services: Services, vm: str, name: str) -> Task:
    snap = _removable(services, vm, name)

    def precheck() -> None:
        # protected or cloned since the plan: removing it now would need an unprotect nobody asked for
        _removable(services, vm, name)

    def run(ctx: StepContext) -> None:
        remove_snapshot(services, vm, snap)
        ctx.data["_summary"] = f"snapshot {name} of {vm} removed"

    return Task(
        "snapshot-remove",
        vm,
        {"snapshot": name},
        # a removed snapshot cannot come back: no undo, and a failure after says what is gone
        [Step(f"remove snapshot {name}", run, point_of_no_return=True)],
        description=f"remove snapshot {name} of {vm}",
        precheck=precheck,
        kept=lambda data: (
            f"snapshot {name} of {vm} may be removed already (that cannot be undone):"
            f" `vmconsole snapshot list {vm}` shows what is left"
        ),
    )


def _removable(services: Services, vm: str, name: str) -> Snapshot:
    state = vm_state(services, vm)
    try:
        snap = find_snapshot(state, name)
    except NotFoundError as exc:
        exc.reason = "already_absent"  # the state asked for holds: Ansible reports it as ok
        raise
    if snap.protected:
        raise ConflictError(
            f"snapshot {name!r} of {vm} is protected",
            hint=f"unprotect it first: `vmconsole snapshot unprotect {vm} {name}`",
        )
    children = children_of(services, state, snap)
    if children:
        raise ConflictError(
            f"snapshot {name!r} of {vm} has linked clones: {', '.join(children)}",
            hint="flatten or remove the clones first",
        )
    return snap


def plan_snapshot_protect(services: Services, vm: str, name: str, protect: bool) -> Task:
    state = vm_state(services, vm)
    snap = find_snapshot(state, name)
    if snap.protected == protect:
        raise ConflictError(
            f"snapshot {name!r} of {vm} is already {'protected' if protect else 'unprotected'}",
            reason="already_protected" if protect else "already_unprotected",
        )
    if not protect and children_of(services, state, snap):
        raise ConflictError(f"snapshot {name!r} has linked clones and must stay protected")
    records = current_records(services, vm, list(snap.disks))

    def run(ctx: StepContext) -> None:
        record = dict(records.get(name, {"created": snap.created.isoformat() if snap.created else None}))
        record["protected"] = protect
        write_record(services, vm, name, record)
        stamp_record(services, vm, name, snap.kind, list(snap.disks))
        if snap.kind == "image":
            for disk in snap.disks:
                info = services.rbd.image_info(disk)
                current = next(s for s in info.snapshots if s.name == name)
                if current.protected != protect:
                    services.rbd.image_snap_protect(disk, name, protect)
        ctx.data["_summary"] = f"snapshot {name} of {vm} {'protected' if protect else 'unprotected'}"

    verb = "protect" if protect else "unprotect"
    return Task(
        f"snapshot-{verb}",
        vm,
        {"snapshot": name},
        [Step(f"{verb} snapshot {name}", run)],
        description=f"{verb} snapshot {name} of {vm}",
    )
