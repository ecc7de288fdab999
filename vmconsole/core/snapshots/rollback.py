"""Guided rollback: a plan first (what stops, what is lost, the downtime), then a safety snapshot, the
rollback of every disk, the recorded configuration restored and the VM back in its previous state;
and the undo that returns to the safety snapshot.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from vmconsole.core.journal import now_iso, who
from vmconsole.core.services import Services
from vmconsole.core.snapshots.create import create_steps
from vmconsole.core.snapshots.listing import written_since
from vmconsole.core.snapshots.records import (
    ROLLBACK_KEY,
    current_records,
    find_snapshot,
    last_rollback,
    snapshot_exists,
    vm_state,
)
from vmconsole.core.steps import disable_step, enable_steps
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import ConflictError, OperationFailed, VmConsoleError
from vmconsole.domain.model import Snapshot, VmStatus
from vmconsole.domain.settings import VmSettings

ROLLBACK_RATE = 200 * 1024**2  # bytes/s assumed when estimating a rollback's duration


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
    state = vm_state(services, vm)
    snap = find_snapshot(state, name)
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
    if snap.kind == "image" and len(snap.disks) > 1 and not _taken_at_one_instant(services, vm, snap):
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
        safety_snapshot=safety_name() if safety else None,
        restores_config=bool(snap.metadata.get("xml")),
        warnings=tuple(warnings),
    )


def _taken_at_one_instant(services: Services, vm: str, snap: Snapshot) -> bool:
    """vmconsole took this per-image snapshot (its record says so): every disk at one instant."""
    return current_records(services, vm, list(snap.disks)).get(snap.name, {}).get("kind") == "image"


def safety_name(now: datetime | None = None) -> str:
    """``safety-YYYYmmdd-HHMMSS-xxxxxx``: readable, and unique even for two rollbacks in one second."""
    return f"safety-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def put_back_rollback_record(services: Services, vm: str, data: dict[str, Any]) -> None:
    """The record --undo reads, as it was before this rollback (it never named a safety snapshot of it)."""
    if not data.get("remembered"):
        return
    oid = naming.snapshot_records_object(vm)
    previous = data.get("previous_rollback")
    if previous is not None:
        services.rbd.omap_set(oid, {ROLLBACK_KEY: str(previous).encode()})
    else:
        services.rbd.omap_remove(oid, [ROLLBACK_KEY])
    data["remembered"] = False


def plan_rollback(services: Services, plan: RollbackPlan) -> Task:
    """The rollback as a task. Its safety net holds on every path: the safety snapshot is taken and
    recorded for ``--undo`` before any disk is touched, and no undo ever removes it; once the disks
    are being rolled back nothing before is undone, and a VM that does not start again stays as it is."""
    vm = plan.vm
    snap = plan.snapshot
    state = services.vm(vm)
    safety = plan.safety_snapshot
    steps: list[Step] = []

    def precheck() -> None:
        # the plan the operator saw is still the truth: same snapshot, same enabled state, free names
        fresh = vm_state(services, vm)
        find_snapshot(fresh, snap.name)
        if fresh.enabled != plan.enabled:
            now = "enabled" if fresh.enabled else "disabled"
            raise ConflictError(f"{vm} was {now} since the plan was made: plan the rollback again")
        if fresh.status in (VmStatus.STARTING, VmStatus.STOPPING):
            raise ConflictError(f"{vm} is {fresh.status.value}: wait until it settles")
        if safety is not None and any(s.name == safety for s in fresh.snapshots):
            raise ConflictError(f"{vm} already has a snapshot named {safety!r}: plan the rollback again")
        if not fresh.enabled:
            users = services.disk_users(snap.disks)
            if users:
                held = "; ".join(f"{image} by {', '.join(c)}" for image, c in sorted(users.items()))
                raise ConflictError(f"{vm} is disabled but its disks are in use: {held}")

    if safety:
        # a safety snapshot is a net: no compensation removes it (nor its record), the message says it stays
        record, take = create_steps(services, state, safety, freeze=True, safety_of=snap.name)

        def unrecord_unless_taken(ctx: StepContext) -> None:
            if record.undo is not None and not snapshot_exists(services, vm, safety):
                record.undo(ctx)

        steps += [
            Step(record.name, record.run, unrecord_unless_taken, weight=record.weight),
            Step(
                take.name,
                take.run,
                None,
                weight=take.weight,
                leaves=lambda data: f"the safety snapshot {safety}" if data.get("snapshot_taken") == safety else None,
            ),
        ]

    def remember(ctx: StepContext) -> None:
        oid = naming.snapshot_records_object(vm)
        old = services.rbd.omap_get(oid).get(ROLLBACK_KEY)
        # what --undo pointed at before: put back by an undo, here or in recover
        ctx.data["previous_rollback"] = old.decode() if old is not None else None
        ctx.data["remembered"] = True
        ctx.save()
        record = {
            "snapshot": snap.name,
            "safety": safety,
            "at": now_iso(),
            "by": who(),
            "previous_status": plan.status.value,
        }
        services.rbd.omap_set(oid, {ROLLBACK_KEY: json.dumps(record).encode()})

    def forget(ctx: StepContext) -> None:
        put_back_rollback_record(services, vm, ctx.data)

    steps.append(Step("remember the rollback (for --undo)", remember, forget, weight=0.1))
    if plan.enabled:
        steps.append(disable_step(services, vm))

    def rollback(ctx: StepContext) -> None:
        services.wait_disks_released(vm, 60, tick=ctx.check_cancel, images=list(snap.disks))
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
                    ctx.data["rolled_back_partially"] = True
                    ctx.save()
                    services.rbd.image_snap_rollback(disk, snap.name)
                    done.append(disk)
            ctx.data["rolled_back_partially"] = False
            ctx.data["rolled_back"] = True
            ctx.save()
        except VmConsoleError as exc:
            if snap.kind == "group":
                state_text = f"disks {', '.join(snap.disks)} may be partly rolled back (the group rollback stopped)"
            else:
                rest = [d for d in snap.disks if d not in done]
                state_text = f"rolled back: {', '.join(done) or 'none'}; NOT rolled back: {', '.join(rest)}"
            raise OperationFailed(
                f"rollback of {vm} to {snap.name} failed: {exc.message}. {state_text}. {vm} is left disabled",
                hint=f"when the cluster is healthy, finish with `vmconsole snapshot rollback {vm} {snap.name} "
                "--no-safety`" + (f", or return with `vmconsole snapshot rollback {vm} --undo`" if safety else ""),
            ) from exc

    steps.append(
        Step(
            f"roll back {len(snap.disks)} disk(s) to {snap.name}",
            rollback,
            None,
            weight=3,
            point_of_no_return=True,
        )
    )

    if plan.restores_config:

        def restore(ctx: StepContext) -> None:
            image = naming.system_image(vm)
            current = services.rbd.metadata(image)
            recorded = dict(snap.metadata)
            stale = [k for k in current if k.startswith("_") and k not in recorded]
            services.rbd.metadata_remove(image, stale)
            services.rbd.metadata_set_many(image, recorded)
            VmSettings.from_metadata(recorded)
            ctx.data["config_restored"] = True

        steps.append(Step("restore the configuration recorded with the snapshot", restore, None, weight=0.2))

    if plan.enabled:
        steps += enable_steps(services, vm, start=plan.restart_after)
    summary = f"{vm} rolled back to {snap.name}" + (f"; undo with the safety snapshot {safety}" if safety else "")

    def done(ctx: StepContext) -> None:
        ctx.data["_summary"] = summary

    steps.append(Step("done", done, None, weight=0.01))

    def kept(data: dict[str, Any]) -> str:
        back = (
            f"`vmconsole snapshot rollback {vm} --undo` returns to the safety snapshot {safety}, which is kept"
            if safety
            else "there is no safety snapshot (--no-safety)"
        )
        if data.get("rolled_back"):
            restored = " and its configuration restored" if data.get("config_restored") else ""
            if data.get("enabled"):
                where = f"{vm} is enabled as it was but did not come back as before: `vmconsole vm diagnose {vm}`"
            else:
                where = f"{vm} is left disabled: `vmconsole vm enable {vm}` when the cause is fixed"
            return f"the disks of {vm} are rolled back to {snap.name}{restored}; {where}; {back}"
        return f"{vm} is left disabled and its disks may be partly rolled back; {back}"

    return Task(
        "snapshot-rollback",
        vm,
        {"snapshot": snap.name, "safety": safety},
        steps,
        description=f"roll {vm} back to {snap.name}",
        precheck=precheck,
        kept=kept,
    )


def plan_rollback_undo(services: Services, vm: str) -> Task:
    """Return to the safety snapshot the last rollback took (the rollback itself is undone)."""
    validate.existing_vm_name(vm)
    last = last_rollback(services, vm)
    if not last or not last.get("safety"):
        raise ConflictError(f"{vm} has no rollback to undo (no safety snapshot recorded)")
    plan = rollback_plan(services, vm, last["safety"], safety=False)
    if last.get("previous_status") == VmStatus.STARTED.value and plan.enabled and not plan.restart_after:
        # the rollback being undone left it stopped or failed (its restart failed): the undo returns
        # it to the state before that rollback, running
        plan = replace(plan, restart_after=True)
    task = plan_rollback(services, plan)
    task.operation = "snapshot-rollback-undo"
    task.description = f"undo the rollback of {vm} (return to {last['safety']})"
    return task
