"""The interactive console: ``VmConsoleApp(config)``, the wiring of its parts.

* state: ``refresh.Refresher`` reads a ``ClusterState`` in a self-rescheduling thread worker
  (``Services.state()``, or the injected ``state_source``); the main screen diffs it into its table
  by row key. A read past twice the interval is overdue: one light probe per backend (``probes``)
  tells the header which backend it waits on. In real mode ``refresh.LifecycleWatch`` nudges the
  refresh on libvirt's events.
* memory: ``failures`` keeps each VM's last failure (with its cause) until a success or a cleanup;
  ``events`` keeps the node changes and libvirt events this console saw, for the timeline.
* read-only: the console gates its keys (``gating``) and builds its ``Services`` read-only too, so
  the service layer refuses any change whatever a screen does.
* actions: one entry point, ``perform(action, vm)``, used by keys, the command palette and the ``:``
  line alike; ``handlers.perform`` refuses a disabled action (``gating``), then calls the action's
  handler from the one table ``handlers.HANDLERS``: it opens the action's screen or confirmation,
  then ``start_task`` plans and runs the core task in a thread worker and shows its progress.
* workers and errors: ``workers.TaskLauncher`` runs blocking calls and tasks in thread workers; every
  failure comes back through ``on_worker_state_changed`` and is shown by ``show_error``, the one
  error path of the console.
* screens and widgets never import this module: they see the app as a ``console.Console``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.css.query import NoMatches
from textual.signal import Signal
from textual.worker import Worker

from vmconsole.config import Config
from vmconsole.core.rights import read_only_reason
from vmconsole.core.services import Services
from vmconsole.domain.errors import VmConsoleError
from vmconsole.domain.model import ClusterState
from vmconsole.tui import gating, handlers, text
from vmconsole.tui.console import Console, Planner
from vmconsole.tui.handlers.views import look_for_incomplete_tasks
from vmconsole.tui.memory import EventLog, FailureBook
from vmconsole.tui.messages import LifecycleEvent, TaskEvent, TaskPlanned
from vmconsole.tui.provider import VmCommandProvider
from vmconsole.tui.refresh import LifecycleWatch, Refresher
from vmconsole.tui.screens.confirm import ask
from vmconsole.tui.screens.help import HelpScreen, KeyHelp, group_of
from vmconsole.tui.screens.main import MainScreen, find_main
from vmconsole.tui.task_record import TaskRecord
from vmconsole.tui.workers import TaskLauncher


class VmConsoleApp(App[int]):
    """The Textual console of vmconsole."""

    CSS_PATH = "app.tcss"
    TITLE = "vmconsole"
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {
        *App.COMMANDS,
        VmCommandProvider,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", id="console.help"),
        Binding("q", "quit_console", "Quit", id="console.quit"),
    ]

    def __init__(
        self,
        config: Config,
        *,
        read_only: bool = False,
        services: Services | None = None,
        state_source: Callable[[], ClusterState] | None = None,
        clock: Callable[[], datetime] | None = None,
        keymap: Mapping[str, str] | None = None,
        check_rights: bool | None = None,
        check_recovery: bool | None = None,
        auto_refresh: bool = True,
        watch_events: bool | None = None,
        probes: Mapping[str, Callable[[], object]] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self._services = services
        self._own_services = services is None
        self._state_source = state_source
        self._clock = clock or (lambda: datetime.now(UTC))
        self._keymap = dict(keymap or {})
        injected = state_source is not None
        self.read_only_reason: str | None = None
        if read_only:
            self.read_only_reason = "read-only mode was asked for (--read-only or console.read_only)"
        elif check_rights if check_rights is not None else not injected:
            self.read_only_reason = read_only_reason(config)
        self.read_only = self.read_only_reason is not None
        self._check_recovery = check_recovery if check_recovery is not None else not injected
        self._watch_events = watch_events if watch_events is not None else not injected
        self.state_signal: Signal[ClusterState] = Signal(self, "state")
        self.failures = FailureBook()
        self.events = EventLog(socket.gethostname() if self._watch_events else None)
        self.refresher = Refresher(
            self,
            self._read,
            self.now,
            interval=max(config.console.refresh_interval, 0.5),
            auto=auto_refresh,
            on_state=self._show_state,
            on_change=self._tick,
            probes=probes if probes is not None else ({} if injected else self._backend_probes()),
        )
        self.lifecycle = LifecycleWatch(self, config.libvirt.uri, nudge=self.refresher.nudge)
        self.launcher = TaskLauncher(self, on_change=self._tick)

    # ------------------------------------------------------------------------------------ what screens read
    def now(self) -> datetime:
        return self._clock()

    @property
    def services(self) -> Services:
        """The service layer; refused when the console runs on an injected state (tests, demos)."""
        if self._services is None:
            if self._state_source is not None:
                raise VmConsoleError("this console shows an injected state and has no cluster connection")
            # the service layer refuses every change itself in read-only mode, whatever a screen does
            self._services = Services(self.config, read_only=self.read_only_reason)
        return self._services

    @property
    def state(self) -> ClusterState | None:
        return self.refresher.state

    @property
    def last_ok(self) -> datetime | None:
        return self.refresher.last_ok

    @property
    def stale_reason(self) -> str | None:
        return self.refresher.stale_reason

    @property
    def tasks(self) -> list[TaskRecord]:
        return self.launcher.tasks

    # ------------------------------------------------------------------------------------ mount
    def get_default_screen(self) -> MainScreen:
        return MainScreen()

    def on_mount(self) -> None:
        if self._keymap:
            self.set_keymap(self._keymap)
        self.set_interval(1.0, self._tick)
        self.refresh_now()
        if self._watch_events:
            self.lifecycle.start()

    def on_ready(self) -> None:
        if self._check_recovery and not self.read_only:
            look_for_incomplete_tasks(self, quiet=True)

    def on_unmount(self) -> None:
        self.lifecycle.stop.set()
        if self._services is not None and self._own_services:
            self._services.close()

    # ------------------------------------------------------------------------------------ refresh
    def _backend_probes(self) -> dict[str, Callable[[], object]]:
        """One light call per backend of the state read, to tell which one an overdue read waits on."""
        return {
            "ceph": lambda: self.services.vm_exists("vmconsoleprobe"),
            "pacemaker": lambda: self.services.reader.pacemaker_part(),
        }

    def _read(self) -> ClusterState:
        if self._state_source is not None:
            return self._state_source()
        return self.services.reader.read(ceph_max_age=self.refresher.ceph_max_age)

    def refresh_now(self) -> None:
        self.refresher.refresh_now()

    def _show_state(self, state: ClusterState) -> None:
        self.failures.observe(state)
        self.events.observe(state, self.now())
        main = find_main(self)
        if main is not None:
            main.show_state(state, self.now())
        self.state_signal.publish(state)

    def _tick(self) -> None:
        """The header's refresh indicator and count of running tasks (every second, and on change)."""
        main = find_main(self)
        if main is not None:
            try:
                main.show_refresh(self.last_ok, self.now(), self.stale_reason, self.refresher.overdue())
                main.show_tasks(
                    sum(1 for r in self.tasks if r.active),
                    {r.vm: r.short_status for r in self.tasks if r.active and r.vm},
                )
            except NoMatches:
                pass  # not composed yet: its on_mount asks again

    # ------------------------------------------------------------------------------------ messages
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "refresh":
            self.refresher.worker_changed(event.worker, event.state)
        else:
            self.launcher.worker_changed(event.worker, event.state)

    def on_task_planned(self, message: TaskPlanned) -> None:
        self.launcher.task_planned(message)

    def on_task_event(self, message: TaskEvent) -> None:
        self.launcher.task_event(message)

    def on_lifecycle_event(self, message: LifecycleEvent) -> None:
        self.events.lifecycle(message.domain, message.event, self.now())
        self.lifecycle.event_received()

    # ------------------------------------------------------------------------------------ actions and tasks
    def perform(
        self,
        action: str,
        vm: str | None = None,
        *,
        snapshot: str | None = None,
        node: str | None = None,
        argument: str | None = None,
    ) -> None:
        """Run one action by name (keys, palette and ``:`` all come here).

        ``node`` is the node of a node action (standby, online), or the target of a move.
        """
        handlers.perform(self, action, vm, snapshot_name=snapshot, node_name=node, argument=argument)

    def call_in_thread(
        self,
        work: Callable[[], Any],
        on_result: Callable[[Any], object],
        description: str,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        self.launcher.call_in_thread(work, on_result, description, on_error, quiet=quiet)

    def start_task(
        self,
        title: str,
        vm: str | None,
        planner: Planner,
        *,
        show: bool = True,
        on_finish: Callable[[TaskRecord], None] | None = None,
    ) -> TaskRecord:
        return self.launcher.start_task(title, vm, planner, show=show, on_finish=on_finish)

    def show_task(self, record: TaskRecord) -> None:
        self.launcher.show_task(record)

    def show_error(self, error: BaseException, title: str | None = None) -> None:
        self.launcher.show_error(error, title)

    # ------------------------------------------------------------------------------------ app keys
    def action_help(self) -> None:
        screen = self.screen
        help_text: str | None = None
        title = type(screen).__name__
        node: Any = screen.focused
        while node is not None and help_text is None:
            help_text = getattr(node, "HELP", None)
            if help_text:
                title = type(node).__name__
            node = node.parent
        keys: list[KeyHelp] = []
        seen: dict[str, int] = {}
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description:
                continue
            reason = None if active.enabled else gating.binding_reason(self, binding)
            display = self.get_key_display(binding)
            ident = binding.id or f"{binding.action}:{binding.description}"
            if ident in seen:  # one line per action: its keys together ("v y", "g home")
                index = seen[ident]
                if display not in keys[index].key.split(" "):
                    keys[index] = replace(keys[index], key=f"{keys[index].key} {display}")
                continue
            seen[ident] = len(keys)
            group = group_of(binding.id)
            keys.append(KeyHelp(display, binding.description, active.enabled, reason, group))
        self.push_screen(HelpScreen(title, help_text or "", keys))

    def action_quit_console(self) -> None:
        running = [r for r in self.tasks if r.active]
        if not running:
            self.exit(0)
            return
        body = Text(f"{len(running)} task(s) still running:\n")
        for record in running:
            body.append("  • ")
            body.append(text.plain(record.title))
            body.append("\n")
        body.append("\nQuitting cancels them: each undoes its completed steps, then the console closes.")

        def cancel_all() -> None:
            self.launcher.quitting = True
            for record in running:
                record.cancel.set()
            self.notify("Cancelling running tasks; the console closes when they have undone their steps.", markup=False)

        ask(self, "Quit with running tasks?", body, cancel_all, label="Cancel tasks and quit")


if TYPE_CHECKING:
    _gives_what_components_use: type[Console] = VmConsoleApp
