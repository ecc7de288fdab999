"""Where VMs run: node standby/online from the cluster pane, moving a VM, libvirt events nudging the refresh."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import tui_sample
from textual.widgets import Button, DataTable
from tui_helpers import drive, settle

from vmconsole.core import services as core_services
from vmconsole.domain.errors import BackendError
from vmconsole.domain.model import NodeState, NodeStatus
from vmconsole.tui.screens.confirm import ConfirmModal
from vmconsole.tui.screens.main import MainScreen
from vmconsole.tui.screens.node_pick import NodePickScreen
from vmconsole.tui.screens.progress import TaskScreen
from vmconsole.tui.screens.vm_detail import VmDetailScreen
from vmconsole.tui.task_record import TaskState
from vmconsole.tui.widgets.cluster_pane import ClusterPane
from vmconsole.tui.widgets.vm_table import VmTable


def messages(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


def test_node_standby_needs_the_typed_node_name_and_reports_moves(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    fake = tui_sample.FakeOperations().install(monkeypatch)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        await pilot.press("tab")
        pane = app.screen.query_one(ClusterPane)
        assert app.screen.focused is pane and pane.cursor_node == "hv1"
        await pilot.press("S")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.typed == "hv1" and modal.typed_what == "the node name"
        body = modal.body.plain
        assert "Put node hv1 in standby" in body
        for vm in ("web1", "db1", "cache1"):  # the VMs it hosts, each with its status
            assert f"{vm} (Started" in body, vm
        assert "web2" not in body
        confirm = modal.query_one("#confirm", Button)
        assert confirm.disabled and modal.focused is not None and modal.focused.id == "typed"
        await pilot.press("enter")  # nothing typed: refused
        assert isinstance(app.screen, ConfirmModal) and confirm.disabled and not fake.calls
        await pilot.press(*"hv1")
        await pilot.pause()
        assert not confirm.disabled
        await pilot.press("enter")
        await settle(pilot, app)
        assert fake.calls == [("plan_node_standby", ("hv1", True))]
        assert fake_services.ran == ["node-standby"]
        record = app.tasks[-1]
        assert record.state is TaskState.DONE and record.vm is None
        assert isinstance(app.screen, TaskScreen)
        log = "\n".join(record.log)
        assert "where each VM went:" in log
        assert "web1: hv1 → hv2" in log and "cache1: hv1 → stopped" in log
        moved = next(n for n in app._notifications if "where the VMs went" in n.title)
        assert moved.message == "cache1: hv1 → stopped\ndb1: hv1 → hv2\nweb1: hv1 → hv2"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.focused is pane
        # hv3 is in standby: standby is refused at once, online is a y/n question
        await pilot.press("down", "down")
        assert pane.cursor_node == "hv3"
        await pilot.press("S")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and "Node hv3 is already in standby." in messages(app)
        await pilot.press("O")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.typed is None
        assert "Bring node hv3 (standby) back online?" in modal.body.plain
        assert modal.focused is not None and modal.focused.id == "cancel"  # defaults to No
        await pilot.press("y")
        await settle(pilot, app)
        assert fake.calls[-1] == ("plan_node_standby", ("hv3", False))
        assert app.tasks[-1].state is TaskState.DONE and app.tasks[-1].title == "online hv3"
        pane.action_cursor(5)  # stops on the last node
        assert pane.cursor_node == "hv3"
        # the command line names the node
        await pilot.press("escape")
        app.screen.run_command("drain hv2")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and app.screen.typed == "hv2"
        assert "web2 (Started" in app.screen.body.plain and "batch7 (Starting" in app.screen.body.plain

    drive(app, scenario)


def test_move_picker_lists_only_other_online_nodes_and_refuses_a_non_started_vm(
    source: tui_sample.Source, make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    fake = tui_sample.FakeOperations().install(monkeypatch)
    extra = (
        NodeState("hv4", "4", NodeStatus.ONLINE),
        NodeState("hv5", "5", NodeStatus.MAINTENANCE),
        NodeState("rn1", "6", NodeStatus.ONLINE, kind="remote"),
    )
    source.current = replace(source.current, nodes=(*source.current.nodes, *extra))
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table = app.screen.query_one(VmTable)
        table.move_to("spare1")
        await pilot.press("M")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert "spare1 is Stopped: only a Started VM can be moved." in messages(app)
        table.move_to("web1")
        await pilot.press("M")
        await pilot.pause()
        picker = app.screen
        assert isinstance(picker, NodePickScreen)
        rows: DataTable[Any] = picker.query_one("#node-pick-table", DataTable)
        keys = [row.key.value for row in rows.ordered_rows]
        assert keys == ["hv2", "hv4"]  # not hv1 (its node), hv3 (standby), hv5 (maintenance), rn1 (remote)
        await pilot.press("down", "enter")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.typed is None
        body = modal.body.plain
        assert "Move web1 (Started on hv1)" in body and "from hv1" in body and "to   hv4" in body
        assert "Live migration is off" in body
        assert modal.focused is not None and modal.focused.id == "cancel"
        await pilot.press("y")
        await settle(pilot, app)
        assert fake.calls == [("plan_move", ("web1", "hv4"))]
        assert app.tasks[-1].state is TaskState.DONE and app.tasks[-1].title == "move web1 hv1 → hv4"
        await pilot.press("escape")
        # from the detail view, and by name on the command line
        table.move_to("db1")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, VmDetailScreen)
        await pilot.press("M")
        await pilot.pause()
        assert isinstance(app.screen, NodePickScreen) and app.screen.vm.name == "db1"
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        app.screen.run_command("move web2 hv3")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert any("hv3 is not another online node for web2; choose one of: hv1, hv4" in m for m in messages(app))
        app.screen.run_command("migrate web2 hv1")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and "to   hv1" in app.screen.body.plain
        await pilot.press("escape")
        await pilot.pause()
        assert len(fake.calls) == 1

    drive(app, scenario)


def test_core_refusal_of_a_move_goes_through_the_error_path(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    from vmconsole.core import placement
    from vmconsole.domain.errors import ConflictError

    def refuse(s: Any, vm: str, node: str) -> Any:
        raise ConflictError(
            f"{vm} is pinned to hv1", hint=f"change it with `vmconsole vm update {vm} --pinned-host {node}`"
        )

    monkeypatch.setattr(placement, "plan_move", refuse)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.perform("move", "web1", node="hv2")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot, app)
        assert app.tasks[-1].state is TaskState.FAILED
        note = next(n for n in app._notifications if n.severity == "error")
        assert note.message.startswith("web1 is pinned to hv1\nhint: change it with")

    drive(app, scenario)


# ---------------------------------------------------------------------------------------------- libvirt events
def test_libvirt_events_nudge_the_refresh_at_most_twice_a_second(
    source: tui_sample.Source, make_app: Any, monkeypatch: Any
) -> None:
    seen: dict[str, Any] = {}

    def watch(uri: str, on_event: Any, stop: threading.Event) -> None:
        seen["uri"] = uri
        for index in range(20):
            on_event(f"vm{index}", "started")
        seen["sent"] = True
        stop.wait()
        seen["stopped"] = True

    monkeypatch.setattr(core_services, "watch_lifecycle", watch)
    app = make_app(watch_events=True)

    async def scenario(pilot: Any) -> None:
        deadline = time.monotonic() + 5
        while app.lifecycle.events < 20 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert app.lifecycle.events == 20 and seen["uri"] == "qemu:///system"
        await pilot.pause(0.7)  # the trailing nudge
        await settle(pilot, app)
        # the first read, one nudge at once, one after 0.5 s for the events in between: not 20 reads
        assert 2 <= source.calls <= 3, source.calls
        assert app.lifecycle.nudge_timer is None

    drive(app, scenario)
    app.lifecycle.thread.join(2)  # type: ignore[union-attr]
    assert seen.get("stopped") is True  # unmount stops the watch


def test_without_libvirt_the_console_just_polls(make_app: Any, monkeypatch: Any) -> None:
    def watch(uri: str, on_event: Any, stop: threading.Event) -> None:
        raise BackendError("libvirt", "Failed to connect socket to '/run/libvirt/libvirt-sock-ro'")

    monkeypatch.setattr(core_services, "watch_lifecycle", watch)
    app = make_app(watch_events=True)
    injected = make_app()

    async def scenario(pilot: Any) -> None:
        app.lifecycle.thread.join(2)  # type: ignore[union-attr]
        await pilot.pause()
        assert "libvirt-sock-ro" in (app.lifecycle.problem or "")
        assert not app._notifications  # nothing scary on screen

    drive(app, scenario)
    assert injected._watch_events is False  # an injected state is never watched
