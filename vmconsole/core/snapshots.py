"""Snapshots: consistent group snapshots with the VM's configuration recorded, guided rollback that
returns the VM to its previous state (and can itself be undone), purge with a dry-run plan,
retention policies, and bulk snapshots of many VMs at once.

vmconsole snapshots are RBD group snapshots of the VM's group: every disk at the same instant.
Snapshots made by vm_manager (per-image snapshots of the same name on each disk) are read, rolled
back, protected and removed too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.tasks import Step, StepContext, Task, now_iso, who
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import (
    ConflictError,
    NotFoundError,
    OperationFailed,
    ValidationError,
    VmConsoleError,
)
from vmconsole.domain.model import Snapshot, VmState, VmStatus
from vmconsole.domain.settings import RESERVED_KEYS, VmSettings

ROLLBACK_KEY = "__rollback__"  # in the records object: the last rollback, for --undo
PARALLEL = 64  # concurrent snapshot creates/removes: the monitor batches their commits
ROLLBACK_RATE = 200 * 1024**2  # bytes/s assumed when estimating a rollback's duration


# ---------------------------------------------------------------------------------------------- records
def _records(services: Services, vm: str) -> dict[str, dict[str, Any]]:
    from vmconsole.core.state import read_snapshot_records

    return read_snapshot_records(services.rbd, vm)


def _write_record(services: Services, vm: str, name: str, record: dict[str, Any]) -> None:
    services.rbd.omap_set(naming.snapshot_records_object(vm), {name: json.dumps(record).encode()})


def _remove_record(services: Services, vm: str, name: str) -> None:
    services.rbd.omap_remove(naming.snapshot_records_object(vm), [name])


def _config_of(metadata: dict[str, str]) -> dict[str, str]:
    """What a snapshot records of the VM's configuration: the XML and every internal setting."""
    return {k: v for k, v in metadata.items() if k in RESERVED_KEYS or k.startswith("_")}


def _vm(services: Services, vm: str) -> VmState:
    validate.vm_name(vm)
    return services.vm(vm)


def _snapshot(state: VmState, name: str) -> Snapshot:
    validate.snapshot_name(name)
    found = next((s for s in state.snapshots if s.name == name), None)
    if found is None:
        names = ", ".join(s.name for s in state.snapshots) or "none"
        raise NotFoundError(f"{state.name} has no snapshot {name!r} (it has: {names})", field="snapshot")
    return found


# ---------------------------------------------------------------------------------------------- create
def _freeze(services: Services, state: VmState, ctx: StepContext) -> Any:
    """Freeze the guest's filesystems through qemu-guest-agent when it can be reached; None if not."""
    import libvirt

    try:
        with services.libvirt() as lv:
            if state.node and state.node != lv.hostname():
                ctx.log(f"guest runs on {state.node}: no filesystem freeze from this host (crash-consistent)")
                return None
            dom = lv.conn.lookupByName(state.name)
            if "org.qemu.guest_agent.0" not in dom.XMLDesc(0):
                ctx.log("no qemu-guest-agent channel: snapshot is crash-consistent (no freeze)")
                return None
            frozen = dom.fsFreeze()
            ctx.log(f"froze {frozen} guest filesystem(s)")
            return dom
    except libvirt.libvirtError as exc:
        ctx.log(f"guest filesystem freeze skipped: {exc.get_error_message()}")
        return None


def plan_snapshot_create(
    services: Services, vm: str, name: str | None = None, *, freeze: bool = True, safety_of: str | None = None
) -> Task:
    state = _vm(services, vm)
    snap = validate.snapshot_name(name) if name is not None else validate.default_snapshot_name()
    if any(s.name == snap for s in state.snapshots):
        raise ConflictError(f"{vm} already has a snapshot named {snap!r}", field="snapshot")
    if not state.disks:
        raise ConflictError(f"{vm} has no disk to snapshot")
    return Task(
        "snapshot-create",
        vm,
        {"snapshot": snap, "freeze": freeze},
        _create_steps(services, state, snap, freeze=freeze, safety_of=safety_of),
        description=f"snapshot {vm} as {snap}",
    )


