"""What the console remembers of one task it started: state, steps, progress and log.

A record is created when the operator confirms an action, before the service plans the task (the
plan itself reads the cluster, in a thread worker). It is only mutated on the UI thread, from the
``TaskEvent`` messages that the task's listener posts; widgets read it and redraw.
"""

from __future__ import annotations

import enum
import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from vmconsole.core.tasks import ProgressEvent, TaskResult
from vmconsole.domain.errors import OperationIncomplete, VmConsoleError
from vmconsole.tui.text import safe

MAX_LOG = 5000
_ids = itertools.count(1)
_COMMAND = re.compile(r"`([^`]+)`")


class TaskState(enum.StrEnum):
    PLANNING = "planning"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"  # stopped part-way: what was kept is kept, the message says how to finish


def commands_in(message: str) -> list[str]:
    """The commands a message names between backquotes, once each, in order."""
    return list(dict.fromkeys(_COMMAND.findall(message)))


@dataclass(frozen=True)
class FollowUp:
    """An action offered on a finished task: "undo rollback", "force stop"..."""

    key: str
    label: str
    action: str  # a name for ``perform``
    vm: str | None


@dataclass
class TaskRecord:
    title: str
    vm: str | None
    started: datetime
    record_id: int = field(default_factory=lambda: next(_ids))
    operation: str = ""
    task_id: str = ""
    state: TaskState = TaskState.PLANNING
    steps: tuple[str, ...] = ()
    step_index: int = 0
    step_name: str = ""
    undoing: bool = False
    percent: float = 0.0
    done: int = 0
    total: int = 0
    unit: str = "bytes"
    rate: float = 0.0
    eta: float | None = None
    message: str = ""
    finished: datetime | None = None
    log: list[str] = field(default_factory=list)
    log_total: int = 0  # lines ever written (``log`` keeps the last MAX_LOG)
    error: VmConsoleError | None = None
    result: TaskResult | None = None
    follow_ups: list[FollowUp] = field(default_factory=list)
    cause: str | None = None  # the agent's or libvirt's own error behind a failed start, once diagnosed
    inline: bool = False  # a one-step action: no task view while it runs (it opens if the task fails)
    cancel: threading.Event = field(default_factory=threading.Event)
    version: int = 0
    on_finish: Callable[[TaskRecord], None] | None = None

    @property
    def active(self) -> bool:
        return self.state in (TaskState.PLANNING, TaskState.RUNNING)

    @property
    def commands(self) -> list[str]:
        """The commands the result names (to finish, revert or look further): shown on their own lines."""
        return commands_in(self.message)

    @property
    def short_status(self) -> str:
        """A few words for the row of the VM while the task runs: ``start 40%``."""
        name = self.operation or self.title.split(" ", 1)[0]
        return f"{name} {self.percent:.0f}%" if self.state is TaskState.RUNNING else f"{name}…"

    def set_cause(self, cause: str, when: datetime) -> None:
        self.cause = cause
        self.add_log(when, f"Cause: {cause}")

    def add_log(self, when: datetime, message: str) -> None:
        for line in safe(message).splitlines() or [""]:
            self.log.append(f"{when:%H:%M:%S} {line}")
            self.log_total += 1
        if len(self.log) > MAX_LOG:
            del self.log[: len(self.log) - MAX_LOG]
        self.version += 1

    def apply(self, event: ProgressEvent, when: datetime) -> None:
        """Fold one progress event into the record."""
        if event.steps:
            self.steps = event.steps
        self.task_id = event.task_id or self.task_id
        self.operation = event.operation or self.operation
        if event.kind == "start":
            self.state = TaskState.RUNNING
            self.add_log(when, f"started: {event.message}")
        elif event.kind == "step":
            self.step_index, self.step_name = event.step_index, event.step_name
            self.done = self.total = 0
            self.rate, self.eta = 0.0, None
            self.add_log(when, f"step {event.step_index + 1}/{event.step_count}: {event.step_name}")
        elif event.kind == "progress":
            self.step_index, self.step_name = event.step_index, event.step_name
            self.done, self.total, self.rate, self.eta = event.done, event.total, event.rate, event.eta
            self.unit = event.unit
        elif event.kind == "log":
            self.add_log(when, event.message)
        elif event.kind == "undo":
            self.undoing = True
            self.step_index = event.step_index
            self.add_log(when, event.message)
        elif event.kind == "done":
            self.step_index = max(len(self.steps) - 1, 0)
            self.message = event.message
            self.add_log(when, f"done: {event.message}")
        elif event.kind == "failed":
            self.message = event.message
            self.add_log(when, f"failed: {event.message}")
        if event.kind != "undo":
            self.percent = max(self.percent, event.percent) if event.kind != "failed" else self.percent
        self.version += 1

    def finish_ok(self, result: TaskResult, when: datetime) -> None:
        self.state = TaskState.DONE
        self.result = result
        self.percent = 100.0
        self.message = result.message or self.message
        self.finished = when
        self.eta = None
        self.version += 1

    def finish_error(self, error: VmConsoleError, when: datetime, *, cancelled: bool = False) -> None:
        if cancelled:
            self.state = TaskState.CANCELLED
        else:
            self.state = TaskState.INCOMPLETE if isinstance(error, OperationIncomplete) else TaskState.FAILED
        self.error = error
        self.message = error.message
        if not self.log or "failed:" not in self.log[-1]:
            self.add_log(when, f"{self.state.value}: {error}")
        self.finished = when
        self.eta = None
        self.version += 1
