"""The main screen on a deterministic state: table, refresh, filter, sort, stale, read-only."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import tui_sample
from tui_helpers import drive, settle

from vmconsole.domain.errors import BackendTimeout
from vmconsole.domain.model import VmStatus
from vmconsole.tui.screens.confirm import ConfirmModal
from vmconsole.tui.screens.main import MainScreen
from vmconsole.tui.widgets.detail_strip import DetailStrip
from vmconsole.tui.widgets.header_bar import HeaderBar
from vmconsole.tui.widgets.vm_table import VmTable


def table(app: Any) -> VmTable:
    return app.screen.query_one(VmTable)


def header(app: Any) -> str:
    return app.screen.query_one(HeaderBar).render().plain


def cell(app: Any, vm: str, column: str) -> str:
    return table(app).get_cell(vm, column).plain


def test_table_shows_every_vm_with_status_and_node(make_app: Any) -> None:
    app = make_app()

    async def scenario(pilot: Any) -> None:
        vms = table(app)
        assert vms.row_count == 8
        assert vms.visible_names == sorted(vm.name for vm in tui_sample.vms())
        assert cell(app, "db1", "status") == "Started"
        assert cell(app, "db1", "node") == "hv1"
        assert cell(app, "db1", "snaps") == "3"
        assert cell(app, "db1", "latest") == "1h"
        assert cell(app, "db1", "size") == "256 MiB"
        assert cell(app, "cache1", "status") == "Started blk"
        assert cell(app, "legacy", "status") == "Failed"
        assert "refreshed 0s ago" in header(app)
        assert "8 VMs" in header(app) and "1 failed" in header(app)
        # the detail strip follows the cursor and shows the last failure
        vms.move_to("legacy")
        await pilot.pause()
        strip = app.screen.query_one(DetailStrip).render().plain
        assert "legacy  Failed" in strip and "fail-count INFINITY" in strip
        assert "last failure: start on hv2: domain legacy: cannot open disk: Permission denied (rc=1)" in strip

    drive(app, scenario)


def test_sort_and_filter_keep_the_cursor_on_its_vm(make_app: Any) -> None:
    app = make_app()

    async def scenario(pilot: Any) -> None:
        vms = table(app)
        assert vms.move_to("spare1")
        await pilot.press("2")  # by status: Failed first ... Started last
        await pilot.pause()
        assert vms.sort_column == "status"
        assert vms.visible_names[0] == "legacy"
        assert vms.current_vm == "spare1"
        await pilot.press("2")  # reversed
        await pilot.pause()
        assert vms.sort_reverse and vms.visible_names[-1] == "legacy"
        assert vms.current_vm == "spare1"
        await pilot.press("6")  # by size
        await pilot.pause()
        assert vms.visible_names[-1] == "legacy" and vms.current_vm == "spare1"
        # the filter box: applied while typing, the cursor stays on spare1 while it is shown
        await pilot.press("slash", *"s")
        await pilot.pause()
        assert vms.current_vm == "spare1"
        assert "spare1" in vms.visible_names and "db1" not in vms.visible_names
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.focused is vms
        # status:started hides spare1: the cursor goes to a shown row, then back when it reappears
        screen = app.screen
        assert isinstance(screen, MainScreen)
        screen.apply_filter("status:started")
        await pilot.pause()
        assert set(vms.visible_names) == {"web1", "web2", "db1", "cache1"}
        vms.move_to("db1")
        screen.apply_filter("")
        await pilot.pause()
        assert vms.row_count == 8 and vms.current_vm == "db1"

    drive(app, scenario)


def test_filter_syntax_regex_node_negation_and_errors(make_app: Any) -> None:
    app = make_app()

    async def scenario(pilot: Any) -> None:
        screen = app.screen
        vms = table(app)
        screen.apply_filter("~^web[12]$")
        assert sorted(vms.visible_names) == ["web1", "web2"]
        screen.apply_filter("node:hv2 !status:starting")
        assert vms.visible_names == ["web2"]
        screen.apply_filter("status:failed")
        assert vms.visible_names == ["legacy"]
        screen.apply_filter("status:blocked")
        assert vms.visible_names == ["cache1"]
        assert not screen.apply_filter("~[unclosed")  # refused: the last good filter stays
        await pilot.pause()
        assert vms.visible_names == ["cache1"]
        assert "filter: status:blocked" in vms._border_title.plain

    drive(app, scenario)


def test_refresh_updates_rows_in_place_and_keeps_the_cursor(make_app: Any, source: tui_sample.Source) -> None:
    app = make_app()

    async def scenario(pilot: Any) -> None:
        vms = table(app)
        vms.move_to("web2")
        await pilot.pause()

        def no_clear(*_args: Any, **_kwargs: Any) -> None:
            raise AssertionError("a refresh must not clear the table")

        vms.clear = no_clear  # type: ignore[method-assign]
        updated: list[tuple[str, str]] = []
        original_update = vms.update_cell

        def spy(row_key: Any, column_key: Any, value: Any, **kwargs: Any) -> None:
            updated.append((getattr(row_key, "value", row_key), getattr(column_key, "value", column_key)))
            original_update(row_key, column_key, value, **kwargs)

        vms.update_cell = spy  # type: ignore[method-assign]
        changed = [
            replace(vm, status=VmStatus.STOPPED, node=None) if vm.name == "db1" else vm
            for vm in source.current.vms
            if vm.name != "spare1"
        ]
        changed.append(tui_sample.vm("aaa0", VmStatus.STARTED, "hv3"))  # sorts first: shifts every index
        source.current = replace(source.current, vms=tuple(changed))
        app.refresh_now()
        await settle(pilot, app)
        assert "spare1" not in vms.visible_names and vms.visible_names[0] == "aaa0"
        assert cell(app, "db1", "status") == "Stopped" and cell(app, "db1", "node") == "-"
        assert sorted(updated) == [("db1", "node"), ("db1", "status")]  # only the changed cells
        assert vms.current_vm == "web2"  # same VM, though its row index moved

    drive(app, scenario)


def test_stale_when_the_read_fails_or_is_partial_then_recovers(make_app: Any, source: tui_sample.Source) -> None:
    app = make_app(refresh=2.0, auto_refresh=False)

    async def scenario(pilot: Any) -> None:
        source.error = BackendTimeout("pacemaker", "crm_mon did not answer within 30 s")
        app.refresh_now()
        await settle(pilot, app)
        assert "STALE" in header(app) and "crm_mon did not answer" in header(app)
        assert table(app).row_count == 8  # the last known data stays
        assert (
            app.refresher.failures_in_a_row == 1 and app.refresher.next_delay >= 2 * app.refresher.interval
        )  # backed off
        source.error = None
        source.current = replace(source.current, problems=("ceph: no answer within 12 s",))
        app.refresh_now()
        await settle(pilot, app)
        assert "STALE" in header(app) and "ceph: no answer" in header(app)
        source.current = replace(source.current, problems=())
        app.refresh_now()
        await settle(pilot, app)
        assert "STALE" not in header(app) and "refreshed 0s ago" in header(app)
        assert app.refresher.failures_in_a_row == 0

    drive(app, scenario)


def test_backoff_and_a_read_in_flight_is_never_doubled(make_app: Any, source: tui_sample.Source) -> None:
    app = make_app(refresh=2.0, auto_refresh=False)

    async def scenario(pilot: Any) -> None:
        refresher = app.refresher
        refresher.last_read_seconds = 1.5
        refresher.schedule_next()
        assert refresher.next_delay == 2.0 + 3.0  # interval + 2 x the last read
        refresher.last_read_seconds = 40.0
        refresher.schedule_next()
        assert refresher.next_delay == 30.0  # capped
        calls = source.calls
        refresher.reading = True  # as if a read were in flight
        app.refresh_now()
        assert refresher.nudged and source.calls == calls
        refresher.reading = False
        refresher.schedule_next()  # the read in flight ends: the nudge reads again at once
        await settle(pilot, app)
        assert source.calls == calls + 1 and not refresher.nudged

    drive(app, scenario)


def test_read_only_refuses_every_mutating_action_and_says_why(make_app: Any, fake_services: Any) -> None:
    app = make_app(read_only=True, services=fake_services)

    async def scenario(pilot: Any) -> None:
        assert "[RO]" in header(app)
        table(app).move_to("web1")
        screen = app.screen
        assert screen.check_action("act", ("start",)) is None  # greyed out in the footer
        assert screen.check_action("act", ("detail",)) is True
        for key in ("s", "x", "delete", "n", "R", "P", "C", "a", "e", "E", "c"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, MainScreen), key
        app.perform("stop", "web1")  # the palette and the : line go through the same gate
        await pilot.pause()
        assert not app.tasks and fake_services.ran == []
        messages = [n.message for n in app._notifications]
        assert len([m for m in messages if " is disabled: read-only mode" in m]) == 12  # every key, and perform
        assert any("Start is disabled: read-only mode" in m for m in messages)
        assert any("Rollback is disabled: read-only mode" in m for m in messages)

    drive(app, scenario)


def test_not_root_opens_read_only(monkeypatch: Any) -> None:
    import vmconsole.core.rights as rights
    from vmconsole.tui.app import VmConsoleApp

    monkeypatch.setattr(rights.os, "geteuid", lambda: 1000)
    app = VmConsoleApp(tui_sample.config(), state_source=tui_sample.Source(), check_rights=True)
    assert app.read_only and "not running as root" in (app.read_only_reason or "")


def test_confirmation_defaults_to_no(make_app: Any, fake_services: Any) -> None:
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("web1")
        await pilot.press("x")  # stop: y/n
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        body = modal.body.plain
        assert "web1" in body and "hv1" in body and "unavailable" in body
        assert modal.focused is not None and modal.focused.id == "cancel"
        await pilot.press("enter")  # the default answer
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and not app.tasks
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and not app.tasks
        # delete on the snapshot pane's NOW row never reaches the table's "remove VM"
        table(app).move_to("db1")
        await pilot.press("tab", "tab")  # the VM table, the cluster pane, then the snapshot pane
        await pilot.pause()
        assert app.screen.focused is not None and app.screen.focused.id == "snapshots"
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert any("Select a snapshot row first" in n.message for n in app._notifications)

    drive(app, scenario)
