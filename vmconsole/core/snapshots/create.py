"""Take snapshots: one VM's (every disk at one instant, the guest frozen when it can be), or many VMs'
at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from vmconsole.core.journal import now_iso, who
from vmconsole.core.services import Services
from vmconsole.core.snapshots.instant import FROZEN
from vmconsole.core.snapshots.records import config_of, remove_record, vm_state, write_record
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import ConflictError, NotFoundError, OperationFailed, ValidationError, VmConsoleError
from vmconsole.domain.model import VmState, VmStatus

PARALLEL = 64  # concurrent snapshot creates/removes: the monitor batches their commits


@contextmanager
def _guest_frozen(services: Services, state: VmState, ctx: StepContext) -> Iterator[None]:
    """The guest's filesystems frozen through qemu-guest-agent while the block runs, when it can be
    reached from this host; otherwise the block runs anyway and the log says the snapshot is
    crash-consistent."""
    with services.libvirt() as lv:
        if state.node and state.node != lv.hostname():
            ctx.log(f"guest runs on {state.node}: no filesystem freeze from this host (crash-consistent)")
            yield
            return
        ctx.data[FROZEN] = state.name  # before the freeze: recover thaws a guest whose vmconsole died
        ctx.save()
        freeze = lv.freeze_filesystems(state.name)
        if freeze.frozen is None:
            ctx.data.pop(FROZEN, None)
            ctx.save()
            if freeze.has_agent:
                ctx.log(f"guest filesystem freeze skipped: {freeze.why_not}")
            else:
                ctx.log("no qemu-guest-agent channel: snapshot is crash-consistent (no freeze)")
            yield
            return
        ctx.log(f"froze {freeze.frozen} guest filesystem(s)")
        try:
            yield
        finally:
            lv.thaw_filesystems(state.name)
            ctx.data.pop(FROZEN, None)
            ctx.save()
            ctx.log("guest filesystems thawed")


def plan_snapshot_create(
    services: Services, vm: str, name: str | None = None, *, freeze: bool = True, safety_of: str | None = None
) -> Task:
    state = vm_state(services, vm)
    snap = validate.snapshot_name(name) if name is not None else validate.default_snapshot_name()
    if any(s.name == snap for s in state.snapshots):
        raise ConflictError(f"{vm} already has a snapshot named {snap!r}", field="snapshot", reason="already_exists")
    if not state.disks:
        raise ConflictError(f"{vm} has no disk to snapshot")

    def precheck() -> None:
        if any(s.name == snap for s in vm_state(services, vm).snapshots):
            raise ConflictError(f"{vm} already has a snapshot named {snap!r}", field="snapshot")

    return Task(
        "snapshot-create",
        vm,
        {"snapshot": snap, "freeze": freeze},
        create_steps(services, state, snap, freeze=freeze, safety_of=safety_of),
        description=f"snapshot {vm} as {snap}",
        precheck=precheck,
    )


def create_steps(
    services: Services, state: VmState, snap: str, *, freeze: bool, safety_of: str | None = None
) -> list[Step]:
    vm = state.name

    def record(ctx: StepContext) -> None:
        metadata = services.rbd.metadata(naming.system_image(vm))
        write_record(
            services,
            vm,
            snap,
            {
                "created": now_iso(),
                "by": who(),
                "config": config_of(metadata),
                "protected": False,
                "status": state.status.value,
                "safety_of": safety_of,
            },
        )
        ctx.data["recorded"] = snap
        ctx.save()

    def unrecord(ctx: StepContext) -> None:
        if ctx.data.get("recorded") == snap:
            remove_record(services, vm, snap)

    def take(ctx: StepContext) -> None:
        if freeze and state.status is VmStatus.STARTED:
            with _guest_frozen(services, state, ctx):
                services.rbd.group_snap_create(vm, snap)
        else:
            services.rbd.group_snap_create(vm, snap)
        ctx.data["snapshot_taken"] = snap
        ctx.save()
        ctx.data["_summary"] = f"snapshot {snap} of {vm} created ({len(state.disks)} disk(s), one instant)"

    def untake(ctx: StepContext) -> None:
        if ctx.data.get("snapshot_taken") == snap and snap in services.rbd.group_snapshots(vm):
            services.rbd.group_snap_remove(vm, snap)

    return [
        Step("record the VM's configuration with the snapshot", record, unrecord, weight=0.2),
        Step(f"snapshot every disk of {vm} at once (RBD group snapshot)", take, untake),
    ]


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
        with ctx.runner.journal.locked(ctx.task, [vm]):
            # cheap checks only: a bulk run must cost about one monitor commit, not a state read per VM
            if snap in services.rbd.group_snapshots(vm):
                raise ConflictError(f"already has a snapshot {snap!r}")
            metadata = services.rbd.metadata(naming.system_image(vm))
            write_record(
                services,
                vm,
                snap,
                {"created": now_iso(), "by": who(), "config": config_of(metadata), "protected": False},
            )
            try:
                services.rbd.group_snap_create(vm, snap)
            except VmConsoleError:
                remove_record(services, vm, snap)
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