def _create_steps(
    services: Services, state: VmState, snap: str, *, freeze: bool, safety_of: str | None = None
) -> list[Step]:
    vm = state.name

    def record(ctx: StepContext) -> None:
        metadata = services.rbd.metadata(naming.system_image(vm))
        _write_record(
            services,
            vm,
            snap,
            {
                "created": now_iso(),
                "by": who(),
                "config": _config_of(metadata),
                "protected": False,
                "status": state.status.value,
                "safety_of": safety_of,
            },
        )

    def unrecord(ctx: StepContext) -> None:
        _remove_record(services, vm, snap)

    def take(ctx: StepContext) -> None:
        frozen = _freeze(services, state, ctx) if freeze and state.status is VmStatus.STARTED else None
        try:
            services.rbd.group_snap_create(vm, snap)
        finally:
            if frozen is not None:
                frozen.fsThaw()
                ctx.log("guest filesystems thawed")
        ctx.data["_summary"] = f"snapshot {snap} of {vm} created ({len(state.disks)} disk(s), one instant)"

    def untake(ctx: StepContext) -> None:
        if snap in services.rbd.group_snapshots(vm):
            services.rbd.group_snap_remove(vm, snap)

    return [
        Step("record the VM's configuration with the snapshot", record, unrecord, weight=0.2),
        Step(f"snapshot every disk of {vm} at once (RBD group snapshot)", take, untake),
    ]


# ---------------------------------------------------------------------------------------------- remove / protect
def _children_of(services: Services, state: VmState, snap: Snapshot) -> list[str]:
    if snap.kind != "image":
        return []
    children: list[str] = []
    for disk in snap.disks:
        info = services.rbd.image_info(disk)
        if any(s.name == snap.name and s.protected for s in info.snapshots):
            children += services.rbd.children(disk)
    return children


def _remove_snapshot(services: Services, vm: str, snap: Snapshot) -> None:
    if snap.kind == "group":
        services.rbd.group_snap_remove(vm, snap.name)
    else:
        for disk in snap.disks:
            services.rbd.image_snap_remove(disk, snap.name)
    _remove_record(services, vm, snap.name)


def plan_snapshot_remove(services: Services, vm: str, name: str) -> Task:
    state = _vm(services, vm)
    snap = _snapshot(state, name)
    if snap.protected:
        raise ConflictError(
            f"snapshot {name!r} of {vm} is protected",
            hint=f"unprotect it first: `vmconsole snapshot unprotect {vm} {name}`",
        )
    children = _children_of(services, state, snap)
    if children:
        raise ConflictError(
            f"snapshot {name!r} of {vm} has linked clones: {', '.join(children)}",
            hint="flatten or remove the clones first",
        )

    def run(ctx: StepContext) -> None:
        _remove_snapshot(services, vm, snap)
        ctx.data["_summary"] = f"snapshot {name} of {vm} removed"

    return Task(
        "snapshot-remove",
        vm,
        {"snapshot": name},
        [Step(f"remove snapshot {name}", run)],
        description=f"remove snapshot {name} of {vm}",
    )


def plan_snapshot_protect(services: Services, vm: str, name: str, protect: bool) -> Task:
    state = _vm(services, vm)
    snap = _snapshot(state, name)
    if snap.protected == protect:
        raise ConflictError(f"snapshot {name!r} of {vm} is already {'protected' if protect else 'unprotected'}")
    if not protect and _children_of(services, state, snap):
        raise ConflictError(f"snapshot {name!r} has linked clones and must stay protected")
    records = _records(services, vm)

    def run(ctx: StepContext) -> None:
        record = dict(records.get(name, {"created": snap.created.isoformat() if snap.created else None}))
        record["protected"] = protect
        _write_record(services, vm, name, record)
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


