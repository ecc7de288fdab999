"""Every mutating operation is a task: a named plan of steps with progress, cancel and compensation.

The engine runs the steps in order, emits progress events, and on failure or cancel undoes the
completed steps in reverse. Around each run it takes the VMs' locks and keeps the task's journal
entry and history record through ``core.journal``.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from vmconsole.backends.rbd import RbdSession
from vmconsole.core.journal import Journal, now_iso
from vmconsole.domain.errors import Cancelled, OperationFailed, OperationIncomplete, VmConsoleError


@dataclass(frozen=True)
class ProgressEvent:
    """What a face shows while a task runs. ``kind``: start, step, progress, log, undo, done, failed."""

    task_id: str
    operation: str
    vm: str | None
    kind: str
    step_index: int = 0
    step_count: int = 0
    step_name: str = ""
    percent: float = 0.0  # of the whole task
    done: int = 0  # units of the current step (bytes for copies and imports)
    total: int = 0
    rate: float = 0.0  # units per second in the current step
    eta: float | None = None  # seconds left in the current step
    message: str = ""
    unit: str = "bytes"  # of done/total: "bytes" (copies, imports) or "items" (snapshots, disks, VMs)
    steps: tuple[str, ...] = ()


Listener = Callable[[ProgressEvent], None]


@dataclass
class Step:
    """One step of a task. ``undo`` reverts what ``run`` made, and only that: it acts on the names the
    step recorded in ``data`` once each thing existed, so it tolerates a step that did only part of
    its work. None means the step changes nothing that needs reverting."""

    name: str
    run: Callable[[StepContext], None]
    undo: Callable[[StepContext], None] | None = None
    weight: float = 1.0  # share of the task's percent
    # Once this step starts, what the steps before it made is kept whatever happens next (a VM built,
    # a safety snapshot, disks rolled back): only the failing step's own undo runs, and the message
    # says what was kept and how to finish or revert.
    point_of_no_return: bool = False
    # what the step leaves on purpose even when the task is undone (a safety net), for the message;
    # None when it made nothing of the kind (it failed before)
    leaves: Callable[[dict[str, Any]], str | None] | None = None


@dataclass
class Task:
    operation: str
    vm: str | None
    args: dict[str, Any]
    steps: list[Step]
    locks: list[str] = field(default_factory=list)  # VMs to lock (default: [vm])
    task_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    description: str = ""
    # shared between steps and saved in the journal, so recovery can undo with the same names
    data: dict[str, Any] = field(default_factory=dict)
    # the plan checked again under the locks, before any step runs (names still free, states as planned)
    precheck: Callable[[], None] | None = None
    # after a failure past a point of no return: what is kept, and the command that finishes or reverts it
    kept: Callable[[dict[str, Any]], str] | None = None
    # what the operator should know before confirming (a domain reaching into the host...)
    warnings: tuple[str, ...] = ()


@dataclass
class TaskResult:
    task_id: str
    operation: str
    vm: str | None
    ok: bool
    seconds: float
    message: str
    data: dict[str, Any]
    left_behind: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StepContext:
    def __init__(self, runner: TaskRunner, task: Task, index: int, cancel: threading.Event) -> None:
        self.runner = runner
        self.task = task
        self.index = index
        self.cancel = cancel
        self.started = time.monotonic()

    @property
    def data(self) -> dict[str, Any]:
        return self.task.data

    def save(self) -> None:
        """Write ``data`` to the journal now (before an action whose name recovery must know)."""
        self.runner.journal.update(self.task)

    def made(self, key: str, name: str) -> None:
        """Record that this task made ``name`` (an image, a group, a snapshot...), once it exists: the
        undos, here and in ``recover``, act on recorded names only."""
        self.data.setdefault(key, []).append(name)
        self.save()

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"{self.task.operation} cancelled by the operator")

    def progress(self, done: int, total: int, message: str = "", *, unit: str = "bytes") -> None:
        self.check_cancel()
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 and total >= done else None
        fraction = done / total if total else 0.0
        self.runner.emit(
            self.task,
            "progress",
            self.index,
            fraction,
            done=done,
            total=total,
            rate=rate,
            eta=eta,
            message=message,
            unit=unit,
        )

    def log(self, message: str) -> None:
        self.runner.emit(self.task, "log", self.index, 0.0, message=message)


class TaskRunner:
    def __init__(self, session: RbdSession, listener: Listener | None = None) -> None:
        self.session = session
        self.listener = listener
        self.journal = Journal(session)
        self.holder = self.journal.holder

    # ------------------------------------------------------------------ events
    def emit(self, task: Task, kind: str, index: int, fraction: float, **extra: Any) -> None:
        if self.listener is None:
            return
        weights = [s.weight for s in task.steps] or [1.0]
        total = sum(weights)
        before = sum(weights[:index])
        current = weights[index] if index < len(weights) else 0.0
        percent = 100.0 * (before + current * min(max(fraction, 0.0), 1.0)) / total if total else 100.0
        if kind == "done":
            percent = 100.0
        step_name = task.steps[index].name if index < len(task.steps) else ""
        self.listener(
            ProgressEvent(
                task_id=task.task_id,
                operation=task.operation,
                vm=task.vm,
                kind=kind,
                step_index=index,
                step_count=len(task.steps),
                step_name=step_name,
                percent=percent,
                steps=tuple(s.name for s in task.steps),
                **extra,
            )
        )

    # ------------------------------------------------------------------ running
    def run(
        self, task: Task, cancel: threading.Event | None = None, *, resume_done: list[str] | None = None
    ) -> TaskResult:
        """Run ``task``; on failure or cancel undo its completed steps in reverse and raise.

        Before any step the plan is checked again under the locks (``task.precheck``); before each
        step the locks are checked to be still held (a lease lost to another holder stops the task).
        ``resume_done`` names steps already completed by an earlier, killed run (recovery).
        """
        cancel = cancel or threading.Event()
        started = time.monotonic()
        task.args.setdefault("_started", now_iso())
        with self.journal.locked(task):
            if task.precheck is not None:
                task.precheck()
            done: list[int] = [i for i, s in enumerate(task.steps) if resume_done and s.name in resume_done]
            self.journal.update(task, "running", [task.steps[i].name for i in done])
            self.emit(task, "start", 0, 0.0, message=task.description or task.operation)
            current: int | None = None
            no_return: int | None = None
            try:
                for index, step in enumerate(task.steps):
                    if index in done:
                        continue
                    if cancel.is_set():
                        raise Cancelled(f"{task.operation} cancelled by the operator")
                    self.journal.check_leases(task)
                    current = index
                    if step.point_of_no_return:
                        no_return = index
                        task.data["_no_return"] = step.name  # recover finishes such a task, never undoes it
                        self.journal.update(task)
                    self.emit(task, "step", index, 0.0, message=step.name)
                    step.run(StepContext(self, task, index, cancel))
                    done.append(index)
                    current = None
                    self.journal.update(task, "running", [task.steps[i].name for i in done])
            except BaseException as exc:
                self._failed(task, exc, done, current, no_return, time.monotonic() - started)
            seconds = time.monotonic() - started
            self._finished(task)
            message = task.data.get("_summary") or f"{task.operation} done in {seconds:.1f} s"
            self.emit(task, "done", len(task.steps) - 1, 1.0, message=message)
            self.journal.history_append(self.journal.history_record(task, "ok", seconds, message))
            return TaskResult(
                task.task_id,
                task.operation,
                task.vm,
                True,
                seconds,
                message,
                {k: v for k, v in task.data.items() if not k.startswith("_")},
            )

    def _finished(self, task: Task) -> None:
        """The task ended well: its journal entry goes. Should the cluster not take that now, the entry
        stays marked finished, and recovery offers only to forget it, never to undo it."""
        try:
            self.journal.update(task, "finished")
            self.journal.remove(task.task_id, task)
        except VmConsoleError:
            pass

    def _failed(
        self,
        task: Task,
        exc: BaseException,
        done: list[int],
        current: int | None,
        no_return: int | None,
        seconds: float,
    ) -> NoReturn:
        """Compensate, record and raise, with a message that says exactly what is left."""
        # Past a point of no return, only the failing step's own work is undone (it may have done part
        # of it); before it, every completed step is, in reverse, the failing one first.
        undo = [current] if current is not None else []
        if no_return is None:
            undo = [*done, *undo]
        past_no_return = no_return is not None
        left = self._compensate(task, undo)
        error = exc if isinstance(exc, VmConsoleError) else OperationFailed(f"{task.operation} failed: {exc!r}")
        if isinstance(exc, KeyboardInterrupt):
            error = Cancelled(f"{task.operation} interrupted")
        try:
            if left:
                self.journal.update(task, "needs-recovery", [task.steps[i].name for i in done])
            else:
                self.journal.remove(task.task_id, task)
        except VmConsoleError as journal_error:
            # the cluster is sick: the entry stays as it was, `recover` will show it
            left.append(f"journal not updated ({journal_error})")
        outcome = "cancelled" if isinstance(error, Cancelled) else "failed"
        message = str(error)
        if left:
            message += "; could not undo: " + "; ".join(left)
        if past_no_return:
            done_names = ", ".join(task.steps[i].name for i in done) or "what it had done"
            message += "; " + (task.kept(task.data) if task.kept is not None else f"kept: {done_names}")
        elif not left and (done or current is not None):
            started = [*done, current] if current is not None else done
            nets = [net for i in started if (leaves := task.steps[i].leaves) and (net := leaves(task.data))]
            if done:
                message += " (every completed step was undone" + (
                    f"; kept on purpose: {', '.join(nets)})" if nets else ")"
                )
            elif nets:
                message += f" (kept on purpose: {', '.join(nets)})"
        self.emit(task, "failed", min(len(done), len(task.steps) - 1), 0.0, message=message)
        self.journal.history_append(self.journal.history_record(task, outcome, seconds, message))
        if not isinstance(exc, VmConsoleError):
            traceback.print_exception(exc)
        if left:
            raise OperationIncomplete(message, hint=f"`vmconsole recover` lists task {task.task_id}") from exc
        if past_no_return:
            raise OperationIncomplete(message) from exc
        error.message = message
        raise error from exc if error is not exc else None

    def _compensate(self, task: Task, indexes: list[int]) -> list[str]:
        left: list[str] = []
        for index in reversed(indexes):
            step = task.steps[index]
            if step.undo is None:
                continue
            self.emit(task, "undo", index, 0.0, message=f"undoing: {step.name}")
            try:
                step.undo(StepContext(self, task, index, threading.Event()))
            except BaseException as exc:  # keep undoing the others
                left.append(f"{step.name} ({exc})")
        return left
