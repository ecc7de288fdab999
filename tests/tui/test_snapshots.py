"""SVG snapshots of the console on a deterministic state (fixed data, fixed clock), at 80×24 and 120×40.

Re-bless after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and
look at the SVGs (``tests/tui/__snapshots__/``) before committing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tui_sample
from textual.widgets import Input

from vmconsole.tui.app import VmConsoleApp
from vmconsole.tui.handlers.snapshot import show_rollback_impact
from vmconsole.tui.handlers.vm import show_update_diff
from vmconsole.tui.screens.create import CreateScreen
from vmconsole.tui.screens.progress import TaskScreen
from vmconsole.tui.screens.purge import PurgeScreen

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
XML_DIR = Path("/tmp/vmconsole-tui-snapshots")


def make_app(**kwargs: Any) -> VmConsoleApp:
    return VmConsoleApp(tui_sample.config(60.0), state_source=tui_sample.Source(), clock=tui_sample.clock, **kwargs)


async def ready(pilot: Any) -> None:
    """The first state read is done and shown."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def steady(pilot: Any) -> None:
    """No blinking cursors, nothing pending: the same pixels on every run."""
    await pilot.pause()
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()


def at_vm(name: str, *then: str) -> Any:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        main = pilot.app.screen
        main.query_one("#vms").move_to(name)
        await pilot.pause()
        if then:
            await pilot.press(*then)
        await steady(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=at_vm("db1"))


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_read_only_and_stale(snap_compare: Any, size: tuple[int, int]) -> None:
    from dataclasses import replace

    source = tui_sample.Source(replace(tui_sample.state(), problems=("pacemaker: no answer within 32 s",)))
    app = VmConsoleApp(tui_sample.config(60.0), state_source=source, clock=tui_sample.clock, read_only=True)
    assert snap_compare(app, terminal_size=size, run_before=at_vm("legacy"))


@pytest.mark.parametrize("size", SIZES)
def test_confirm_remove_typed_name(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=at_vm("spare1", "delete", "s", "p"))


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_create(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=at_vm("db1", "n"))


@pytest.mark.parametrize("size", SIZES)
def test_rollback_impact(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        show_rollback_impact(pilot.app, tui_sample.rollback_plan())
        await pilot.pause()
        await pilot.press("d", "b")
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_purge_dry_run(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        app = pilot.app
        screen = PurgeScreen(app.state.vm("db1"), app.now())
        app.push_screen(screen)
        await pilot.pause()
        screen.query_one("#purge-oldest", Input).value = "2"
        await pilot.pause()
        screen.show_plan(tui_sample.purge_plan())
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_create(snap_compare: Any, size: tuple[int, int]) -> None:
    XML_DIR.mkdir(exist_ok=True)
    xml = XML_DIR / "web.xml"
    xml.write_text("<domain type='kvm'><name>web3</name><memory unit='MiB'>512</memory><devices/></domain>")

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        pilot.app.push_screen(CreateScreen("web1", "/nonexistent/debian.qcow2", str(xml)))
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_clone(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await at_vm("db1", "C")(pilot)
        pilot.app.screen.query_one("#clone-name", Input).value = "db2"
        await pilot.click("#mode-linked")
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_progress_pane_of_a_running_clone(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        pilot.app.push_screen(TaskScreen(tui_sample.clone_record()))
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_confirm_node_standby(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("tab", "S", "h", "v")
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_update_diff(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        show_update_diff(pilot.app, tui_sample.update_plan())
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