# ---------------------------------------------------------------------------------------------- list
@dataclass(frozen=True)
class SnapshotInfo:
    snapshot: Snapshot
    age_seconds: float | None
    written_since: int | None  # bytes written to the VM's disks since (lower bound for group snapshots)
    safety: bool
    clones: tuple[str, ...] = ()


def written_since(services: Services, state: VmState, snap: Snapshot) -> int | None:
    """Bytes written to the VM's disks since ``snap``, from RBD's diff (object granularity).

    For per-image snapshots this is RBD's own diff. For group snapshots librbd 16.2 cannot diff
    from a group snapshot by name, so it counts the objects allocated now that were not at the
    snapshot: new data only (a lower bound), said so by the callers.
    """
    import rbd

    total = 0
    for disk in snap.disks:
        if snap.kind == "image":
            value = services.rbd.written_since(disk, snap.name)
            if value is None:
                return None
            total += value
            continue
        try:
            info = services.rbd.image_info(disk)
            member = next(s for s in info.snapshots if s.group_snap_name == snap.name)
            at_snapshot = _allocated(services, disk, member.snap_id)
            now = _allocated(services, disk, None)
        except (StopIteration, rbd.Error, VmConsoleError):
            return None
        total += max(0, len(now - at_snapshot)) * (4 << 20)
    return total


def _allocated(services: Services, image: str, snap_id: int | None) -> set[int]:
    import rbd

    objects: set[int] = set()

    def collect(offset: int, length: int, exists: bool) -> int:
        if exists:
            objects.add(offset >> 22)
        return 0

    with rbd.Image(services.rbd.ioctx, image, read_only=True) as handle:
        if snap_id is not None:
            handle.set_snap_by_id(snap_id)
        handle.diff_iterate(0, handle.size(), None, collect, whole_object=True)
    return objects


def list_snapshots(services: Services, vm: str, *, with_written: bool = True) -> list[SnapshotInfo]:
    state = _vm(services, vm)
    records = _records(services, vm)
    now = datetime.now(UTC)
    result = []
    for snap in state.snapshots:
        record = records.get(snap.name, {})
        result.append(
            SnapshotInfo(
                snapshot=snap,
                age_seconds=(now - snap.created).total_seconds() if snap.created else None,
                written_since=written_since(services, state, snap) if with_written else None,
                safety=bool(record.get("safety_of")),
                clones=tuple(_children_of(services, state, snap)),
            )
        )
    return result


# ---------------------------------------------------------------------------------------------- rollback
@dataclass(frozen=True)
class RollbackPlan:
    vm: str
    snapshot: Snapshot
    status: VmStatus
    node: str | None
    enabled: bool
    will_stop: bool  # the VM runs now and will be stopped
    restart_after: bool  # it was Started and will be started again
    written_since: int | None
    expected_downtime: float  # seconds (an estimate)
    safety_snapshot: str | None
    restores_config: bool
    warnings: tuple[str, ...] = ()

    def summary(self) -> list[str]:
        lines = [
            f"VM {self.vm} ({self.status.value}{' on ' + self.node if self.node else ''})",
            f"roll back every disk to {self.snapshot.name} "
            f"({self.snapshot.created.isoformat() if self.snapshot.created else 'unknown time'})",
        ]
        if self.will_stop:
            lines.append(f"{self.vm} will be STOPPED during the rollback")
        if self.written_since is not None:
            lines.append(f"data written since the snapshot will be lost: at least {self.written_since} bytes")
        lines.append(
            "the configuration recorded with the snapshot is restored"
            if self.restores_config
            else "the configuration is kept (the snapshot has none recorded)"
        )
        lines.append(f"it will be {'started again' if self.restart_after else 'left ' + self.status.value} after")
        if self.safety_snapshot:
            lines.append(f"a safety snapshot {self.safety_snapshot} is taken first (rollback --undo returns to it)")
        else:
            lines.append("NO safety snapshot: the current state cannot be recovered")
        lines.append(f"expected downtime: about {self.expected_downtime:.0f} s")
        lines += [f"warning: {w}" for w in self.warnings]
        return lines


