"""Per-image snapshots of several disks taken at one instant, the guest kept still meanwhile.

A stopped VM needs nothing; a running one is frozen through its guest agent when it has one, else
paused (QEMU finishes its in-flight I/O first) while all its disks are snapshotted in parallel, then
thawed or resumed on every path. How long the guest was kept still is measured and returned. What is
frozen or paused is recorded in the task's journal entry first, so ``recover`` thaws or resumes a
guest whose vmconsole died in between. A set that could not be completed is taken away again: only
the snapshots this call made, never one that was there before.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from vmconsole.backends.libvirt import LibvirtSession
from vmconsole.core.services import Services
from vmconsole.core.tasks import StepContext
from vmconsole.domain.errors import ConflictError, VmConsoleError

PAUSED = "paused_vm"  # data key: the VM(s) paused by this task (recover resumes them)
FROZEN = "frozen_vm"  # data key: the VM(s) whose filesystems this task froze (recover thaws them)

# one task may keep several guests still at once (bulk): their names and the journal writes are serialised
_HOLDS = threading.Lock()


@dataclass(frozen=True)
class Instant:
    """How a snapshot set was kept at one instant.

    ``method``: "stopped" (no client had the disks open), "single" (one disk: one snapshot is one
    instant), "frozen" (guest filesystems frozen by its agent), "paused" (the VM paused), or
    "already-paused". ``seconds``: how long the guest was frozen or paused (None when it was not).
    """

    method: str
    seconds: float | None
    detail: str
    consistent: bool  # filesystem-consistent (frozen, or not running); otherwise crash-consistent

    def __str__(self) -> str:
        return self.detail

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seconds": self.seconds, "detail": self.detail, "consistent": self.consistent}


def _hold(ctx: StepContext, key: str, vm: str) -> None:
    with _HOLDS:
        held = ctx.data.get(key)
        names = [held] if isinstance(held, str) else list(held or [])
        ctx.data[key] = [*names, vm]
        ctx.save()


def _let_go(ctx: StepContext, key: str, vm: str) -> None:
    with _HOLDS:
        held = ctx.data.get(key)
        names = [n for n in ([held] if isinstance(held, str) else list(held or [])) if n != vm]
        if names:
            ctx.data[key] = names
        else:
            ctx.data.pop(key, None)
        ctx.save()


def take_at_one_instant(
    services: Services,
    vm: str,
    images: Sequence[str],
    snapshot: str,
    ctx: StepContext,
    made: Callable[[str], None],
    *,
    freeze: bool = True,
) -> Instant:
    """Snapshot every image of ``images`` as ``snapshot`` at one instant; ``made(image)`` records each
    one once the guest runs again. ``freeze=False`` never asks the guest agent (a pause still keeps
    several disks at one instant). Raises, with the partial set removed, when one disk fails."""
    users = services.disk_users(images)
    if not users:
        _take_all(services, images, snapshot, made)
        return Instant("stopped", None, "the VM is not running", True)
    with services.libvirt() as lv:
        here = lv.domain_state(vm)
        if here in ("running", "paused"):
            return _keep_still(services, lv, vm, images, snapshot, ctx, made, freeze=freeze, where="")
    node = services.vm(vm).node
    if len(images) == 1:  # one snapshot is one instant: nothing to ask of its node
        _take_all(services, images, snapshot, made)
        return Instant(
            "single",
            None,
            f"{vm} runs on {node or 'another node'}: no filesystem freeze from this host; one disk, so one "
            "instant (crash-consistent)",
            False,
        )
    if node is None:
        raise ConflictError(
            f"the {len(images)} disks of {vm} are in use, but no node runs it: a consistent snapshot of "
            "them needs the guest kept still",
            hint=f"wait until {vm} settles, or stop it first",
        )
    try:
        remote = services.libvirt_on(node)
    except VmConsoleError as exc:
        raise ConflictError(
            f"{vm} runs on {node} and its {len(images)} disks are in use: keeping the guest still needs "
            f"libvirt on {node}, which did not answer ({exc})",
            hint=f"run this on {node}, or stop {vm} first",
        ) from exc
    with remote:
        if remote.domain_state(vm) not in ("running", "paused"):
            raise ConflictError(f"{vm} is not running on {node} any more: try again")
        return _keep_still(services, remote, vm, images, snapshot, ctx, made, freeze=freeze, where=f" on {node}")


def _keep_still(
    services: Services,
    lv: LibvirtSession,
    vm: str,
    images: Sequence[str],
    snapshot: str,
    ctx: StepContext,
    made: Callable[[str], None],
    *,
    freeze: bool,
    where: str,
) -> Instant:
    """The guest (running on ``lv``'s host) frozen or paused while every disk is snapshotted."""
    if lv.domain_state(vm) == "paused":  # kept still already (and its agent cannot answer a freeze)
        _take_all(services, images, snapshot, made)
        return Instant("already-paused", None, f"{vm} was paused already{where} (crash-consistent)", False)
    why = "no freeze asked"
    if freeze:
        _hold(ctx, FROZEN, vm)  # before the freeze: recover thaws a guest whose vmconsole died
        started = time.monotonic()
        frozen = lv.freeze_filesystems(vm)
        if frozen.frozen is not None:
            thawed: list[float] = []

            def thaw() -> None:
                lv.thaw_filesystems(vm)
                thawed.append(time.monotonic())

            try:
                _take_all(services, images, snapshot, made, after=thaw)
            finally:
                _let_go(ctx, FROZEN, vm)
            seconds = (thawed[0] if thawed else time.monotonic()) - started
            return Instant(
                "frozen", seconds, f"{frozen.frozen} guest filesystem(s) frozen{where} for {seconds:.3f} s", True
            )
        _let_go(ctx, FROZEN, vm)
        why = frozen.why_not or "the guest agent did not freeze"
    if len(images) == 1:
        _take_all(services, images, snapshot, made)
        return Instant("single", None, f"one disk, so one instant ({why}: crash-consistent)", False)
    _hold(ctx, PAUSED, vm)
    started = time.monotonic()
    if not lv.suspend(vm):
        _let_go(ctx, PAUSED, vm)
        raise ConflictError(f"{vm} is not running{where or ' here'} any more: try again")
    resumed: list[float] = []

    def resume() -> None:
        lv.resume(vm)
        resumed.append(time.monotonic())

    try:
        _take_all(services, images, snapshot, made, after=resume)
    finally:
        _let_go(ctx, PAUSED, vm)
    seconds = (resumed[0] if resumed else time.monotonic()) - started
    return Instant("paused", seconds, f"{vm} paused{where} for {seconds:.3f} s ({why}): crash-consistent", False)


def _take_all(
    services: Services,
    images: Sequence[str],
    snapshot: str,
    made: Callable[[str], None],
    *,
    after: Callable[[], None] | None = None,
) -> None:
    """Every snapshot in parallel, then ``after`` (thaw or resume: on every path, before anything
    else), then the records; a partial set is removed again (what this call made only)."""
    errors: list[str] = []
    done: list[str] = []
    lock = threading.Lock()

    def take(image: str) -> None:
        try:
            services.rbd.image_snap_create(image, snapshot)
        except VmConsoleError as exc:
            with lock:
                errors.append(f"{image}: {exc}")
            return
        with lock:
            done.append(image)

    try:
        with ThreadPoolExecutor(max_workers=max(1, len(images)), thread_name_prefix="snap") as pool:
            list(pool.map(take, images))
    finally:
        if after is not None:
            after()
    if errors:
        for image in done:
            with contextlib.suppress(VmConsoleError):
                services.rbd.image_snap_remove(image, snapshot)
        raise ConflictError(f"snapshot {snapshot} could not be taken on every disk: {'; '.join(errors)}")
    for image in images:
        if image in done:
            made(image)


def release_guest(services: Services, vm: str, *, paused: bool, frozen: bool) -> list[str]:
    """Resume or thaw a guest a dead task left still (recovery); what was done, for its report."""
    with services.libvirt() as lv:
        if lv.domain_state(vm) in ("running", "paused"):
            return _release(lv, vm, paused=paused, frozen=frozen, where="")
    node = services.vm(vm).node  # kept still on its own node, from another host
    if node is None:
        return []
    with services.libvirt_on(node) as remote:
        return _release(remote, vm, paused=paused, frozen=frozen, where=f" on {node}")


def _release(lv: LibvirtSession, vm: str, *, paused: bool, frozen: bool, where: str) -> list[str]:
    done: list[str] = []
    if frozen and lv.domain_state(vm) is not None:
        lv.thaw_filesystems(vm)
        done.append(f"thawed the filesystems of {vm}{where}")
    if paused and lv.domain_state(vm) == "paused":
        lv.resume(vm)
        done.append(f"resumed {vm}{where}")
    return done


def release_held(services: Services, data: dict[str, Any]) -> list[str]:
    """Every guest a dead task recorded as frozen or paused runs freely again (recovery)."""

    def names(key: str) -> list[str]:
        held = data.get(key)
        return [held] if isinstance(held, str) else [str(n) for n in held or []]

    paused, frozen = names(PAUSED), names(FROZEN)
    done: list[str] = []
    for vm in dict.fromkeys([*frozen, *paused]):
        done += release_guest(services, vm, paused=vm in paused, frozen=vm in frozen)
    return done
