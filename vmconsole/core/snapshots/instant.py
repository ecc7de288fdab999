"""Per-image snapshots of several disks taken at one instant, the guest kept still meanwhile.

A stopped VM needs nothing; a running one is frozen through its guest agent when it has one, else
paused (QEMU finishes its in-flight I/O first) while all its disks are snapshotted in parallel, then
thawed or resumed on every path. What is frozen or paused is recorded in the task's journal entry
first, so ``recover`` thaws or resumes a guest whose vmconsole died in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from vmconsole.core.services import Services
from vmconsole.core.tasks import StepContext
from vmconsole.domain.errors import ConflictError, VmConsoleError

PAUSED = "paused_vm"  # data key: the VM paused by this task (recover resumes it)
FROZEN = "frozen_vm"  # data key: the VM whose filesystems this task froze (recover thaws them)


def take_at_one_instant(
    services: Services,
    vm: str,
    images: Sequence[str],
    snapshot: str,
    ctx: StepContext,
    made: Callable[[str], None],
) -> str:
    """Snapshot every image of ``images`` as ``snapshot`` at one instant; ``made(image)`` records each
    one as it exists. Returns how the instant was kept, for the log."""
    users = services.disk_users(images)
    if not users or len(images) == 1:
        _take_all(services, images, snapshot, made)
        return "the VM is not running" if not users else "one disk: a single snapshot is one instant"
    with services.libvirt() as lv:
        here = lv.hostname()
        state = services.vm(vm)
        if state.node not in (None, here, here.split(".")[0]) or lv.domain_state(vm) is None:
            raise ConflictError(
                f"{vm} runs on {state.node or 'another node'} and its {len(images)} disks are in use: "
                "a consistent copy of them needs the guest kept still from its own node",
                hint=f"run this on {state.node}, or stop {vm} first",
            )
        ctx.data[FROZEN] = vm
        ctx.save()
        freeze = lv.freeze_filesystems(vm)
        if freeze.frozen is None:
            ctx.data.pop(FROZEN, None)
            ctx.data[PAUSED] = vm
            ctx.save()
            started = time.monotonic()
            if not lv.suspend(vm):
                ctx.data.pop(PAUSED, None)
                ctx.save()
                raise ConflictError(f"{vm} is not running here any more: try again")
            try:
                _take_all(services, images, snapshot, made)
            finally:
                lv.resume(vm)
                ctx.data.pop(PAUSED, None)
                ctx.save()
            return f"{vm} paused for {time.monotonic() - started:.2f} s ({freeze.why_not})"
        try:
            _take_all(services, images, snapshot, made)
        finally:
            lv.thaw_filesystems(vm)
            ctx.data.pop(FROZEN, None)
            ctx.save()
        return f"{freeze.frozen} guest filesystem(s) frozen meanwhile"


def _take_all(services: Services, images: Sequence[str], snapshot: str, made: Callable[[str], None]) -> None:
    errors: list[str] = []

    def take(image: str) -> None:
        try:
            services.rbd.image_snap_create(image, snapshot)
        except VmConsoleError as exc:
            errors.append(f"{image}: {exc}")
            return
        made(image)

    with ThreadPoolExecutor(max_workers=max(1, len(images)), thread_name_prefix="snap") as pool:
        list(pool.map(take, images))
    if errors:
        raise ConflictError(f"snapshot {snapshot} could not be taken on every disk: {'; '.join(errors)}")


def release_guest(services: Services, vm: str, *, paused: bool, frozen: bool) -> list[str]:
    """Resume or thaw a guest a dead task left still (recovery); what was done, for its report."""
    done: list[str] = []
    with services.libvirt() as lv:
        if frozen and lv.domain_state(vm) is not None:
            lv.thaw_filesystems(vm)
            done.append(f"thawed the filesystems of {vm}")
        if paused and lv.domain_state(vm) == "paused":
            lv.resume(vm)
            done.append(f"resumed {vm}")
    return done
