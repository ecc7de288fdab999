"""What every handler shares: the ``Request`` it receives, and the confirm-then-task rows.

Many actions are "ask a confirmation that names what is lost, then on yes start a task": each is a
``ConfirmTask`` row (what the modal says, what the task is called, which core planner runs),
consumed by the one function ``confirm_task``. One-step actions (start, stop, enable...) run
inline (``show=False``): progress on the VM's row, a notification at the end.

Actions built from a form (create, clone, import, colocation, pacemaker-remote) are planned first,
in a worker, by their form (``PlanningForm``: a refusal leaves the form open): ``confirm_plan`` shows
the service's own plan, its steps and its warnings (a domain XML reaching into the host), and yes
runs that very plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rich.text import Text
from textual.app import App

from vmconsole.core.services import Services
from vmconsole.core.tasks import Task
from vmconsole.domain.model import NodeState, VmState
from vmconsole.tui import text
from vmconsole.tui.console import Console, console_of
from vmconsole.tui.screens.confirm import ask
from vmconsole.tui.task_record import TaskRecord

S = TypeVar("S")


@dataclass(frozen=True)
class Request:
    """One action to run, as ``perform`` resolved it from the last cluster state."""

    app: App[Any]
    vm_state: VmState | None = None  # VM actions: the VM (always set for them)
    node_state: NodeState | None = None  # node actions: the node (always set for them)
    snapshot: str | None = None  # snapshot actions and rollback: the snapshot asked for, if any
    target: str | None = None  # a move: the target node asked for, if any
    argument: str | None = None  # what the ``:`` line gave after the verb (import: the domain)

    @property
    def console(self) -> Console:
        return console_of(self.app)

    @property
    def vm(self) -> VmState:
        if self.vm_state is None:
            raise LookupError("a VM action without its VM")
        return self.vm_state

    @property
    def node(self) -> NodeState:
        if self.node_state is None:
            raise LookupError("a node action without its node")
        return self.node_state


Handler = Callable[[Request], None]


@dataclass(frozen=True)
class ConfirmTask(Generic[S]):
    """A confirmation, then on yes a task, about one subject (a VM, a node, a snapshot...)."""

    title: Callable[[S], str]  # the modal's title
    body: Callable[[Console, S], Text]  # what happens and what is lost
    confirm: str  # the confirm button's label
    task: Callable[[S], str]  # the task's title
    vm: Callable[[S], str | None]  # the task's VM (None for a node or a bulk task)
    plan: Callable[[Services, S], Task]  # the core planner, looked up when the task runs
    typed: Callable[[S], str] | None = None  # a word to type before the button unlocks
    typed_what: str = "the VM name"
    danger: bool = True
    on_finish: Callable[[App[Any], TaskRecord], None] | None = None
    show: bool = True  # False: a one-step action, shown inline (row progress, then a notification)


def confirm_task(app: App[Any], row: ConfirmTask[S], subject: S) -> None:
    """Ask ``row``'s confirmation about ``subject``; on yes, start its task."""
    console = console_of(app)

    def start() -> None:
        on_finish = row.on_finish
        console.start_task(
            row.task(subject),
            row.vm(subject),
            lambda services: row.plan(services, subject),
            show=row.show,
            on_finish=(lambda record: on_finish(app, record)) if on_finish is not None else None,
        )

    ask(
        app,
        row.title(subject),
        row.body(console, subject),
        start,
        label=row.confirm,
        typed=row.typed(subject) if row.typed is not None else None,
        typed_what=row.typed_what,
        danger=row.danger,
    )


def plan_body(task: Task, intro: Text | None = None, consequence: Text | None = None) -> Text:
    """What a planned task will do, as the service planned it: its steps and its warnings."""
    body = Text(end="")
    if intro is not None:
        body.append(intro)
        body.append("\n\n")
    body.append(text.plain(task.description or task.operation, "bold"))
    body.append("\n")
    for index, step in enumerate(task.steps, 1):
        body.append(f"  {index}. ")
        body.append(text.plain(step.name))
        body.append("\n")
    for warning in task.warnings:
        body.append("\n⚠ ", style="bold yellow")
        body.append(text.plain(warning, "yellow"))
    if consequence is not None:
        body.append("\n\n")
        body.append(consequence)
    return body


@dataclass(frozen=True)
class PlanConfirmation:
    """How a planned task is put to the operator: the modal's words, and the task it starts on yes."""

    title: str  # the modal's title
    task_title: str
    vm: str | None
    label: str  # the confirm button
    intro: Text | None = None
    consequence: Text | None = None  # what the operator must know beyond the plan (force replaces...)
    typed: str | None = None  # the VM name to type (replacing a VM, removing a remote node...)
    danger: bool = False
    inline: bool = False  # a one-step task: progress on the VM's row
    on_finish: Callable[[TaskRecord], None] | None = None


def confirm_plan(app: App[Any], task: Task, how: PlanConfirmation) -> None:
    """Show a planned task (its steps and warnings); on yes, run that very plan as a task (it checks
    itself again under its locks before any step)."""
    console = console_of(app)

    def start() -> None:
        console.start_task(how.task_title, how.vm, lambda _services: task, show=not how.inline, on_finish=how.on_finish)

    ask(
        app,
        how.title,
        plan_body(task, how.intro, how.consequence),
        start,
        label=how.label,
        typed=how.typed,
        typed_what="the VM name",
        danger=how.danger or bool(task.warnings),
    )
