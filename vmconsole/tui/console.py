"""What screens, widgets and handlers see of the console app: the ``Console`` protocol.

Components never import the app module: they type ``self.app`` as a ``Console`` through
``console_of``, the one place that casts. The app checks that it provides all of it (``app.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, cast

from textual.app import App
from textual.signal import Signal

from vmconsole.core.services import Services
from vmconsole.core.tasks import Task
from vmconsole.domain.model import ClusterState
from vmconsole.tui.memory import EventLog, FailureBook
from vmconsole.tui.task_record import TaskRecord

Planner = Callable[[Services], Task]  # plans a core task, in the task's thread worker


class Console(Protocol):
    """The console's state and entry points, as the screens and widgets use them."""

    read_only: bool
    read_only_reason: str | None  # why the console is read-only (None when it is not)
    state_signal: Signal[ClusterState]  # published after every successful read
    failures: FailureBook  # the last failure of each VM, kept until a success or a cleanup
    events: EventLog  # node changes and libvirt events this console saw (for the timeline)

    @property
    def services(self) -> Services: ...

    @property
    def state(self) -> ClusterState | None: ...

    @property
    def last_ok(self) -> datetime | None: ...

    @property
    def stale_reason(self) -> str | None: ...

    @property
    def tasks(self) -> list[TaskRecord]: ...

    def now(self) -> datetime: ...

    def perform(
        self,
        action: str,
        vm: str | None = None,
        *,
        snapshot: str | None = None,
        node: str | None = None,
        argument: str | None = None,
    ) -> None: ...

    def refresh_now(self) -> None: ...

    def call_in_thread(
        self,
        work: Callable[[], Any],
        on_result: Callable[[Any], object],
        description: str,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        quiet: bool = False,
    ) -> None: ...

    def start_task(
        self,
        title: str,
        vm: str | None,
        planner: Planner,
        *,
        show: bool = True,
        on_finish: Callable[[TaskRecord], None] | None = None,
    ) -> TaskRecord: ...

    def show_task(self, record: TaskRecord) -> None: ...

    def show_error(self, error: BaseException, title: str | None = None) -> None: ...

    def action_help(self) -> None: ...

    def action_quit_console(self) -> None: ...


def console_of(app: App[Any]) -> Console:
    """The running console app, typed as what components may use of it."""
    return cast(Console, app)