def rollback_plan(services: Services, vm: str, name: str, *, safety: bool = True) -> RollbackPlan:
    state = _vm(services, vm)
    snap = _snapshot(state, name)
    if snap.missing_on:
        raise ConflictError(
            f"snapshot {name!r} is missing on {', '.join(snap.missing_on)}: rolling back only "
            "some disks would make them inconsistent",
            field="snapshot",
        )
    if state.status in (VmStatus.STARTING, VmStatus.STOPPING):
        raise ConflictError(f"{vm} is {state.status.value}: wait until it settles")
    written = written_since(services, state, snap)
    running = state.status in (VmStatus.STARTED, VmStatus.FAILED) and state.node is not None
    stop_seconds = 10.0 if running else 0.0
    start_seconds = 10.0 if state.status is VmStatus.STARTED else 0.0
    downtime = stop_seconds + (written or 0) / ROLLBACK_RATE + 1.0 * len(snap.disks) + start_seconds
    warnings = []
    if state.status is VmStatus.FAILED:
        warnings.append(f"{vm} is Failed: its failure is cleared, and it is left stopped after the rollback")
    if snap.kind == "image":
        warnings.append("this snapshot was made per disk (vm_manager): its disks may not be mutually consistent")
    return RollbackPlan(
        vm=vm,
        snapshot=snap,
        status=state.status,
        node=state.node,
        enabled=state.enabled,
        will_stop=running,
        restart_after=state.status is VmStatus.STARTED,
        written_since=written,
        expected_downtime=downtime,
        safety_snapshot=f"safety-{datetime.now(UTC):%Y%m%d-%H%M%S}" if safety else None,
        restores_config=bool(snap.metadata.get("xml")),
        warnings=tuple(warnings),
    )


