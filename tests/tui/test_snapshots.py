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


def with_services(**kwargs: Any) -> VmConsoleApp:
    """An app on fake services that answer the sample's history and operations (the timeline's sources)."""
    source = tui_sample.Source()
    services = tui_sample.FakeServices(source)
    services.records = list(tui_sample.HISTORY)
    return VmConsoleApp(
        tui_sample.config(60.0), state_source=source, clock=tui_sample.clock, services=services, **kwargs
    )


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
            await pilot.app.workers.wait_for_complete()
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


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_kept_failure_and_overdue_read(snap_compare: Any, size: tuple[int, int]) -> None:
    from vmconsole.tui.memory import KeptFailure
    from vmconsole.tui.refresh import Overdue

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        app = pilot.app
        app.failures.remember(
            "spare1",
            KeptFailure(
                tui_sample.NOW,
                "start",
                "spare1 is Stopped: start on hv2: Failed to start virtual domain spare1. (rc=1)",
                cause="qemu-system-x86_64: -blockdev: error connecting: Permission denied (the QEMU log on hv2)",
            ),
        )
        main = app.screen
        main.query_one("#vms").move_to("spare1")
        main.show_refresh(app.last_ok, app.now(), None, Overdue(7.0, ("pacemaker",), ("ceph",)))
        main.show_tasks(1, {"web1": "stop 40%"})
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_timeline(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        app = pilot.app
        app.events.host = "hv1"
        app.events.lifecycle("web1", "stopped", tui_sample.NOW)
        await pilot.press("T")
        await app.workers.wait_for_complete()
        await steady(pilot)

    assert snap_compare(with_services(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_create_full_form(snap_compare: Any, size: tuple[int, int]) -> None:
    XML_DIR.mkdir(exist_ok=True)
    xml = XML_DIR / "web3.xml"
    xml.write_text("<domain type='kvm'><name>web3</name><memory unit='MiB'>512</memory><devices/></domain>")
    image = XML_DIR / "debian.qcow2"
    image.write_bytes(b"QFI\xfb")

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        app = pilot.app
        app.push_screen(CreateScreen("web3", str(image), str(xml), nodes=app.state.nodes))
        await pilot.pause()
        form = app.screen
        for selector, value in {
            "#vs-stop-timeout": "2min",
            "#vs-priority": "high",
            "#vs-pacemaker-params": "force_stop=true",
            "#vs-metadata": "owner=ops",
        }.items():
            form.query_one(selector, Input).value = value
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_help_of_the_vm_table(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=at_vm("db1", "question_mark", "G"))


@pytest.mark.parametrize("size", SIZES)
def test_vm_detail_with_its_cause(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        from vmconsole.tui.memory import KeptFailure

        await ready(pilot)
        app = pilot.app
        app.failures.remember(
            "legacy",
            KeptFailure(
                tui_sample.NOW,
                "start",
                "legacy is Failed: start on hv2: Failed to start virtual domain legacy. (rc=1)",
                cause="qemu-system-x86_64: -blockdev: error connecting: Permission denied (the QEMU log on hv2)",
            ),
        )
        app.screen.query_one("#vms").move_to("legacy")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_retention_dry_run(snap_compare: Any, size: tuple[int, int]) -> None:
    from vmconsole.core.snapshots import PurgePlan, RetentionPolicy
    from vmconsole.tui.screens.retention import RetentionScreen

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        app = pilot.app
        screen = RetentionScreen(app.state.vm("db1"), app.now())
        screen.reload = lambda: None  # type: ignore[method-assign]
        app.push_screen(screen)
        await pilot.pause()
        screen.show_policy(RetentionPolicy(keep_last=1, keep_daily=7))
        snaps = tui_sample.db1_snapshots()
        screen.show_plan(
            PurgePlan("db1", (snaps[1],), ((snaps[0], "protected"), (snaps[2], "one of the last 1")), "policy")
        )
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_lock_held_by_a_dead_task(snap_compare: Any, size: tuple[int, int]) -> None:
    from vmconsole.tui.screens.lock import LockScreen

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        app = pilot.app
        screen = LockScreen("db1")
        screen.action_reload = lambda: None  # type: ignore[method-assign]
        app.push_screen(screen)
        await pilot.pause()
        holder = {
            "holder": "ops@hv9",
            "operation": "clone",
            "task": "3f9c2a7d1e04",
            "since": "2026-05-04T11:40:00+00:00",
        }
        screen.show(
            {"vm": "db1", "locked": True, "holder": {**holder, "pid": 4242}, "lockers": [], "holder_alive": None}
        )
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_colocation_and_remote_forms(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await at_vm("web1", "W")(pilot)
        pilot.app.screen.query_one("#colocate-resources", Input).value = "db1 cache1"
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_update_form(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=at_vm("db1", "u"))


@pytest.mark.parametrize("size", SIZES)
def test_failed_start_with_its_cause(snap_compare: Any, size: tuple[int, int]) -> None:
    from vmconsole.tui.task_record import TaskRecord

    async def run_before(pilot: Any) -> None:
        from vmconsole.domain.errors import OperationFailed

        await ready(pilot)
        app = pilot.app
        record = TaskRecord("start spare1", "spare1", tui_sample.NOW, operation="start", steps=("start spare1",))
        record.finish_error(
            OperationFailed(
                "spare1 is Failed: start on hv2: Failed to start virtual domain spare1. (rc=1)",
                hint="`vmconsole vm diagnose spare1` shows the details",
            ),
            tui_sample.NOW,
        )
        record.message += " (`vmconsole vm diagnose spare1` shows the details)"
        record.set_cause(
            "qemu-system-x86_64: -blockdev: error connecting: Permission denied (the QEMU log on hv2)", tui_sample.NOW
        )
        app.push_screen(TaskScreen(record))
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
