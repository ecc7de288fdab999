"""Purge snapshots (all, the oldest N, those before a date) and retention policies applied by prune,
always with a plan of what goes, what stays and why.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.snapshots.create import PARALLEL
from vmconsole.core.snapshots.records import last_rollback, vm_state
from vmconsole.core.snapshots.remove import children_of, remove_snapshot
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import ConflictError, NotFoundError, OperationFailed, ValidationError, VmConsoleError
from vmconsole.domain.model import Snapshot, VmState


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
        children = children_of(services, state, snap)
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
    state = vm_state(services, vm)
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
                remove_snapshot(services, vm, snap)
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
        # a removed snapshot cannot come back: no undo, and a failure after says what is gone
        [Step(f"remove {total} snapshot(s)", run, point_of_no_return=True)],
        locks=[p.vm for p in plans],
        description=f"purge {total} snapshot(s) of {len(plans)} VM(s)",
        kept=lambda data: (
            "the snapshots removed before the failure are gone (that cannot be undone): "
            + ", ".join(f"`vmconsole snapshot list {p.vm}`" for p in plans)
            + " show what is left"
        ),
    )


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_daily: int = 0  # one (the newest) per day for this many days

    def to_json(self) -> dict[str, int]:
        return {"keep_last": self.keep_last, "keep_daily": self.keep_daily}


def set_policy(services: Services, vm: str, policy: RetentionPolicy) -> None:
    services.require_writable(f"setting the retention policy of {vm}")
    vm_state(services, vm)
    validate.count(policy.keep_last, "keep_last")
    validate.count(policy.keep_daily, "keep_daily")
    if policy.keep_last == 0 and policy.keep_daily == 0:
        services.rbd.omap_remove(naming.POLICY_OBJECT, [vm])
        message = f"retention policy of {vm} removed"
    else:
        services.rbd.omap_set(naming.POLICY_OBJECT, {vm: json.dumps(policy.to_json()).encode()})
        message = f"retention policy of {vm}: keep the last {policy.keep_last}, the newest of {policy.keep_daily} days"
    services.journal.audit("snapshot-policy", vm, policy.to_json(), message)


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
    state = vm_state(services, vm)
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
