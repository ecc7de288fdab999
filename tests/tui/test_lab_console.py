"""The console against the real lab: snapshot, clone with its progress pane, guided rollback and undo.

Each test creates its own ``ui*`` VM through the service layer, drives the console like an operator,
and removes what it made. The console reads only those VMs (``StateReader.read(only=...)``) so a
lab crowded by other tests stays fast.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import Checkbox, Input
from tui_helpers import drive

from vmconsole.config import Config
from vmconsole.core import snapshots, vms
from vmconsole.core.services import Services
from vmconsole.domain.errors import VmConsoleError
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml, disk_image
from vmconsole.tui.app import VmConsoleApp
from vmconsole.tui.screens.confirm import ConfirmModal
from vmconsole.tui.screens.lock import LockScreen
from vmconsole.tui.screens.progress import TaskScreen
from vmconsole.tui.screens.rollback import RollbackImpactScreen
from vmconsole.tui.screens.rollback_pick import RollbackPickScreen
from vmconsole.tui.screens.snapshot_create import SnapshotCreateScreen
from vmconsole.tui.screens.timeline import TimelineScreen
from vmconsole.tui.task_record import TaskRecord, TaskState

pytestmark = pytest.mark.lab


@pytest.fixture
def ui_vm(lab: Lab, lab_config: Config) -> Iterator[tuple[Services, str]]:
    """A fresh disabled VM named ``ui<hex>``; it and its clones are removed afterwards."""
    name = "ui" + uuid.uuid4().hex[:8]
    services = Services(lab_config)
    state = lab.state()
    assert state is not None
    spec = vms.CreateSpec(
        name=name,
        image=str(disk_image(lab)),
        xml=base_xml(lab, name, state.domain_type),
        options=vms.VmOptions(enable=False, pacemaker_params={"force_stop": "true"}),
    )
    services.run(vms.plan_create(services, spec))
    try:
        yield services, name
    finally:
        for vm in (f"{name}c", name):
            if services.vm_exists(vm):
                with contextlib.suppress(VmConsoleError):
                    services.run(vms.plan_remove(services, vm))
        leftovers = [g for g in services.rbd.group_names() if g.startswith(name)]
        services.close()
        assert not leftovers, leftovers


def console(services: Services, *names: str) -> VmConsoleApp:
    wanted = set(names) | {f"{n}c" for n in names}
    return VmConsoleApp(
        services.config,
        services=services,
        state_source=lambda: services.reader.read(only=wanted),
        check_rights=False,
        check_recovery=False,
    )


async def until(pilot: Any, condition: Any, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.1)


async def finished(pilot: Any, app: VmConsoleApp, count: int, timeout: float = 180.0) -> TaskRecord:
    await until(pilot, lambda: len(app.tasks) >= count and not app.tasks[count - 1].active, timeout, "the task")
    record = app.tasks[count - 1]
    assert record.state is TaskState.DONE, (record.message, record.log[-5:])
    return record


async def fresh_state(pilot: Any, app: VmConsoleApp, check: Any, what: str) -> None:
    """Wait for a refresh whose state satisfies ``check`` (a task nudges one as it ends)."""
    await until(pilot, lambda: app.state is not None and check(app.state), 60, what)
    await pilot.pause()


def test_snapshot_create_and_remove_from_the_console(ui_vm: tuple[Services, str]) -> None:
    services, name = ui_vm
    app = console(services, name)

    async def scenario(pilot: Any) -> None:
        await fresh_state(pilot, app, lambda s: s.vm(name) is not None, "the ui VM")
        assert app.screen.query_one("#vms").move_to(name)
        await pilot.press("n")  # the domain XML is read first: does the guest have an agent to freeze?
        await until(pilot, lambda: isinstance(app.screen, SnapshotCreateScreen), 60, "the snapshot form")
        app.screen.query_one("#snap-name", Input).value = "uisnap1"
        await pilot.press("enter")
        await finished(pilot, app, 1)
        await fresh_state(pilot, app, lambda s: any(x.name == "uisnap1" for x in s.vm(name).snapshots), "uisnap1")
        await pilot.press("escape")  # close the progress screen
        await pilot.press("tab", "tab")  # past the cluster pane, to the snapshot pane: oldest first, then NOW
        pane = app.screen.query_one("#snapshots")
        assert app.screen.focused is pane
        # the tree's extras (linked clones, the last rollback's undo point) read from the real cluster
        await until(pilot, lambda: name in pane.extras, 60, "the snapshot tree's extras")  # type: ignore[attr-defined]
        pane.move_cursor(row=pane.get_row_index("uisnap1"))  # type: ignore[attr-defined]
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and "uisnap1" in app.screen.body.plain
        await pilot.press("y")
        await finished(pilot, app, 2)
        await fresh_state(pilot, app, lambda s: not s.vm(name).snapshots, "the snapshot gone")

    drive(app, scenario)


def test_clone_shows_its_progress_then_remove_with_typed_name(ui_vm: tuple[Services, str]) -> None:
    services, name = ui_vm
    app = console(services, name)
    clone = f"{name}c"

    async def scenario(pilot: Any) -> None:
        await fresh_state(pilot, app, lambda s: s.vm(name) is not None, "the ui VM")
        app.screen.query_one("#vms").move_to(name)
        await pilot.press("C")
        await pilot.pause()
        app.screen.query_one("#clone-name", Input).value = clone
        app.screen.query_one("#vs-enable", Checkbox).value = False  # a disabled clone: no Pacemaker round trip
        await pilot.pause()
        await pilot.click("#ok")
        # the service's plan first (its steps, its warnings), then yes runs that plan
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), 60, "the clone's plan")
        assert any(line.strip().startswith("1. ") for line in app.screen.body.plain.splitlines())  # type: ignore[attr-defined]
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, TaskScreen), 10, "the progress screen")
        record = await finished(pilot, app, 1)
        assert any(step.startswith("copy system_") for step in record.steps), record.steps
        assert record.percent == 100.0 and any("done" in line for line in record.log)
        await fresh_state(pilot, app, lambda s: s.vm(clone) is not None, "the clone")
        await pilot.press("escape")
        app.screen.query_one("#vms").move_to(clone)
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and app.screen.typed == clone
        app.screen.query_one("#typed", Input).value = clone
        await pilot.press("enter")
        await finished(pilot, app, 2)
        await fresh_state(pilot, app, lambda s: s.vm(clone) is None, "the clone removed")

    drive(app, scenario)


def test_guided_rollback_with_safety_snapshot_then_undo(ui_vm: tuple[Services, str]) -> None:
    services, name = ui_vm
    services.run(snapshots.plan_snapshot_create(services, name, "uibase", freeze=False))
    app = console(services, name)

    async def scenario(pilot: Any) -> None:
        await fresh_state(pilot, app, lambda s: bool(s.vm(name) and s.vm(name).snapshots), "the ui VM")
        app.screen.query_one("#vms").move_to(name)
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, RollbackPickScreen)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RollbackImpactScreen), 60, "the impact screen")
        impact = app.screen
        assert impact.plan.snapshot.name == "uibase" and impact.plan.safety_snapshot  # type: ignore[attr-defined]
        impact.query_one("#typed", Input).value = name
        await pilot.press("enter")
        record = await finished(pilot, app, 1)
        assert [f.action for f in record.follow_ups] == ["rollback-undo"]
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await finished(pilot, app, 2)

    drive(app, scenario)


def test_enable_asks_then_the_timeline_shows_the_start_and_the_lock_is_free(ui_vm: tuple[Services, str]) -> None:
    services, name = ui_vm
    app = console(services, name)

    async def scenario(pilot: Any) -> None:
        await fresh_state(pilot, app, lambda s: s.vm(name) is not None, "the ui VM")
        app.screen.query_one("#vms").move_to(name)
        await pilot.press("e")  # a Disabled VM: enabling (and starting) it asks first
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and "Pacemaker starts it" in app.screen.body.plain
        await pilot.press("y")
        await finished(pilot, app, 1)  # inline: no task view
        await fresh_state(pilot, app, lambda s: s.vm(name).status.value == "Started", "the ui VM started")
        await pilot.press("T")
        await until(
            pilot,
            lambda: isinstance(app.screen, TimelineScreen) and app.screen.loaded is not None,
            60,
            "the timeline",
        )
        screen = app.screen
        assert isinstance(screen, TimelineScreen) and screen.loaded is not None
        assert not screen.loaded.problems, screen.loaded.problems
        starts = [e for e in screen.entries if e.kind == "operation" and e.vm == name and e.action == "start"]
        assert starts and starts[0].severity == "info", [e for e in screen.entries if e.vm == name]
        assert any(e.kind == "task" and e.host for e in screen.entries)  # who ran what, from which host
        await pilot.press("escape")
        app.screen.query_one("#vms").move_to(name)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LockScreen) and app.screen.status is not None, 60, "the lock")
        assert isinstance(app.screen, LockScreen) and app.screen.status is not None
        assert app.screen.status["locked"] is False

    drive(app, scenario)
