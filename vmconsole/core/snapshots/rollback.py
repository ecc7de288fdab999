"""Guided rollback: a plan first (what stops, what is lost, the downtime), then a safety snapshot, the
rollback of every disk, the recorded configuration restored and the VM back in its previous state;
and the undo that returns to the safety snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from vmconsole.core.journal import now_iso, who
from vmconsole.core.services import Services
from vmconsole.core.snapshots.create import create_steps
from vmconsole.core.snapshots.listing import written_since
from vmconsole.core.snapshots.records import ROLLBACK_KEY, find_snapshot, last_rollback, vm_state
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

    vm = plan.vm
    snap = plan.snapshot
    state = services.vm(vm)
    steps: list[Step] = []
    if plan.safety_snapshot:
        steps += create_steps(services, state, plan.safety_snapshot, freeze=True, safety_of=snap.name)
    if plan.enabled:
        disable = disable_step(services, vm)
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
        steps += enable_steps(services, vm, start=plan.restart_after)
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
