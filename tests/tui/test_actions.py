"""Action flows on a deterministic state with fake services: confirmations, progress, tasks."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import tui_sample
from textual.widgets import Button, Input
from tui_helpers import drive, settle, shown

from vmconsole.core import snapshots, vms
from vmconsole.core.snapshots import PurgePlan, RollbackPlan
from vmconsole.domain.model import VmStatus
from vmconsole.tui.handlers.snapshot import show_rollback_impact
from vmconsole.tui.screens.confirm import ConfirmModal
from vmconsole.tui.screens.help import HelpScreen
from vmconsole.tui.screens.main import MainScreen
from vmconsole.tui.screens.progress import TaskScreen
from vmconsole.tui.screens.purge import PurgeScreen
from vmconsole.tui.screens.rollback import RollbackImpactScreen
from vmconsole.tui.screens.rollback_pick import RollbackPickScreen
from vmconsole.tui.screens.snapshot_create import SnapshotCreateScreen
from vmconsole.tui.screens.tasks import TaskListScreen
from vmconsole.tui.task_record import TaskState
from vmconsole.tui.widgets.progress_pane import ProgressPane
from vmconsole.tui.widgets.vm_table import VmTable


def table(app: Any) -> VmTable:
    return app.screen.query_one(VmTable)


def rollback_plan(vm: str = "db1", snap: str = "nightly-20260504", safety: bool = True) -> RollbackPlan:
    snapshot = next(s for s in tui_sample.db1_snapshots() if s.name == snap)
    return RollbackPlan(
        vm=vm,
        snapshot=snapshot,
        status=VmStatus.STARTED,
        node="hv1",
        enabled=True,
        will_stop=True,
        restart_after=True,
        written_since=48 * tui_sample.MiB,
        expected_downtime=27.0,
        safety_snapshot="safety-20260504-120000" if safety else None,
        restores_config=True,
        warnings=(),
    )


def purge_plan() -> PurgePlan:
    snaps = tui_sample.db1_snapshots()
    return PurgePlan(
        vm="db1", remove=(snaps[1],), keep=((snaps[0], "protected"), (snaps[2], "not selected")), mode="oldest 1"
    )


def test_remove_needs_the_vm_name_typed(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(vms, "plan_remove", lambda s, vm: tui_sample.fake_task("remove", vm))
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("spare1")
        await pilot.press("delete")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.typed == "spare1"
        assert "cannot be undone" in modal.body.plain and "spare1" in modal.body.plain
        confirm = modal.query_one("#confirm", Button)
        assert confirm.disabled
        await pilot.press("enter")  # nothing typed: refused
        await pilot.press(*"spare")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and confirm.disabled and not app.tasks
        await pilot.press("1")
        await pilot.pause()
        assert not confirm.disabled
        await pilot.press("enter")
        await settle(pilot, app)
        assert fake_services.ran == ["remove"]
        record = app.tasks[-1]
        assert record.state is TaskState.DONE and record.vm == "spare1"
        assert isinstance(app.screen, TaskScreen)

    drive(app, scenario)


def test_task_progress_pane_runs_in_the_background_and_lists(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    gate = threading.Event()
    app = make_app(services=fake_services)

    def planner(s: Any) -> Any:
        return tui_sample.fake_task(
            "snapshot-create", "spare1", 3, total=64 * tui_sample.MiB, gate=gate, summary="snapshot spare1 taken"
        )

    async def scenario(pilot: Any) -> None:
        app.start_task("snapshot spare1", "spare1", planner)  # a task with a view: its progress pane
        for _ in range(50):
            await pilot.pause(0.02)
            if app.tasks and app.tasks[-1].state is TaskState.RUNNING:
                break
        screen = app.screen
        assert isinstance(screen, TaskScreen)
        record = app.tasks[-1]
        assert record.active and record.steps == tuple(f"step {i} of snapshot-create" for i in (1, 2, 3))
        await pilot.press("escape")  # to the background: it keeps running
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and record.active
        assert "1 task" in app.screen.query_one("#header").render().plain
        gate.set()
        await settle(pilot, app)
        assert record.state is TaskState.DONE and record.message == "snapshot spare1 taken"
        assert record.percent == 100.0
        assert any("step 3 did its work" in line for line in record.log)
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, TaskListScreen)
        assert "snapshot spare1 taken" in shown(app.screen.query_one("#tasks-result"))  # the result in full
        await pilot.press("enter")
        await pilot.pause()
        pane = app.screen.query_one(ProgressPane)
        pane.sync()
        assert "DONE" in shown(pane.query_one("#progress-current"))

    drive(app, scenario)


def test_one_step_actions_run_inline_and_a_no_op_leaves_no_task(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    from vmconsole.domain.errors import ConflictError

    gate = threading.Event()
    monkeypatch.setattr(
        vms, "plan_start", lambda s, vm: tui_sample.fake_task("start", vm, 1, gate=gate, summary=f"{vm} Started on hv1")
    )

    def already(s: Any, vm: str) -> Any:
        raise ConflictError(f"{vm} is already Stopped: nothing to do", reason="already_stopped")

    monkeypatch.setattr(vms, "plan_stop", lambda s, vm, force=False: already(s, vm))
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("spare1")
        await pilot.press("s")  # start a Stopped VM: no task view, progress on its row
        for _ in range(50):
            await pilot.pause(0.02)
            if app.tasks and app.tasks[-1].state is TaskState.RUNNING:
                break
        assert isinstance(app.screen, MainScreen)
        app._tick()
        await pilot.pause()
        assert "⟳ start" in table(app).get_cell("spare1", "note").plain
        gate.set()
        await settle(pilot, app)
        assert app.tasks[-1].state is TaskState.DONE and isinstance(app.screen, MainScreen)
        assert any(n.title == "Done" and "spare1 Started on hv1" in n.message for n in app._notifications)
        table(app).move_to("web1")
        await pilot.press("s")  # already Started: said so, no task
        await pilot.pause()
        assert len(app.tasks) == 1
        assert any(n.title == "Nothing to do" and "web1 is already Started" in n.message for n in app._notifications)
        # core's already_* answer too: an information notice, and no task left behind
        monkeypatch.setattr(vms, "plan_cleanup", lambda s, vm: already(s, vm))
        app.perform("cleanup", "web2")
        await settle(pilot, app)
        notes = [n for n in app._notifications if n.title == "Nothing to do"]
        assert notes[-1].message == "web2 is already Stopped: nothing to do" and notes[-1].severity == "information"
        assert all(r.vm != "web2" for r in app.tasks)
        assert not any(n.severity == "error" for n in app._notifications)

    drive(app, scenario)


def test_a_failing_stop_offers_force_stop(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(
        vms, "plan_stop", lambda s, vm, force=False: tui_sample.fake_task("stop", vm, 2, fail_at=None if force else 1)
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("web1")
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")  # y/n modal: y confirms
        await settle(pilot, app)
        record = app.tasks[-1]
        assert record.state is TaskState.FAILED and "step 2 broke" in record.message
        assert [f.action for f in record.follow_ups] == ["force-stop"]
        assert any("step 2 broke" in n.message for n in app._notifications)  # the central error path
        assert isinstance(app.screen, TaskScreen)
        await pilot.press("f")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and "forced off" in modal.body.plain
        await pilot.press("y")
        await settle(pilot, app)
        assert app.tasks[-1].state is TaskState.DONE and fake_services.ran == ["stop", "stop"]

    drive(app, scenario)


def test_planning_errors_go_through_the_error_path(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    from vmconsole.domain.errors import ConflictError

    def refuse(s: Any, vm: str) -> Any:
        raise ConflictError(f"{vm} is already enabled", field="name", hint="press s to start it")

    monkeypatch.setattr(vms, "plan_enable", refuse)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("build1")
        await pilot.press("e")  # enabling a Disabled VM asks first
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and "Pacemaker starts it" in modal.body.plain
        await pilot.press("y")
        await settle(pilot, app)
        record = app.tasks[-1]
        assert record.state is TaskState.FAILED
        note = next(n for n in app._notifications if n.severity == "error")
        assert note.message == "build1 is already enabled\nfield: name\nhint: press s to start it"

    drive(app, scenario)


def test_snapshot_create_checks_the_name_and_runs(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    seen: dict[str, Any] = {}

    def plan(s: Any, vm: str, name: str | None = None, *, freeze: bool = True) -> Any:
        seen.update(vm=vm, name=name, freeze=freeze)
        return tui_sample.fake_task("snapshot-create", vm, 1)

    monkeypatch.setattr(snapshots, "plan_snapshot_create", plan)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("db1")
        await pilot.press("n")
        await settle(pilot, app)  # the XML is read first: does the guest have an agent?
        screen = app.screen
        assert isinstance(screen, SnapshotCreateScreen)
        name = screen.query_one("#snap-name", Input)
        assert name.value == "snap-20260504-120000"  # from the injected clock
        name.value = "bad name!"
        await pilot.pause()
        assert screen.query_one("#ok", Button).disabled
        assert "not allowed" in shown(screen.query_one("#snap-name-error"))
        name.value = "before-upgrade"  # exists already
        await pilot.pause()
        assert screen.query_one("#ok", Button).disabled
        name.value = "pre-release"
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot, app)
        assert seen == {"vm": "db1", "name": "pre-release", "freeze": True}
        assert app.tasks[-1].state is TaskState.DONE

    drive(app, scenario)


def test_guided_rollback_impact_typed_name_then_undo(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    calls: list[tuple[str, Any]] = []

    def plan_of(s: Any, vm: str, name: str, *, safety: bool = True) -> RollbackPlan:
        calls.append(("plan", (vm, name, safety)))
        return rollback_plan(vm, name, safety)

    def run_rollback(s: Any, plan: RollbackPlan) -> Any:
        calls.append(("rollback", (plan.vm, plan.snapshot.name, plan.safety_snapshot)))
        return tui_sample.fake_task("snapshot-rollback", plan.vm, 4)

    def undo(s: Any, vm: str) -> Any:
        calls.append(("undo", vm))
        return tui_sample.fake_task("snapshot-rollback-undo", vm, 2)

    monkeypatch.setattr(snapshots, "rollback_plan", plan_of)
    monkeypatch.setattr(snapshots, "plan_rollback", run_rollback)
    monkeypatch.setattr(snapshots, "plan_rollback_undo", undo)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("db1")
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, RollbackPickScreen)
        await pilot.press("up")  # newest is preselected: go one older
        await pilot.press("enter")
        await settle(pilot, app)
        impact = app.screen
        assert isinstance(impact, RollbackImpactScreen)
        text_shown = shown(impact.query_one("#impact"))
        for expected in ("db1", "hv1", "YES", "48 MiB", "about 27 s", "nightly-20260504"):
            assert expected in text_shown, expected
        assert calls == [("plan", ("db1", "nightly-20260504", True))]
        ok = impact.query_one("#ok", Button)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RollbackImpactScreen) and ok.disabled
        await pilot.press(*"db1")
        await pilot.pause()
        assert not ok.disabled
        await pilot.press("enter")
        await settle(pilot, app)
        assert calls[-1] == ("rollback", ("db1", "nightly-20260504", "safety-20260504-120000"))
        record = app.tasks[-1]
        assert record.state is TaskState.DONE
        assert [f.label for f in record.follow_ups] == ["Undo rollback"]
        assert isinstance(app.screen, TaskScreen)
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(pilot, app)
        assert calls[-1] == ("undo", "db1") and app.tasks[-1].state is TaskState.DONE

    drive(app, scenario)


def test_rollback_without_safety_replans(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(snapshots, "rollback_plan", lambda s, vm, name, safety=True: rollback_plan(vm, name, safety))
    monkeypatch.setattr(
        snapshots,
        "plan_rollback",
        lambda s, plan: seen.append(plan.safety_snapshot) or tui_sample.fake_task("x", plan.vm, 1),
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        show_rollback_impact(app, rollback_plan())
        await pilot.pause()
        screen = app.screen
        await pilot.click("#safety")
        await pilot.pause()
        assert "cannot be recovered" in shown(screen.query_one("#safety-warning"))
        screen.query_one("#typed", Input).value = "db1"
        await pilot.pause()
        await pilot.click("#ok")
        await settle(pilot, app)
        assert seen == [None]

    drive(app, scenario)


def test_purge_shows_the_dry_run_before_confirming(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    asked: list[dict[str, Any]] = []

    def dry_run(s: Any, vm: str, **kwargs: Any) -> PurgePlan:
        asked.append(kwargs)
        return purge_plan()

    ran: list[PurgePlan] = []
    monkeypatch.setattr(snapshots, "purge_plan", dry_run)
    monkeypatch.setattr(
        snapshots, "plan_purge", lambda s, plan: ran.append(plan) or tui_sample.fake_task("snapshot-purge", plan.vm, 1)
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("db1")
        await pilot.press("P")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PurgeScreen)
        assert screen.query_one("#ok", Button).disabled
        screen.query_one("#typed", Input).value = "db1"  # typing the name before the dry run is not enough
        await pilot.pause()
        assert screen.query_one("#ok", Button).disabled
        await pilot.click("#preview")
        await settle(pilot, app)
        assert asked == [{"oldest": 1}]
        listing = screen.query_one("#purge-list")
        assert listing.row_count == 3  # type: ignore[attr-defined]
        assert "1 to remove, 2 kept" in shown(screen.query_one("#purge-summary"))
        assert not screen.query_one("#ok", Button).disabled
        screen.query_one("#purge-oldest", Input).value = "2"  # a new choice drops the preview
        await pilot.pause()
        assert screen.query_one("#ok", Button).disabled
        await pilot.click("#preview")
        await settle(pilot, app)
        await pilot.click("#ok")
        await settle(pilot, app)
        assert asked[-1] == {"oldest": 2} and ran == [purge_plan()]

    drive(app, scenario)


def test_bulk_snapshot_of_marked_vms_needs_the_count(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    got: list[list[str]] = []
    monkeypatch.setattr(
        snapshots,
        "plan_bulk_snapshot",
        lambda s, names, name=None: got.append(names) or tui_sample.fake_task("snapshot-bulk", None),
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        vms_table = table(app)
        vms_table.move_to("web1")
        await pilot.press("space")  # marks web1, moves down to web2
        await pilot.press("space")
        await pilot.pause()
        assert vms_table.marked == {"web1", "web2"}
        assert vms_table.get_cell("web1", "mark").plain == "●"
        await pilot.press("N")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.typed == "2"
        await pilot.press("2", "enter")
        await settle(pilot, app)
        assert got == [["web1", "web2"]] and vms_table.marked == set()  # cleared after success

    drive(app, scenario)


def test_command_line_runs_the_same_flows(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(vms, "plan_start", lambda s, vm: tui_sample.fake_task("start", vm, 1))
    app = make_app(services=fake_services)

    async def command(pilot: Any, line: str) -> None:
        await pilot.press("colon")
        box = app.screen.query_one("#command", Input)
        assert app.screen.focused is box
        box.value = line
        await pilot.press("enter")
        await pilot.pause()

    async def scenario(pilot: Any) -> None:
        await command(pilot, "start spare1")
        await settle(pilot, app)
        assert app.tasks[-1].vm == "spare1" and app.tasks[-1].state is TaskState.DONE
        await pilot.press("escape")
        await command(pilot, "filter status:failed")
        assert table(app).visible_names == ["legacy"]
        await command(pilot, "remove web1")
        assert isinstance(app.screen, ConfirmModal) and app.screen.typed == "web1"
        await pilot.press("escape")
        await command(pilot, "bogus")
        assert any("unknown command 'bogus'" in n.message for n in app._notifications)

    drive(app, scenario)


def test_help_is_for_the_focused_widget(make_app: Any) -> None:
    app = make_app(read_only=True)

    async def scenario(pilot: Any) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen) and screen.title_text == "VmTable"
        assert "## VM table" in screen.help_markdown
        keys = {k.description: k for k in screen.keys}
        assert keys["Rollback"].enabled is False and "read-only" in (keys["Rollback"].reason or "")
        await pilot.press("escape", "tab", "question_mark")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen) and screen.title_text == "ClusterPane"
        keys = {k.description: k for k in screen.keys}
        assert keys["Standby (drain)"].enabled is False and "read-only" in (keys["Standby (drain)"].reason or "")
        assert keys["Online"].enabled is False
        await pilot.press("escape", "tab", "question_mark")
        await pilot.pause()
        assert app.screen.title_text == "SnapshotPane"  # type: ignore[attr-defined]

    drive(app, scenario)


def test_markup_and_escapes_in_cluster_strings_are_shown_literally(source: tui_sample.Source, make_app: Any) -> None:
    from dataclasses import replace
    from types import MappingProxyType

    from vmconsole.domain.model import Failure
    from vmconsole.tui.screens.vm_detail import VmDetailScreen
    from vmconsole.tui.widgets.detail_strip import DetailStrip

    evil = "[bold red]pwn[/] \x1b[2J\x07"
    failure = Failure(
        operation="monitor",
        node="hv1",
        exit_status="error",
        exit_reason=evil,
        exit_code=7,
        when=tui_sample.NOW - timedelta(minutes=1),
    )
    bad = replace(
        tui_sample.vm("[link=x]evil[/link]", VmStatus.FAILED, "hv1"),
        failed=True,
        last_failure=failure,
        metadata=MappingProxyType({"note": evil}),
    )
    source.current = replace(source.current, vms=(*source.current.vms, bad))
    app = make_app()

    async def scenario(pilot: Any) -> None:
        vms_table = table(app)
        assert vms_table.move_to("[link=x]evil[/link]")
        await pilot.pause()
        assert vms_table.get_cell("[link=x]evil[/link]", "name").plain == "[link=x]evil[/link]"
        strip = app.screen.query_one(DetailStrip).render().plain
        assert "[bold red]pwn[/] \\x1b[2J\\x07" in strip and "\x1b" not in strip
        app.push_screen(VmDetailScreen("[link=x]evil[/link]"))
        await pilot.pause()
        await pilot.pause()
        rendered = "\n".join(shown(s) for s in app.screen.query(".section"))
        exported = app.export_screenshot()
        assert "\x1b[2J" not in exported and "\x07" not in exported
        assert "[bold red]pwn[/]" in exported.replace("&#160;", " ")
        assert "[bold red]pwn[/] \\x1b[2J\\x07" in rendered and "\x1b" not in rendered

    drive(app, scenario, size=(80, 24))