def plan_rollback(services: Services, plan: RollbackPlan) -> Task:
    from vmconsole.core.vms import _disable_step, _enable_steps

    vm = plan.vm
    snap = plan.snapshot
    state = services.vm(vm)
    steps: list[Step] = []
    if plan.safety_snapshot:
        steps += _create_steps(services, state, plan.safety_snapshot, freeze=True, safety_of=snap.name)
    if plan.enabled:
        disable = _disable_step(services, vm)
        inner_undo = disable.undo

        def undo_unless_partial(ctx: StepContext) -> None:
            # after a partial rollback the VM must stay down: its disks may disagree with each other
            if not ctx.data.get("rolled_back_partially") and inner_undo:
                inner_undo(ctx)

        steps.append(Step(disable.name, disable.run, undo_unless_partial, weight=2))

    def rollback(ctx: StepContext) -> None:
        services.wait_disks_released(vm, 60, tick=ctx.check_cancel)
        done: list[str] = []
        try:
            if snap.kind == "group":
                ctx.data["rolled_back_partially"] = True  # until the group rollback returns
                ctx.save()
                services.rbd.group_snap_rollback(vm, snap.name)
                done = list(snap.disks)
            else:
                for index, disk in enumerate(snap.disks):
                    ctx.progress(index, len(snap.disks), disk, unit="items")
                    ctx.data["rolled_back_partially"] = bool(done) or True
                    services.rbd.image_snap_rollback(disk, snap.name)
                    done.append(disk)
            ctx.data["rolled_back_partially"] = False
        except VmConsoleError as exc:
            if snap.kind == "group":
                state_text = f"disks {', '.join(snap.disks)} may be partly rolled back (the group rollback stopped)"
            else:
                rest = [d for d in snap.disks if d not in done]
                state_text = f"rolled back: {', '.join(done) or 'none'}; NOT rolled back: {', '.join(rest)}"
            raise OperationFailed(
                f"rollback of {vm} to {snap.name} failed: {exc.message}. {state_text}. {vm} is left disabled",
                hint=f"when the cluster is healthy, finish with `vmconsole snapshot rollback {vm} {snap.name} "
                "--no-safety`"
                + (f", or return with `vmconsole snapshot rollback {vm} --undo`" if plan.safety_snapshot else ""),
            ) from exc

    steps.append(Step(f"roll back {len(snap.disks)} disk(s) to {snap.name}", rollback, None, weight=3))

    if plan.restores_config:

        def restore(ctx: StepContext) -> None:
            image = naming.system_image(vm)
            current = services.rbd.metadata(image)
            recorded = dict(snap.metadata)
            stale = [k for k in current if k.startswith("_") and k not in recorded]
            services.rbd.metadata_remove(image, stale)
            services.rbd.metadata_set_many(image, recorded)
            VmSettings.from_metadata(recorded)

        steps.append(Step("restore the configuration recorded with the snapshot", restore, None, weight=0.2))

    def remember(ctx: StepContext) -> None:
        services.rbd.omap_set(
            naming.snapshot_records_object(vm),
            {
                ROLLBACK_KEY: json.dumps(
                    {
                        "snapshot": snap.name,
                        "safety": plan.safety_snapshot,
                        "at": now_iso(),
                        "by": who(),
                        "previous_status": plan.status.value,
                    }
                ).encode()
            },
        )

    steps.append(Step("remember the rollback (for --undo)", remember, None, weight=0.1))
    if plan.enabled:
        steps += _enable_steps(services, vm, start=plan.restart_after)
    summary = f"{vm} rolled back to {snap.name}" + (
        f"; undo with the safety snapshot {plan.safety_snapshot}" if plan.safety_snapshot else ""
    )

    def done(ctx: StepContext) -> None:
        ctx.data["_summary"] = summary

    steps.append(Step("done", done, None, weight=0.01))
    return Task(
        "snapshot-rollback",
        vm,
        {"snapshot": snap.name, "safety": plan.safety_snapshot},
        steps,
        description=f"roll {vm} back to {snap.name}",
    )


def last_rollback(services: Services, vm: str) -> dict[str, Any] | None:
    raw = services.rbd.omap_get(naming.snapshot_records_object(vm)).get(ROLLBACK_KEY)
    return dict(json.loads(raw)) if raw else None


def plan_rollback_undo(services: Services, vm: str) -> Task:
    """Return to the safety snapshot the last rollback took (the rollback itself is undone)."""
    validate.vm_name(vm)
    last = last_rollback(services, vm)
    if not last or not last.get("safety"):
        raise ConflictError(f"{vm} has no rollback to undo (no safety snapshot recorded)")
    plan = rollback_plan(services, vm, last["safety"], safety=False)
    task = plan_rollback(services, plan)
    task.operation = "snapshot-rollback-undo"
    task.description = f"undo the rollback of {vm} (return to {last['safety']})"
    return task


# ---------------------------------------------------------------------------------------------- purge
@dataclass(frozen=True)
class PurgePlan:
    vm: str
    remove: tuple[Snapshot, ...]
    keep: tuple[tuple[Snapshot, str], ...]
    mode: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "mode": self.mode,
            "notes": list(self.notes),
            "remove": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "disks": list(s.disks),
                    "created": s.created.isoformat() if s.created else None,
                }
                for s in self.remove
            ],
            "keep": [{"name": s.name, "reason": r} for s, r in self.keep],
        }


def _keep_reasons(services: Services, state: VmState) -> dict[str, str]:
    reasons: dict[str, str] = {}
    last = last_rollback(services, state.name)
    for snap in state.snapshots:
        if snap.protected:
            reasons[snap.name] = "protected"
            continue
        children = _children_of(services, state, snap)
        if children:
            reasons[snap.name] = f"has linked clones: {', '.join(children)}"
        elif last and last.get("safety") == snap.name:
            reasons[snap.name] = "safety snapshot of the last rollback (rollback --undo needs it)"
    return reasons


