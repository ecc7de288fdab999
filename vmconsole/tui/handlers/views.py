"""Handlers that open views or act on the console itself: the VM detail and its diagnosis, its
metadata, XML and lock, the task list, the history, the timeline, the incomplete tasks, a refresh,
the failed-only view, and marking a VM."""

from __future__ import annotations

from typing import Any

from textual.app import App

from vmconsole.core import recovery
from vmconsole.tui import ops
from vmconsole.tui.console import console_of
from vmconsole.tui.handlers.base import Request
from vmconsole.tui.screens.config_view import ConfigScreen
from vmconsole.tui.screens.history import HistoryScreen
from vmconsole.tui.screens.lock import LockScreen
from vmconsole.tui.screens.main import find_main
from vmconsole.tui.screens.metadata import MetadataScreen
from vmconsole.tui.screens.recovery import RecoveryScreen
from vmconsole.tui.screens.tasks import TaskListScreen
from vmconsole.tui.screens.timeline import TimelineScreen
from vmconsole.tui.screens.vm_detail import VmDetailScreen


def detail(request: Request) -> None:
    request.app.push_screen(VmDetailScreen(request.vm.name))


def log(request: Request) -> None:
    """k9s's ``l``: the detail view, diagnosed at once and scrolled to the diagnosis."""
    request.app.push_screen(VmDetailScreen(request.vm.name, diagnose_now=True))


def lock(request: Request) -> None:
    request.app.push_screen(LockScreen(request.vm.name))


def timeline(request: Request) -> None:
    request.app.push_screen(TimelineScreen(request.argument))


def failed(request: Request) -> None:
    main = find_main(request.app)
    if main is not None:
        main.toggle_failed_only()


def metadata(request: Request) -> None:
    request.app.push_screen(MetadataScreen(request.vm.name))


def config(request: Request) -> None:
    name, app, console = request.vm.name, request.app, request.console
    console.call_in_thread(
        lambda: ops.read_domain_config(console.services, name),
        lambda domain: app.push_screen(ConfigScreen(domain)),
        f"read the XML of {name}",
    )


def tasks(request: Request) -> None:
    request.app.push_screen(TaskListScreen())


def history(request: Request) -> None:
    app, console = request.app, request.console
    console.call_in_thread(
        lambda: console.services.history(),
        lambda records: app.push_screen(HistoryScreen(records, vm=request.argument)),
        "read the history",
    )


def recover(request: Request) -> None:
    look_for_incomplete_tasks(request.app)


def look_for_incomplete_tasks(app: App[Any], *, quiet: bool = False) -> None:
    """Tasks left half-done by a vmconsole that died: shown when found; ``quiet`` says nothing else."""
    console = console_of(app)

    def found(entries: list[dict[str, Any]]) -> None:
        if entries:
            app.notify(
                f"{len(entries)} incomplete task(s) from an earlier vmconsole need attention.",
                title="Recovery",
                severity="warning",
                markup=False,
            )
            app.push_screen(RecoveryScreen(entries))
        elif not quiet:
            app.notify("No incomplete task.", markup=False)

    console.call_in_thread(lambda: recovery.incomplete_tasks(console.services), found, "look for incomplete tasks")


def refresh(request: Request) -> None:
    request.console.refresh_now()


def mark(request: Request) -> None:
    main = find_main(request.app)
    if main is not None:
        main.table.move_to(request.vm.name)
        main.toggle_mark()
