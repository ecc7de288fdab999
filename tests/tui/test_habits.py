"""Driving the console as an on-call engineer would (k9s habits), and the truths it must tell: Tab
completes and never leaks keys, vim motions, help that scrolls and lists every key, a failure that
stays on its row with its cause, freshness that says at once what it waits on, and honest texts."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tui_sample
from textual.widgets import Checkbox, Input
from tui_helpers import drive, settle, shown

from vmconsole.config import Config
from vmconsole.core import diagnose, vms
from vmconsole.core.diagnose import Diagnosis
from vmconsole.domain.errors import OperationIncomplete
from vmconsole.domain.model import Failure, NodeStatus, VmStatus
from vmconsole.tui.app import VmConsoleApp
from vmconsole.tui.handlers import vm as vm_handlers
from vmconsole.tui.screens.config_view import ConfigScreen
from vmconsole.tui.screens.confirm import ConfirmModal
from vmconsole.tui.screens.file_picker import FilePickerScreen, SafeDirectoryTree
from vmconsole.tui.screens.help import HelpScreen
from vmconsole.tui.screens.main import MainScreen
from vmconsole.tui.screens.progress import TaskScreen
from vmconsole.tui.screens.snapshot_create import SnapshotCreateScreen
from vmconsole.tui.screens.vm_detail import VmDetailScreen
from vmconsole.tui.task_record import TaskState
from vmconsole.tui.widgets.cluster_pane import ClusterPane
from vmconsole.tui.widgets.progress_pane import ProgressPane
from vmconsole.tui.widgets.vm_table import VmTable

QEMU_LOG = (
    "2026-05-04 09:00:00.100+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.0, hostname: hv2",
    "LC_ALL=C \\",
    "/usr/bin/qemu-system-x86_64 \\",
    "-name guest=spare1,debug-threads=on \\",
    "2026-05-04 09:10:00.000+0000: shutting down, reason=shutdown",
    "2026-05-04 11:59:00.100+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.0, hostname: hv2",
    "/usr/bin/qemu-system-x86_64 \\",
    "2026-05-04T11:59:01.200000Z qemu-system-x86_64: -blockdev {}: error connecting: Permission denied",
    "2026-05-04 11:59:01.300+0000: shutting down, reason=failed",
)


def table(app: Any) -> VmTable:
    return app.screen.query_one(VmTable)


def diagnosis(vm: str, log: tuple[str, ...] = QEMU_LOG, failed_at: Any = None) -> Diagnosis:
    when = failed_at or tui_sample.NOW - timedelta(minutes=1)
    failure = Failure("start", "hv2", "error", f"Failed to start virtual domain {vm}.", 1, when)
    return Diagnosis(
        vm=vm,
        status=VmStatus.STOPPED,
        node=None,
        enabled=True,
        target_role="Stopped",
        managed=True,
        blocked=False,
        fail_count=1000000,
        failures=(failure,),
        operations=(),
        problems=(),
        libvirt_host="hv2",
        libvirt_answered=True,
        libvirt_state="shut off",
        qemu_log=log,
    )


def test_tab_in_the_command_line_completes_and_no_key_reaches_the_table(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    started: list[str] = []
    monkeypatch.setattr(
        vms, "plan_enable", lambda s, vm, start=True: started.append(vm) or tui_sample.fake_task("enable", vm)
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("build1")  # Disabled: e would enable it
        await pilot.press("colon")
        box = app.screen.query_one("#command", Input)
        await pilot.press(*"sta")
        await pilot.pause()
        await pilot.press("tab")
        await pilot.pause()
        assert box.value == "start" and app.screen.focused is box  # start before standby; focus stays
        await pilot.press("space", "w", "e")
        await pilot.pause()
        await pilot.press("tab")
        await pilot.pause()
        assert box.value == "start web1" and app.screen.focused is box
        await pilot.press("tab", "tab")  # nothing more to complete: still here
        assert app.screen.focused is box and not started and not app.tasks
        box.value = "st"
        await pilot.pause()
        await pilot.press("tab")
        await pilot.pause()
        assert box.value == "start"
        await pilot.press("escape")
        await pilot.press("slash", *"we", "tab", "e")  # the filter box keeps tab and letters too
        await pilot.pause()
        assert app.screen.query_one("#filter", Input).value == "wee" and not started
        assert isinstance(app.screen, MainScreen)

    drive(app, scenario)


def test_vim_motions_home_end_and_the_l_and_y_keys(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    from vmconsole.tui import ops

    monkeypatch.setattr(ops, "read_domain_config", lambda s, vm: ops.DomainConfig(vm, tui_sample.DB1_XML, None))
    monkeypatch.setattr(diagnose, "diagnose", lambda s, vm: diagnosis(vm))
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        vms_table = table(app)
        names = vms_table.visible_names
        await pilot.press("G")
        assert vms_table.current_vm == names[-1]
        await pilot.press("g")
        assert vms_table.current_vm == names[0]
        await pilot.press("j", "j", "k")
        assert vms_table.current_vm == names[1]
        await pilot.press("end")
        assert vms_table.current_vm == names[-1]
        await pilot.press("home")
        assert vms_table.current_vm == names[0]
        vms_table.move_to("db1")
        await pilot.press("y")  # k9s's YAML: the XML here
        await settle(pilot, app)
        assert isinstance(app.screen, ConfigScreen)
        await pilot.press("escape", "l")  # k9s's logs: the diagnosis
        await settle(pilot, app)
        detail = app.screen
        assert isinstance(detail, VmDetailScreen) and detail.diagnosis is not None
        assert "Cause: " in shown(detail.query(".section").last())

    drive(app, scenario)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_help_lists_every_key_and_scrolls_by_keyboard_at_both_sizes(make_app: Any, size: tuple[int, int]) -> None:
    app = make_app()

    async def scenario(pilot: Any) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        described = {k.description for k in screen.keys}
        for wanted in ("Start", "Remove", "Timeline", "Log/diagnose", "Colocation", "Flatten", "Lock", "Help"):
            assert wanted in described, wanted
        keys = {k.description: k.key for k in screen.keys}
        assert set(keys["XML"].split()) == {"v", "y"} and set(keys["First VM"].split()) == {"g", "home"}
        body = screen.query_one("#help-body")
        assert screen.focused is body
        await pilot.press("G")
        await pilot.pause()
        assert body.max_scroll_y > 0 and body.scroll_y == body.max_scroll_y  # the last keys reachable
        await pilot.press("g", "j")
        await pilot.pause()
        assert body.scroll_y == 1

    drive(app, scenario, size=size)


def test_a_failed_start_stays_on_its_row_with_its_cause_until_a_cleanup(
    make_app: Any, fake_services: Any, monkeypatch: Any, source: tui_sample.Source
) -> None:
    monkeypatch.setattr(vms, "plan_start", lambda s, vm: tui_sample.fake_task("start", vm, 1, fail_at=0))
    monkeypatch.setattr(vms, "plan_cleanup", lambda s, vm: tui_sample.fake_task("cleanup", vm, 1))
    monkeypatch.setattr(diagnose, "diagnose", lambda s, vm: diagnosis(vm))
    monkeypatch.setattr(vm_handlers, "CLEANUP_SETTLE", 0.0)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("spare1")
        await pilot.press("s")
        await settle(pilot, app)
        await settle(pilot, app)  # the diagnosis that follows
        record = app.tasks[-1]
        assert record.state is TaskState.FAILED
        assert record.cause is not None and "error connecting: Permission denied" in record.cause
        assert isinstance(app.screen, TaskScreen)  # a failed one-step action opens its view
        pane = app.screen.query_one(ProgressPane)
        pane.sync()
        result = shown(pane.query_one("#progress-result"))
        assert "Cause: " in result and "Permission denied (the QEMU log on hv2)" in result
        assert [f.action for f in record.follow_ups] == ["log"]
        assert any(n.message.startswith("Cause: ") for n in app._notifications)
        await pilot.press("escape")
        app._tick()
        await pilot.pause()
        assert "✖ start" in table(app).get_cell("spare1", "note").plain  # Pacemaker says plain Stopped
        strip = app.screen.query_one("#detail").render().plain
        assert "Cause: " in strip and "Permission denied" in strip
        await pilot.press("exclamation_mark")  # failed VMs only
        await pilot.pause()
        assert sorted(table(app).visible_names) == ["legacy", "spare1"]
        await pilot.press("enter")
        await settle(pilot, app)
        detail = app.screen
        assert isinstance(detail, VmDetailScreen)
        sections = "\n".join(shown(s) for s in detail.query(".section"))
        assert "Cause: qemu-system-x86_64: -blockdev {}: error connecting: Permission denied" in sections
        await pilot.press("escape")
        app.perform("cleanup", "spare1")
        await settle(pilot, app)
        await settle(pilot, app)  # and what Pacemaker says a moment later
        assert app.tasks[-1].state is TaskState.DONE
        assert any("after the cleanup Pacemaker says: spare1 is Stopped" in n.message for n in app._notifications)
        app._tick()
        await pilot.pause()
        assert table(app).visible_names == ["legacy"]  # spare1 is no longer failed
        await pilot.press("exclamation_mark")
        assert len(table(app).visible_names) == 8

    drive(app, scenario, size=(120, 40))


def test_cleanup_says_when_the_vm_fails_again(
    make_app: Any, fake_services: Any, monkeypatch: Any, source: tui_sample.Source
) -> None:
    monkeypatch.setattr(vms, "plan_cleanup", lambda s, vm: tui_sample.fake_task("cleanup", vm, 1))
    monkeypatch.setattr(vm_handlers, "CLEANUP_SETTLE", 0.0)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        again = Failure("start", "hv1", "error", "Failed to start virtual domain legacy.", 1, tui_sample.NOW)
        source.current = replace(
            source.current,
            vms=tuple(replace(v, last_failure=again) if v.name == "legacy" else v for v in source.current.vms),
        )
        app.perform("cleanup", "legacy")
        await settle(pilot, app)
        await settle(pilot, app)
        note = next(n for n in app._notifications if "failed again" in n.title)
        assert note.severity == "error" and "legacy is Failed" in note.message and "start on hv1" in note.message

    drive(app, scenario)


def test_the_cause_is_not_an_earlier_run_of_the_qemu_log(make_app: Any) -> None:
    from vmconsole.tui import causes

    stale = diagnosis("spare1", QEMU_LOG[:5], failed_at=tui_sample.NOW)  # the log's last run is from 09:00
    cause = causes.cause_of(stale)
    assert cause is not None and cause.text == "Failed to start virtual domain spare1."
    assert "libvirt refused before QEMU ran" in cause.note and "Pacemaker log on hv2" in cause.note
    fresh = causes.cause_of(diagnosis("spare1"))
    assert fresh is not None and fresh.text.endswith("error connecting: Permission denied")
    assert fresh.note == "resource agent: Failed to start virtual domain spare1."
    remote = causes.cause_of(diagnosis("spare1", ("(the QEMU log is on hv3: /var/log/libvirt/qemu/spare1.log)",)))
    assert remote is not None and "the QEMU log is on hv3" in remote.note


def test_an_overdue_read_says_at_once_which_backend_it_waits_on(source: tui_sample.Source) -> None:
    hung = threading.Event()
    read_now = threading.Event()

    def read() -> Any:
        if read_now.is_set():
            hung.wait(10)  # the second read hangs like a SIGSTOPped CIB daemon
        return source()

    app = VmConsoleApp(
        tui_sample.config(0.5),
        state_source=read,
        clock=tui_sample.clock,
        auto_refresh=False,
        probes={"ceph": lambda: None, "pacemaker": lambda: hung.wait(10)},
    )

    async def scenario(pilot: Any) -> None:
        await settle(pilot, app)
        read_now.set()
        app.refresh_now()
        deadline = time.monotonic() + 5
        header = app.screen.query_one("#header")
        while "waiting" not in header.render().plain and time.monotonic() < deadline:
            app._tick()
            await pilot.pause(0.1)
        line = header.render().plain
        assert "waiting" in line and "for pacemaker" in line and "ceph" not in line, line
        assert len(table(app).visible_names) == 8  # the last data stays
        hung.set()
        await settle(pilot, app)
        app._tick()
        assert "waiting" not in header.render().plain

    drive(app, scenario)


def test_a_click_on_a_node_selects_it(make_app: Any) -> None:
    app = make_app()

    async def scenario(pilot: Any) -> None:
        pane = app.screen.query_one(ClusterPane)
        assert pane.cursor_node == "hv1"
        await pilot.click(ClusterPane, offset=(3, 3))  # border, quorum line, hv1, hv2: the line of hv2
        await pilot.pause()
        assert pane.cursor_node == "hv2" and app.screen.focused is pane

    drive(app, scenario)


def test_standby_of_the_only_online_node_says_its_vms_will_stop(
    make_app: Any, source: tui_sample.Source, fake_services: Any
) -> None:
    source.current = replace(
        source.current,
        nodes=tuple(replace(n, status=NodeStatus.OFFLINE) if n.name == "hv2" else n for n in source.current.nodes),
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.perform("standby", node="hv1")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        assert "No other node is online" in modal.body.plain and "will STOP" in modal.body.plain
        footer = modal.query_one("Footer")  # the confirmation's own keys, not the main screen's
        keys = {key.description for key in footer.query("FooterKey")}  # type: ignore[attr-defined]
        assert "Cancel" in keys and "Snapshot" not in keys

    drive(app, scenario)


def test_the_snapshot_form_ticks_freeze_only_with_a_guest_agent(make_app: Any) -> None:
    app = make_app()

    async def scenario(pilot: Any) -> None:
        vm = app.state.vm("db1")
        for agent, ticked, enabled in ((False, False, False), (True, True, True), (None, True, True)):
            app.push_screen(SnapshotCreateScreen(vm, tui_sample.NOW, guest_agent=agent))
            await pilot.pause()
            box = app.screen.query_one("#snap-freeze", Checkbox)
            assert (box.value, not box.disabled) == (ticked, enabled), agent
            if agent is False:
                assert "crash-consistent" in shown(app.screen.query(".form-note").first())
            await pilot.press("escape")
        from vmconsole.tui import ops

        channel = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        assert ops.has_guest_agent(f"<domain><devices>{channel}</devices></domain>") is True
        assert ops.has_guest_agent("<domain><devices/></domain>") is False
        assert ops.has_guest_agent("") is None

    drive(app, scenario)


def test_a_task_stopped_part_way_says_so_with_the_command_to_finish(make_app: Any, fake_services: Any) -> None:
    app = make_app(services=fake_services)

    def planner(s: Any) -> Any:
        raise OperationIncomplete(
            "start and wait failed; the create built web9 and kept it (enabled and left stopped):"
            " `vmconsole vm diagnose web9` shows why, `vmconsole vm remove web9` removes it"
        )

    async def scenario(pilot: Any) -> None:
        app.start_task("create web9", "web9", planner)
        await settle(pilot, app)
        record = app.tasks[-1]
        assert record.state is TaskState.INCOMPLETE
        assert record.commands == ["vmconsole vm diagnose web9", "vmconsole vm remove web9"]
        pane = app.screen.query_one(ProgressPane)
        pane.sync()
        assert "stopped part-way: not undone" in shown(pane.query_one("#progress-current"))
        result = shown(pane.query_one("#progress-result"), width=80)
        assert "To finish, revert or look further:" in result and "vmconsole vm remove web9" in result
        note = next(n for n in app._notifications if n.severity == "error")
        assert (
            note.title == "create web9: stopped part-way"
            and "to finish or revert: vmconsole vm remove web9" in note.message
        )
        assert "undone" not in note.message

    drive(app, scenario)


def test_read_only_is_the_service_layers_too(monkeypatch: Any) -> None:
    app = VmConsoleApp(
        Config(), read_only=True, check_rights=False, check_recovery=False, auto_refresh=False, watch_events=False
    )
    try:
        services = app.services
        assert services.read_only == app.read_only_reason and services.read_only
    finally:
        app.services.close()


def test_the_file_picker_shows_local_names_literally(tmp_path: Path, make_app: Any) -> None:
    (tmp_path / "evil\x1b[2Jname.qcow2").write_bytes(b"")
    (tmp_path / "[red]x.xml").write_text("")
    app = make_app()

    async def scenario(pilot: Any) -> None:
        app.push_screen(FilePickerScreen("Pick", str(tmp_path)))
        await pilot.pause(0.3)
        tree = app.screen.query_one(SafeDirectoryTree)
        labels = [child.label.plain for child in tree.root.children]
        assert "evil\\x1b[2Jname.qcow2" in labels and "[red]x.xml" in labels
        exported = app.export_screenshot()
        assert "\x1b[2J" not in exported

    drive(app, scenario)


def test_rows_of_failed_and_blocked_vms_are_aligned_with_the_others(make_app: Any) -> None:
    import re

    app = make_app()

    async def scenario(pilot: Any) -> None:
        svg = app.export_screenshot()
        starts = {
            name: float(x)
            for x, name in re.findall(
                r'x="([\d.]+)"[^>]*>(legacy|cache1|spare1|web2)</text>', svg.replace("&#160;", "")
            )
        }
        assert len(starts) == 4 and len(set(starts.values())) == 1, starts

    drive(app, scenario)