def purge_plan(
    services: Services,
    vm: str,
    *,
    all: bool = False,
    oldest: int | None = None,
    before: datetime | None = None,
    now: datetime | None = None,
) -> PurgePlan:
    modes = sum(1 for m in (all, oldest is not None, before is not None) if m)
    if modes != 1:
        raise ValidationError("choose exactly one of --all, --oldest N, --before DATETIME", field="mode")
    state = _vm(services, vm)
    reasons = _keep_reasons(services, state)
    candidates = [s for s in state.snapshots if s.name not in reasons]
    notes: list[str] = []
    if all:
        chosen = candidates
        mode = "all"
    elif oldest is not None:
        n = validate.count(oldest, "oldest")
        chosen = candidates[:n]
        mode = f"oldest {n}"
        if n > len(candidates):
            notes.append(f"only {len(candidates)} snapshot(s) can be removed")
    else:
        assert before is not None
        if before.tzinfo is None:
            raise ValidationError("the date must carry a time zone", field="before")
        validate.not_in_future(before, now)
        chosen = [s for s in candidates if s.created is not None and s.created < before]
        mode = f"before {before.isoformat()}"
    keep = [(s, reasons[s.name]) for s in state.snapshots if s.name in reasons]
    keep += [(s, "newer than the limit" if before else "not selected") for s in candidates if s not in chosen]
    return PurgePlan(vm, tuple(chosen), tuple(keep), mode, tuple(notes))


def _parallel_remove(services: Services, targets: Sequence[tuple[str, Snapshot]], ctx: StepContext) -> None:
    """Remove snapshots, the VMs side by side and each VM's one after the other.

    librbd runs the snapshot operations of one image one at a time anyway (competing for it only adds
    lock hand-overs); across VMs the removals overlap and the monitor batches their commits.
    """
    by_vm: dict[str, list[Snapshot]] = {}
    for vm, snap in targets:
        by_vm.setdefault(vm, []).append(snap)
    done = 0
    errors: list[str] = []
    lock = threading.Lock()

    def remove_all(vm: str, snaps: list[Snapshot]) -> None:
        nonlocal done
        for snap in snaps:
            try:
                _remove_snapshot(services, vm, snap)
            except VmConsoleError as exc:
                with lock:
                    errors.append(f"{vm}@{snap.name}: {exc}")
            with lock:
                done += 1
                current = done
            ctx.progress(current, len(targets), f"{vm}@{snap.name}", unit="items")

    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="purge") as pool:
        for future in [pool.submit(remove_all, vm, snaps) for vm, snaps in by_vm.items()]:
            future.result()
    if errors:
        raise OperationFailed(f"{len(errors)} of {len(targets)} snapshot(s) could not be removed: " + "; ".join(errors))


def plan_purge(services: Services, plan: PurgePlan) -> Task:
    task = plan_purge_many(services, [plan])
    task.vm = plan.vm
    task.description = f"purge snapshots of {plan.vm} ({plan.mode})"
    return task


