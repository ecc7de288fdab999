"""Handlers of snapshots: take one, remove, protect, the guided rollback and its undo, purge, the
retention policy and prune (one VM, or every VM with a policy), and the bulk snapshot of the marked
VMs. Each calls its ``vmconsole.core.snapshots`` function through the module, when it runs."""

from __future__ import annotations

from typing import Any, NamedTuple

from rich.text import Text
from textual.app import App

from vmconsole.core import snapshots
from vmconsole.core.services import Services
from vmconsole.core.snapshots import PurgePlan, RollbackPlan
from vmconsole.core.tasks import Task
from vmconsole.domain.model import Snapshot, VmState
from vmconsole.tui import ops, text
from vmconsole.tui.console import Console, console_of
from vmconsole.tui.handlers.base import ConfirmTask, Request, confirm_task
from vmconsole.tui.screens.confirm import ask
from vmconsole.tui.screens.main import find_main
from vmconsole.tui.screens.purge import PurgeScreen
from vmconsole.tui.screens.retention import RetentionScreen
from vmconsole.tui.screens.rollback import RollbackImpactScreen
from vmconsole.tui.screens.rollback_pick import RollbackPickScreen
from vmconsole.tui.screens.snapshot_create import SnapshotCreateScreen
from vmconsole.tui.task_record import TaskRecord, TaskState


class VmSnapshot(NamedTuple):
    vm: VmState
    snapshot: Snapshot


def _remove_body(console: Console, subject: VmSnapshot) -> Text:
    snap = subject.snapshot
    return Text.assemble(
        "Remove snapshot ",
        text.plain(snap.name, "bold"),
        " of ",
        text.where(subject.vm),
        "?\n\n",
        f"Taken {text.stamp(snap.created)} ({text.age(snap.created, console.now())} ago). ",
        "You will no longer be able to roll back to it; the VM itself is not touched.",
    )


REMOVE = ConfirmTask[VmSnapshot](
    title=lambda subject: f"Remove snapshot {text.safe(subject.snapshot.name)}",
    body=_remove_body,
    confirm="Remove snapshot",
    task=lambda subject: f"remove snapshot {subject.vm.name}@{subject.snapshot.name}",
    vm=lambda subject: subject.vm.name,
    plan=lambda services, subject: snapshots.plan_snapshot_remove(services, subject.vm.name, subject.snapshot.name),
)

ROLLBACK_UNDO = ConfirmTask[VmState](
    title=lambda vm: f"Undo rollback of {text.safe(vm.name)}",
    body=lambda console, vm: Text.assemble(
        "Undo the last rollback of ",
        text.where(vm),
        "?\n\n",
        "The VM goes back to the safety snapshot taken just before the rollback;"
        " what it wrote since the rollback is discarded.",
    ),
    confirm="Undo rollback",
    task=lambda vm: f"undo rollback {vm.name}",
    vm=lambda vm: vm.name,
    plan=lambda services, vm: snapshots.plan_rollback_undo(services, vm.name),
)


def _bulk_body(console: Console, names: tuple[str, ...]) -> Text:
    state = console.state
    body = Text.assemble(f"Take one snapshot of each of these {len(names)} VMs, at the same time:\n\n")
    for name in names:
        vm = state.vm(name) if state is not None and name else None
        body.append("  • ")
        body.append(text.where(vm) if vm else text.plain(name))
        body.append("\n")
    body.append("\nRunning VMs are frozen (fsfreeze) for an instant.")
    return body


def _clear_marks(app: App[Any], record: TaskRecord) -> None:
    main = find_main(app)
    if main is not None and record.state is TaskState.DONE:
        main.table.clear_marks()


BULK = ConfirmTask[tuple[str, ...]](
    title=lambda names: f"Snapshot {len(names)} VMs",
    body=_bulk_body,
    confirm="Snapshot all",
    task=lambda names: f"bulk snapshot of {len(names)} VMs",
    vm=lambda names: None,
    plan=lambda services, names: snapshots.plan_bulk_snapshot(services, list(names)),
    typed=lambda names: str(len(names)),
    typed_what="the number of VMs",
    danger=False,
    on_finish=_clear_marks,
)


def create(request: Request) -> None:
    vm_name = request.vm.name
    console = request.console

    def chosen(choice: tuple[str, bool] | None) -> None:
        if choice is None:
            return
        snap, freeze = choice
        console.start_task(
            f"snapshot {vm_name} {snap}",
            vm_name,
            lambda s: snapshots.plan_snapshot_create(s, vm_name, snap, freeze=freeze),
        )

    app, vm = request.app, request.vm

    def open_form(config: ops.DomainConfig | None) -> None:
        agent = None if config is None else ops.has_guest_agent(config.xml or "")
        app.push_screen(SnapshotCreateScreen(vm, console.now(), request.snapshot, guest_agent=agent), chosen)

    # whether the guest has an agent decides the freeze box: the XML says it, read first
    console.call_in_thread(
        lambda: ops.read_domain_config(console.services, vm_name),
        open_form,
        f"read the XML of {vm_name}",
        on_error=lambda _exc: open_form(None),
        quiet=True,
    )


def _find_snapshot(request: Request) -> Snapshot | None:
    """The snapshot asked for, or None (and the operator told why)."""
    vm, name = request.vm, request.snapshot
    if name is None:
        request.app.notify("Select a snapshot in the snapshot pane (tab) first.", severity="warning", markup=False)
        return None
    found = next((s for s in vm.snapshots if s.name == name), None)
    if found is None:
        request.app.notify(text.safe(f"{vm.name} has no snapshot {name!r}"), severity="error", markup=False)
    return found


