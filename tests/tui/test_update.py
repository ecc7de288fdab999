"""Update in place with a diff first, and read-only mode gating the node, move and update actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tui_sample
from textual.widgets import Button, Input, Select
from tui_helpers import drive, settle, shown

from vmconsole.core.vms import UpdatePlan, VmOptions
from vmconsole.domain.errors import ValidationError
from vmconsole.tui import ops
from vmconsole.tui.handlers.vm import show_update_diff
from vmconsole.tui.provider import VmCommandProvider
from vmconsole.tui.screens.config_view import ConfigScreen
from vmconsole.tui.screens.main import MainScreen
from vmconsole.tui.screens.update import UpdateScreen
from vmconsole.tui.screens.update_diff import UpdateDiffScreen
from vmconsole.tui.screens.vm_detail import VmDetailScreen
from vmconsole.tui.task_record import TaskState
from vmconsole.tui.widgets.cluster_pane import ClusterPane
from vmconsole.tui.widgets.vm_table import VmTable

NEW_BASE = "<domain type='kvm'><name>db1</name><memory unit='MiB'>2048</memory><vcpu>2</vcpu><devices/></domain>"


def messages(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


def test_update_shows_the_diff_and_needs_the_typed_name_for_a_restart(
    make_app: Any, fake_services: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    fake = tui_sample.FakeOperations().install(monkeypatch)
    stored = {"xml": tui_sample.DB1_XML}
    monkeypatch.setattr(ops, "read_domain_config", lambda s, vm: ops.DomainConfig(vm, stored["xml"], NEW_BASE))
    xml_file = tmp_path / "db1.xml"
    xml_file.write_text(NEW_BASE)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.screen.query_one(VmTable).move_to("db1")
        await pilot.press("v")
        await settle(pilot, app)
        view = app.screen
        assert isinstance(view, ConfigScreen)
        await pilot.press("u")  # edit / update, from the XML view
        await pilot.pause()
        form = app.screen
        assert isinstance(form, UpdateScreen)
        await pilot.click("#ok")  # nothing given yet
        await pilot.pause()
        assert "Nothing given: pick a new domain XML and/or change a setting." in messages(app) and not fake.calls
        form.query_one("#update-xml", Input).value = str(xml_file)
        form.query_one("#vs-priority", Input).value = "5"
        await pilot.pause()
        assert "valid domain XML" in shown(form.query_one("#update-xml-error"))
        await pilot.click("#ok")
        await settle(pilot, app)
        assert fake.calls == [("update_plan", ("db1", NEW_BASE, VmOptions(priority="5")))]
        screen = app.screen
        assert isinstance(screen, UpdateDiffScreen)
        summary = shown(screen.query_one("#update-summary"))
        assert "update db1 in place" in summary and "_priority: 0 -> 5" in summary
        assert "db1 is restarted" in summary and "<memory" not in summary  # the diff is below, not here
        diff = screen.query_one("#update-diff-text").content.code  # type: ignore[attr-defined]
        assert '-  <memory unit="MiB">1024</memory>' in diff and '+  <memory unit="MiB">2048</memory>' in diff
        ok = screen.query_one("#ok", Button)
        assert ok.disabled and screen.focused is not None and screen.focused.id == "typed"
        await pilot.press("y", "enter")  # y is not enough when the VM restarts
        await pilot.pause()
        assert isinstance(app.screen, UpdateDiffScreen) and ok.disabled
        screen.query_one("#typed", Input).value = ""
        await pilot.press(*"db1")
        await pilot.pause()
        assert not ok.disabled
        stored["xml"] = tui_sample.DB1_NEW_XML
        await pilot.press("enter")
        await settle(pilot, app)
        assert fake.calls[-1] == ("plan_update", ("db1", True))
        record = app.tasks[-1]
        assert record.state is TaskState.DONE and record.title == "update db1"
        assert record.message == "db1 updated in place"
        await settle(pilot, app)
        await pilot.press("escape")  # the progress screen: back to the XML view, re-read
        await pilot.pause()
        assert app.screen is view and view.config.xml == tui_sample.DB1_NEW_XML
        diff = view.query(".xml-view Static").first().content.code  # type: ignore[attr-defined]
        assert "2048" in diff and "1024" not in diff  # the recomposed view shows the new definition

    drive(app, scenario)


def test_update_without_restart_is_a_y_n_question_and_nothing_to_change_is_a_note(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    fake = tui_sample.FakeOperations().install(monkeypatch)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.screen.query_one(VmTable).move_to("web1")
        # nothing to change: a notification, the form stays
        fake.plan = UpdatePlan(vm="web1", xml_diff=(), metadata_changes={}, restart=False, primitive_changed=False)
        await pilot.press("u")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, UpdateScreen)
        form.query_one("#vs-stop-timeout", Input).value = "30"
        await pilot.click("#ok")
        await settle(pilot, app)
        assert isinstance(app.screen, UpdateScreen)
        note = next(n for n in app._notifications if "nothing to change" in n.message)
        assert note.message == "web1: nothing to change" and note.severity == "information"
        # a refused value: said under its field as typed (the CLI's message), the form stays to fix it
        calls = len(fake.calls)
        form.query_one("#vs-priority", Input).value = "high"
        await pilot.pause()
        assert shown(form.query_one("#vs-priority-error")).strip() == "must be an integer, got 'high'"
        await pilot.click("#ok")
        await settle(pilot, app)
        assert len(fake.calls) == calls and isinstance(app.screen, UpdateScreen)
        # what the service refuses at plan time goes through the central error path
        fake.plan = ValidationError("no such node", field="preferred_host")
        form.query_one("#vs-priority", Input).value = "7"
        await pilot.click("#ok")
        await settle(pilot, app)
        error = next(n for n in app._notifications if n.severity == "error")
        assert error.message == "no such node\nfield: preferred_host"
        assert isinstance(app.screen, UpdateScreen) and not form.query_one("#ok", Button).disabled
        # settings only, no restart: y/n, defaulting to No
        fake.plan = tui_sample.update_plan("web1", restart=False, xml=False)
        form.query_one("#vs-priority", Input).value = ""
        form.query_one("#vs-live", Select).value = "on"
        form.query_one("#vs-preferred-host", Select).value = "hv2"
        await pilot.click("#ok")
        await settle(pilot, app)
        options = VmOptions(stop_timeout="30", live_migration=True, preferred_host="hv2")
        assert fake.calls[-1] == ("update_plan", ("web1", None, options))
        screen = app.screen
        assert isinstance(screen, UpdateDiffScreen)
        assert "the domain XML does not change" in shown(screen.query_one("#update-diff-text"))
        assert "no restart needed" in shown(screen.query_one("#update-summary"))
        assert screen.focused is not None and screen.focused.id == "cancel"
        await pilot.press("enter")  # the default answer: No
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and not app.tasks
        show_update_diff(app, tui_sample.update_plan("web1", restart=False, xml=False))
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot, app)
        assert fake.calls[-1] == ("plan_update", ("web1", False)) and app.tasks[-1].state is TaskState.DONE

    drive(app, scenario)


def test_read_only_disables_node_move_and_update_with_the_reason(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    fake = tui_sample.FakeOperations().install(monkeypatch)
    monkeypatch.setattr(
        ops, "read_domain_config", lambda s, vm: ops.DomainConfig(vm, tui_sample.DB1_XML, tui_sample.DB1_XML)
    )
    app = make_app(read_only=True, services=fake_services)

    def refusals(label: str) -> int:
        return sum(1 for m in messages(app) if m.startswith(f"{label} is disabled: read-only mode"))

    async def scenario(pilot: Any) -> None:
        main = app.screen
        main.query_one(VmTable).move_to("db1")
        assert main.check_action("act", ("move",)) is None and main.check_action("act", ("update",)) is None
        await pilot.press("M", "u")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert refusals("Move") == 1 and refusals("Update") == 1
        await pilot.press("tab")
        pane = main.query_one(ClusterPane)
        assert main.focused is pane
        assert pane.check_action("act", ("standby",)) is None and pane.check_action("cursor", (1,)) is True
        await pilot.press("S", "O")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert refusals("Standby (drain)") == 1 and refusals("Online") == 1
        app.perform("standby", node="hv1")  # the palette and the : line go through the same gate
        main.run_command("online hv3")
        main.run_command("move db1 hv2")
        await pilot.pause()
        assert refusals("Standby (drain)") == 2 and refusals("Online") == 2 and refusals("Move") == 2
        texts = [c.text for c in VmCommandProvider(main).commands()]
        assert "Standby (drain): node hv1 (read-only)" in texts and "Online: node hv3 (read-only)" in texts
        assert "Online: node hv1 (read-only)" not in texts  # hv1 is online already
        # the detail and XML views grey their keys out and say why
        await pilot.press("shift+tab")
        main.query_one(VmTable).move_to("db1")
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, VmDetailScreen)
        assert detail.check_action("act", ("move",)) is None and detail.check_action("act", ("metadata",)) is True
        await pilot.press("M")
        await pilot.pause()
        assert app.screen is detail and refusals("Move") == 3
        await pilot.press("v")
        await settle(pilot, app)
        config = app.screen
        assert isinstance(config, ConfigScreen) and config.check_action("act", ("update",)) is None
        await pilot.press("u")
        await pilot.pause()
        assert app.screen is config and refusals("Update") == 2
        assert not fake.calls and not app.tasks and fake_services.ran == []

    drive(app, scenario)