def plan_purge_many(services: Services, plans: Sequence[PurgePlan]) -> Task:
    """Carry out purge plans (one per VM) in one task, every removal in parallel."""
    plans = [p for p in plans if p.remove]
    if not plans:
        raise ConflictError("nothing to purge")

    def run(ctx: StepContext) -> None:
        targets: list[tuple[str, Snapshot]] = []
        vanished = 0
        # re-check under the lock, in one read: the plan the operator saw must still be what happens
        state = services.reader.read(only={p.vm for p in plans})
        for plan in plans:
            fresh = state.vm(plan.vm)
            if fresh is None:
                raise NotFoundError(f"{plan.vm} disappeared since the plan was made")
            names = {s.name for s in fresh.snapshots}
            reasons = _keep_reasons(services, fresh)
            now_kept = [s.name for s in plan.remove if s.name in reasons]
            if now_kept:
                raise ConflictError(f"snapshot(s) {', '.join(now_kept)} of {plan.vm} became protected since the plan")
            targets += [(plan.vm, s) for s in plan.remove if s.name in names]
            vanished += sum(1 for s in plan.remove if s.name not in names)
        _parallel_remove(services, targets, ctx)
        ctx.data["removed"] = [f"{vm}@{s.name}" for vm, s in targets]
        kept = sum(len(p.keep) for p in plans)
        gone = f" ({vanished} already gone)" if vanished else ""
        ctx.data["_summary"] = f"purged {len(targets)} snapshot(s) of {len(plans)} VM(s){gone}; kept {kept}"

    total = sum(len(p.remove) for p in plans)
    return Task(
        "snapshot-purge",
        None,
        {
            "vms": [p.vm for p in plans],
            "modes": [p.mode for p in plans],
            "remove": [f"{p.vm}@{s.name}" for p in plans for s in p.remove],
        },
        [Step(f"remove {total} snapshot(s)", run)],
        locks=[p.vm for p in plans],
        description=f"purge {total} snapshot(s) of {len(plans)} VM(s)",
    )


# ---------------------------------------------------------------------------------------------- retention
@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_daily: int = 0  # one (the newest) per day for this many days

    def to_json(self) -> dict[str, int]:
        return {"keep_last": self.keep_last, "keep_daily": self.keep_daily}


def set_policy(services: Services, vm: str, policy: RetentionPolicy) -> None:
    _vm(services, vm)
    validate.count(policy.keep_last, "keep_last")
    validate.count(policy.keep_daily, "keep_daily")
    if policy.keep_last == 0 and policy.keep_daily == 0:
        services.rbd.omap_remove(naming.POLICY_OBJECT, [vm])
    else:
        services.rbd.omap_set(naming.POLICY_OBJECT, {vm: json.dumps(policy.to_json()).encode()})


def policies(services: Services) -> dict[str, RetentionPolicy]:
    result = {}
    for vm, raw in services.rbd.omap_get(naming.POLICY_OBJECT).items():
        try:
            data = json.loads(raw)
            result[vm] = RetentionPolicy(int(data.get("keep_last", 0)), int(data.get("keep_daily", 0)))
        except (ValueError, TypeError):
            continue
    return result


def retention_selection(
    snapshots: Iterable[Snapshot], policy: RetentionPolicy, now: datetime
) -> tuple[list[Snapshot], dict[str, str]]:
    """Pure rule: which snapshots a policy removes, and why each kept one is kept."""
    dated = sorted((s for s in snapshots if s.created is not None), key=lambda s: s.created or now, reverse=True)
    keep: dict[str, str] = {}
    for snap in dated[: policy.keep_last]:
        keep[snap.name] = f"one of the last {policy.keep_last}"
    if policy.keep_daily:
        oldest_day = (now - timedelta(days=policy.keep_daily - 1)).date()
        seen_days: set[object] = set()
        for snap in dated:
            day = snap.created.date() if snap.created else None
            if day is None or day < oldest_day or day in seen_days:
                continue
            seen_days.add(day)
            keep.setdefault(snap.name, f"newest of {day}")
    removed = [s for s in dated if s.name not in keep]
    return removed, keep


def prune_plan(services: Services, vm: str, policy: RetentionPolicy, now: datetime | None = None) -> PurgePlan:
    state = _vm(services, vm)
    now = now or datetime.now(UTC)
    reasons = _keep_reasons(services, state)
    candidates = [s for s in state.snapshots if s.name not in reasons]
    removed, kept = retention_selection(candidates, policy, now)
    keep = [(s, reasons[s.name]) for s in state.snapshots if s.name in reasons]
    keep += [(s, kept[s.name]) for s in candidates if s.name in kept]
    undated = [s for s in candidates if s.created is None]
    keep += [(s, "no creation time") for s in undated]
    return PurgePlan(
        vm, tuple(removed), tuple(keep), f"policy keep-last {policy.keep_last}, keep-daily {policy.keep_daily}"
    )