def remove(request: Request) -> None:
    snap = _find_snapshot(request)
    if snap is not None:
        confirm_task(request.app, REMOVE, VmSnapshot(request.vm, snap))


def protect(request: Request) -> None:
    snap = _find_snapshot(request)
    if snap is None:
        return
    name, snap_name, protecting = request.vm.name, snap.name, not snap.protected
    verb = "protect" if protecting else "unprotect"
    request.console.start_task(
        f"{verb} snapshot {name}@{snap_name}",
        name,
        lambda s: snapshots.plan_snapshot_protect(s, name, snap_name, protecting),
        show=False,
    )


# ---------------------------------------------------------------------------------------------- rollback
def rollback(request: Request) -> None:
    vm, app, console = request.vm, request.app, request.console
    if not vm.snapshots:
        app.notify(text.safe(f"{vm.name} has no snapshot to roll back to."), severity="warning", markup=False)
        return
    name = vm.name

    def picked(snap: str | None) -> None:
        if snap is not None:
            console.call_in_thread(
                lambda: snapshots.rollback_plan(console.services, name, snap, safety=True),
                lambda plan: show_rollback_impact(app, plan),
                f"plan the rollback of {name}",
            )

    app.push_screen(RollbackPickScreen(vm, console.now(), request.snapshot), picked)


def show_rollback_impact(app: App[Any], plan: RollbackPlan) -> None:
    """What the rollback does (downtime, data lost, the safety snapshot); on yes, the rollback task."""
    console = console_of(app)

    def decided(safety: bool | None) -> None:
        if safety is None:
            return
        vm, snap = plan.vm, plan.snapshot.name
        keep_plan = safety == (plan.safety_snapshot is not None)

        def planner(s: Services) -> Task:
            chosen = plan if keep_plan else snapshots.rollback_plan(s, vm, snap, safety=safety)
            return snapshots.plan_rollback(s, chosen)

        console.start_task(f"rollback {vm} to {snap}", vm, planner)

    app.push_screen(RollbackImpactScreen(plan, console.now()), decided)


def rollback_undo(request: Request) -> None:
    confirm_task(request.app, ROLLBACK_UNDO, request.vm)


# ---------------------------------------------------------------------------------------------- purge and bulk
def purge(request: Request) -> None:
    name = request.vm.name
    console = request.console

    def confirmed(plan: PurgePlan | None) -> None:
        if plan is not None:
            console.start_task(
                f"purge snapshots of {name} ({len(plan.remove)})", name, lambda s: snapshots.plan_purge(s, plan)
            )

    request.app.push_screen(PurgeScreen(request.vm, console.now()), confirmed)


def retention(request: Request) -> None:
    name = request.vm.name
    console = request.console

    def confirmed(plan: PurgePlan | None) -> None:
        if plan is not None:
            console.start_task(
                f"prune snapshots of {name} ({len(plan.remove)})", name, lambda s: snapshots.plan_purge(s, plan)
            )

    request.app.push_screen(RetentionScreen(request.vm, console.now()), confirmed)


def _prune_body(plans: list[PurgePlan]) -> Text:
    body = Text(f"Every VM's retention policy, applied now (dry run of {len(plans)} VMs):\n", end="")
    for plan in plans:
        body.append("\n")
        body.append(text.plain(plan.vm, "bold"))
        body.append(f": {text.safe(plan.mode)}: ")
        body.append(f"{len(plan.remove)} to remove", style="bold red" if plan.remove else "")
        body.append(f", {len(plan.keep)} kept")
        for snap in plan.remove:
            body.append("\n  remove ", style="red")
            body.append(text.plain(snap.name))
            body.append(f"  {text.stamp(snap.created)}", style="dim")
    body.append("\n\nRemoved snapshots cannot come back.", style="bold red")
    return body


def prune(request: Request) -> None:
    """``snapshot prune`` for every VM with a retention policy: the dry run of each, then one task."""
    app, console = request.app, request.console

    def compute() -> list[PurgePlan]:
        services = console.services
        known = snapshots.policies(services)
        return [snapshots.prune_plan(services, vm, policy) for vm, policy in sorted(known.items())]

    def planned(plans: list[PurgePlan]) -> None:
        if not plans:
            app.notify("No VM has a retention policy (K sets one).", title="Prune", severity="information")
            return
        removing = [p for p in plans if p.remove]
        if not removing:
            app.notify(
                f"Nothing to remove: the {len(plans)} VM(s) with a policy keep every snapshot they have.",
                title="Prune",
                severity="information",
            )
            return
        total = sum(len(p.remove) for p in removing)

        def start() -> None:
            console.start_task(
                f"prune {total} snapshot(s) of {len(removing)} VM(s)",
                removing[0].vm if len(removing) == 1 else None,
                lambda s: snapshots.plan_purge_many(s, removing),
            )

        ask(
            app,
            f"Prune {total} snapshot(s)",
            _prune_body(plans),
            start,
            label="Prune",
            typed=str(total),
            typed_what="the number of snapshots to remove",
        )

    console.call_in_thread(compute, planned, "dry run of every retention policy")


def bulk(request: Request) -> None:
    """A snapshot of every marked VM (or of the VM under the cursor when none is marked)."""
    main = find_main(request.app)
    marked = sorted(main.table.marked) if main else []
    if not marked:
        current = main.table.current_vm if main else None
        if current is None:
            request.app.notify("Mark VMs with space first.", severity="warning", markup=False)
            return
        marked = [current]
    confirm_task(request.app, BULK, tuple(marked))
