"""Take snapshots: one VM's (every disk at one instant, the guest frozen when it can be), or many VMs'
at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from vmconsole.core.journal import now_iso, who
from vmconsole.core.services import Services
from vmconsole.core.snapshots.instant import FROZEN, Instant, take_at_one_instant
from vmconsole.core.snapshots.records import (
    config_of,
    disk_images,
    remove_record,
    snapshot_exists,
    stamp_record,
    vm_state,
    write_record,
)
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import ConflictError, NotFoundError, OperationFailed, ValidationError, VmConsoleError
from vmconsole.domain.model import VmState, VmStatus

PARALLEL = 64  # concurrent snapshot creates/removes: the monitor batches their commits
SNAPSHOT_IMAGES = "snapshot_images"  # data key: the disks holding this task's per-image snapshot
INSTANT = "instant"  # data key (in the result too): how the snapshot was kept at one instant


def snapshot_kind(services: Services) -> str:
    """What a new snapshot is: "image" (one name on every disk, vm_manager can use it) or "group"."""
    return services.config.snapshots.kind


def instant_note(instant: Instant) -> str:
    """The part of a result message that says how long the guest was kept still."""
    if instant.method == "paused" and instant.seconds is not None:
        return f"paused {instant.seconds:.3f} s"
    if instant.method == "frozen" and instant.seconds is not None:
        return f"filesystems frozen {instant.seconds:.3f} s"
    if instant.method == "stopped":
        return "the VM was not running"
    return "crash-consistent"


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


def _stamp(services: Services, vm: str, snap: str, kind: str, images: list[str]) -> None:
    """Tie the record to the snapshot just made; the snapshot is made whatever happens here, and a
    record without its ids still serves (as an older vmconsole's)."""
    with contextlib.suppress(VmConsoleError):
        stamp_record(services, vm, snap, kind, images)


def plan_snapshot_create(
    services: Services, vm: str, name: str | None = None, *, freeze: bool = True, safety_of: str | None = None
) -> Task:
    """One snapshot of every disk of the VM at one instant, of the configured kind
    (``[snapshots] kind``), with the VM's configuration recorded with it."""
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
        {"snapshot": snap, "freeze": freeze, "kind": snapshot_kind(services)},
        create_steps(services, state, snap, freeze=freeze, safety_of=safety_of),
        description=f"snapshot {vm} as {snap}",
        precheck=precheck,
    )


def create_steps(
    services: Services, state: VmState, snap: str, *, freeze: bool, safety_of: str | None = None
) -> list[Step]:
    """The record step, then the take step (two steps: a rollback keeps the second as its safety net)."""
    vm = state.name
    kind = snapshot_kind(services)

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
                "kind": kind,
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
        _stamp(services, vm, snap, "group", [d.image for d in state.disks])
        ctx.data["_summary"] = f"snapshot {snap} of {vm} created ({len(state.disks)} disk(s), one instant)"

    def untake(ctx: StepContext) -> None:
        if ctx.data.get("snapshot_taken") == snap and snap in services.rbd.group_snapshots(vm):
            services.rbd.group_snap_remove(vm, snap)

    def take_images(ctx: StepContext) -> None:
        images = disk_images(services, vm)
        ctx.data["snapshot_making"] = snap  # what recover looks for, should this process die meanwhile
        ctx.save()
        instant = take_at_one_instant(
            services, vm, images, snap, ctx, lambda image: ctx.made(SNAPSHOT_IMAGES, image), freeze=freeze
        )
        ctx.data["snapshot_taken"] = snap
        ctx.data[INSTANT] = instant.to_dict()
        ctx.save()
        _stamp(services, vm, snap, "image", images)
        ctx.log(f"{len(images)} disk(s) at one instant: {instant}")
        ctx.data["_summary"] = (
            f"snapshot {snap} of {vm} created ({len(images)} disk(s), one instant: {instant_note(instant)})"
        )

    def untake_images(ctx: StepContext) -> None:
        # the name was checked free under the VM's lock (precheck), which this task still holds: a
        # snapshot of that name on the VM's disks is this task's, even one killed before its record
        if ctx.data.get("snapshot_making") != snap:
            return
        for image in disk_images(services, vm):
            if snap in services.rbd.image_snap_names(image):
                services.rbd.image_snap_remove(image, snap)
        ctx.data[SNAPSHOT_IMAGES] = []
        ctx.save()

    if kind == "group":
        taking = Step(f"snapshot every disk of {vm} at once (RBD group snapshot)", take, untake)
    else:
        taking = Step(f"snapshot every disk of {vm} at one instant (per-image snapshots)", take_images, untake_images)
    return [Step("record the VM's configuration with the snapshot", record, unrecord, weight=0.2), taking]


def plan_bulk_snapshot(services: Services, vms: list[str], name: str | None = None) -> Task:
    """Snapshot many VMs in one task, in parallel; one VM failing (locked, gone) does not undo the others."""
    if not vms:
        raise ValidationError("no VM selected", field="vms")
    snap = validate.snapshot_name(name) if name is not None else validate.default_snapshot_name()
    names = [validate.existing_vm_name(v, field="vms") for v in dict.fromkeys(vms)]
    existing = set(services.rbd.group_names())
    missing = [v for v in names if v not in existing]
    if missing:
        raise NotFoundError(f"no VM named {', '.join(missing)}", field="vms")

    kind = snapshot_kind(services)
    instants: dict[str, Instant] = {}

    def one(ctx: StepContext, vm: str) -> str:
        with ctx.runner.journal.locked(ctx.task, [vm]):
            # cheap checks only: a bulk run must cost about one monitor commit, not a state read per VM
            images = disk_images(services, vm) if kind == "image" else []
            if snap in services.rbd.group_snapshots(vm) or (
                kind == "image" and snapshot_exists(services, vm, snap, images)
            ):
                raise ConflictError(f"already has a snapshot {snap!r}")
            metadata = services.rbd.metadata(naming.system_image(vm))
            record = {
                "created": now_iso(),
                "by": who(),
                "config": config_of(metadata),
                "protected": False,
                "kind": kind,
            }
            write_record(services, vm, snap, record)
            try:
                if kind == "group":
                    services.rbd.group_snap_create(vm, snap)
                else:
                    instants[vm] = take_at_one_instant(services, vm, images, snap, ctx, lambda image: None)
            except VmConsoleError:
                remove_record(services, vm, snap)
                raise
            _stamp(services, vm, snap, kind, images or [naming.system_image(vm)])
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
        held = ""
        if instants:
            ctx.data["instants"] = {vm: i.to_dict() for vm, i in instants.items()}
            still = {vm: i.seconds for vm, i in instants.items() if i.seconds is not None}
            if still:
                longest = max(still, key=lambda vm: still[vm] or 0.0)
                held = f"; {len(still)} VM(s) kept still, longest {still[longest] or 0.0:.3f} s ({longest})"
        ctx.data["_summary"] = (
            f"snapshot {snap}: {len(names) - len(failed)} of {len(names)} VM(s) done in "
            f"{time.monotonic() - started:.1f} s" + held + (f"; FAILED: {', '.join(failed)}" if failed else "")
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