# ---------------------------------------------------------------------------------------------- bulk
def plan_bulk_snapshot(services: Services, vms: list[str], name: str | None = None) -> Task:
    """Snapshot many VMs in one task, in parallel; one VM failing (locked, gone) does not undo the others."""
    if not vms:
        raise ValidationError("no VM selected", field="vms")
    snap = validate.snapshot_name(name) if name is not None else validate.default_snapshot_name()
    names = [validate.vm_name(v, field="vms") for v in dict.fromkeys(vms)]
    existing = set(services.rbd.group_names())
    missing = [v for v in names if v not in existing]
    if missing:
        raise NotFoundError(f"no VM named {', '.join(missing)}", field="vms")

    def one(ctx: StepContext, vm: str) -> str:
        with ctx.runner.locked(ctx.task, [vm]):
            # cheap checks only: a bulk run must cost about one monitor commit, not a state read per VM
            if snap in services.rbd.group_snapshots(vm):
                raise ConflictError(f"already has a snapshot {snap!r}")
            metadata = services.rbd.metadata(naming.system_image(vm))
            _write_record(
                services,
                vm,
                snap,
                {"created": now_iso(), "by": who(), "config": _config_of(metadata), "protected": False},
            )
            try:
                services.rbd.group_snap_create(vm, snap)
            except VmConsoleError:
                _remove_record(services, vm, snap)
                raise
        return "ok"

    def run(ctx: StepContext) -> None:
        results: dict[str, str] = {}
        done = 0
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="bulk") as pool:
            futures = {pool.submit(one, ctx, vm): vm for vm in names}
            for future, vm in futures.items():
                try:
                    results[vm] = future.result()
                except VmConsoleError as exc:
                    results[vm] = f"failed: {exc}"
                    ctx.log(f"{vm}: {exc}")
                done += 1
                ctx.progress(done, len(names), vm, unit="items")
        ctx.data["results"] = results
        failed = [vm for vm, r in results.items() if r != "ok"]
        ctx.data["_summary"] = (
            f"snapshot {snap}: {len(names) - len(failed)} of {len(names)} VM(s) done in "
            f"{time.monotonic() - started:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else "")
        )
        if failed and len(failed) == len(names):
            raise OperationFailed(ctx.data["_summary"])

    return Task(
        "snapshot-bulk",
        None,
        {"vms": names, "snapshot": snap},
        [Step(f"snapshot {len(names)} VM(s)", run)],
        locks=[],
        description=f"snapshot {len(names)} VM(s) as {snap}",
    )


def select_vms(services: Services, expression: str) -> list[str]:
    """VM names matching a filter: ``status:started``, ``node:hv1``, ``name~regex`` or a plain substring."""
    import re

    state = services.state()
    result = []
    for vm in state.vms:
        ok = True
        for term in expression.split():
            key, sep, value = term.partition(":")
            if sep and key == "status":
                ok &= vm.status.value.lower() == value.lower()
            elif sep and key == "node":
                ok &= (vm.node or "") == value
            elif term.startswith("name~"):
                try:
                    ok &= re.search(term[5:], vm.name) is not None
                except re.error as exc:
                    raise ValidationError(f"bad regular expression: {exc}", field="filter") from exc
            else:
                ok &= term.lower() in vm.name.lower()
        if ok:
            result.append(vm.name)
    return result


__all__ = [
    "PurgePlan",
    "RetentionPolicy",
    "RollbackPlan",
    "SnapshotInfo",
    "last_rollback",
    "list_snapshots",
    "plan_bulk_snapshot",
    "plan_purge",
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
