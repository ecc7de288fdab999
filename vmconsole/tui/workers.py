"""Blocking work off the UI thread: service calls, core tasks, and the console's one error path.

* ``call_in_thread`` runs a blocking service call in a thread worker; its result (or error) comes
  back on the UI thread through the worker's state message;
* ``start_task`` plans and runs a core task in a thread worker; its plan (``TaskPlanned``) and each
  progress event (``TaskEvent``) come back as messages folded into a ``TaskRecord``; when it ends the
  record gets its follow-ups and its ``on_finish`` runs;
* ``show_error`` shows every failure the same way: message, the field at fault and a hint; a task
  that stopped part-way (``OperationIncomplete``) says so, with the command that finishes it;
* a task that had nothing to do (``already_started``...) leaves no task behind: an information notice;
* a failed task leaves its failure on the VM's row (``FailureBook``) and, for a failed start, the
  console diagnoses the VM at once and adds the "Cause:" line (``causes``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

from textual.app import App
from textual.worker import Worker, WorkerState, get_current_worker

from vmconsole.core import diagnose
from vmconsole.core.diagnose import Diagnosis
from vmconsole.core.tasks import ProgressEvent, TaskResult
from vmconsole.domain.errors import Cancelled, OperationIncomplete, VmConsoleError
from vmconsole.tui import causes, text
from vmconsole.tui.console import Planner, console_of
from vmconsole.tui.memory import KeptFailure
from vmconsole.tui.messages import TaskEvent, TaskPlanned
from vmconsole.tui.screens.progress import TaskScreen
from vmconsole.tui.task_record import FollowUp, TaskRecord, TaskState, commands_in

# operations whose failure is the VM's (kept on its row until a success or a cleanup)
VM_FAILURES = frozenset(
    {
        "start",
        "stop",
        "enable",
        "create",
        "clone",
        "import",
        "update",
        "move",
        "snapshot-rollback",
        "snapshot-rollback-undo",
    }
)
# operations that start the VM: their failure gets a "Cause:" line from the VM's diagnosis
STARTS_THE_VM = frozenset(
    {"start", "enable", "create", "clone", "import", "update", "move", "snapshot-rollback", "snapshot-rollback-undo"}
)
# a success of these means the VM is fine again
CLEARS_FAILURE = frozenset({"start", "enable", "cleanup", "create", "clone", "import", "update", "remove", "move"})

T = TypeVar("T")


def abandonable(work: Callable[[], T]) -> T:
    """Run ``work`` in a daemon thread and wait for it, unless the worker is cancelled first.

    A thread worker cannot be interrupted: a read stuck on a sick cluster would hold the executor,
    and so the console's exit, until the backend's timeout. Here the worker returns as soon as it
    is cancelled (the app quits) and the daemon thread is abandoned.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="vmconsole-call", daemon=True).start()
    worker = get_current_worker()
    while not done.wait(0.05):
        if worker.is_cancelled:
            raise Cancelled("abandoned: the console is closing")
    if "error" in box:
        raise box["error"]
    return cast(T, box["result"])


@dataclass
class _Call:
    on_result: Callable[[Any], object]
    on_error: Callable[[BaseException], None] | None
    quiet: bool = False  # a failure is handled by ``on_error`` alone (no error notification)


class TaskLauncher:
    """The console's thread workers for service calls and tasks (the app routes their messages here)."""

    def __init__(self, app: App[Any], on_change: Callable[[], None]) -> None:
        self.app = app
        self.on_change = on_change  # the count of running tasks changed
        self.tasks: list[TaskRecord] = []
        self.quitting = False  # the console exits when the last running task has ended
        self._records: dict[int, TaskRecord] = {}
        self._calls: dict[str, _Call] = {}
        self._call_ids = 0

    # ------------------------------------------------------------------------------------ calls
    def call_in_thread(
        self,
        work: Callable[[], Any],
        on_result: Callable[[Any], object],
        description: str,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        """Run a blocking service call in a thread worker; the result comes back on the UI thread."""
        self._call_ids += 1
        name = f"call:{self._call_ids}"
        self._calls[name] = _Call(on_result, on_error, quiet)
        self.app.run_worker(
            partial(abandonable, work),
            name=name,
            group="call",
            thread=True,
            exit_on_error=False,
            description=description,
        )

    def worker_changed(self, worker: Worker[Any], state: WorkerState) -> None:
        """A call or task worker ended (the app routes the groups ``call`` and ``task`` here)."""
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        if worker.group == "task":
            record = self._records.get(int(worker.name.split(":", 1)[1]))
            if record is not None:
                self._task_finished(record, worker.result if state is WorkerState.SUCCESS else None, worker.error)
        elif worker.group == "call":
            call = self._calls.pop(worker.name, None)
            if call is None:
                return
            if state is WorkerState.SUCCESS:
                call.on_result(worker.result)
            else:
                error = worker.error or RuntimeError("unknown error")
                if call.on_error is not None:
                    call.on_error(error)
                if not call.quiet:
                    self.show_error(error)

    def show_error(self, error: BaseException, title: str | None = None) -> None:
        """The console's one error path: message, the field at fault and a hint, shown literally. A
        refusal because the state asked for holds already (``already_started``...) is no error: an
        information notice says so."""
        if isinstance(error, VmConsoleError) and error.already_done:
            self.app.notify(text.safe(error.message), title="Nothing to do", severity="information", markup=False)
            return
        if isinstance(error, VmConsoleError):
            lines = [error.message]
            if error.field:
                lines.append(f"field: {error.field}")
            if error.hint:
                lines.append(f"hint: {error.hint}")
            heading = title or ("Cancelled" if isinstance(error, Cancelled) else type(error).__name__)
            if isinstance(error, OperationIncomplete):
                # not undone: what was kept stays, and the message names the command that finishes it
                lines.extend(f"to finish or revert: {command}" for command in commands_in(error.message))
        else:
            lines = [f"{type(error).__name__}: {error}"]
            heading = title or "Unexpected error"
            self.app.log.error(repr(error))
        message = "\n".join(text.safe(line) for line in lines)
        self.app.notify(message, title=text.safe(heading), severity="error", timeout=15, markup=False)

    # ------------------------------------------------------------------------------------ tasks
    def start_task(
        self,
        title: str,
        vm: str | None,
        planner: Planner,
        *,
        show: bool = True,
        on_finish: Callable[[TaskRecord], None] | None = None,
    ) -> TaskRecord:
        """Plan and run a core task in a thread worker; its progress lands in a ``TaskRecord``."""
        record = TaskRecord(title, vm, console_of(self.app).now(), on_finish=on_finish, inline=not show)
        self.tasks.append(record)
        self._records[record.record_id] = record
        self.app.run_worker(
            partial(self._run_task, record, planner),
            name=f"task:{record.record_id}",
            group="task",
            thread=True,
            exit_on_error=False,
            description=title,
        )
        self.on_change()
        if show:
            self.show_task(record)
        return record

    def show_task(self, record: TaskRecord) -> None:
        self.app.push_screen(TaskScreen(record))

    def _run_task(self, record: TaskRecord, planner: Planner) -> TaskResult:
        """The task's thread worker: plan, then run, posting the plan and every event to the UI."""
        services = console_of(self.app).services
        task = planner(services)
        self.app.post_message(
            TaskPlanned(record.record_id, task.operation, tuple(s.name for s in task.steps), task.description)
        )

        def listener(event: ProgressEvent) -> None:
            self.app.post_message(TaskEvent(record.record_id, event))

        return services.run(task, record.cancel, listener=listener)

    def task_planned(self, message: TaskPlanned) -> None:
        record = self._records.get(message.record_id)
        if record is not None:
            record.operation = message.operation
            record.steps = message.steps
            record.add_log(
                console_of(self.app).now(),
                f"planned: {message.description or message.operation} "
                f"({len(message.steps)} step{'s' if len(message.steps) != 1 else ''})",
            )

    def task_event(self, message: TaskEvent) -> None:
        record = self._records.get(message.record_id)
        if record is not None:
            record.apply(message.event, console_of(self.app).now())

    def _task_finished(self, record: TaskRecord, result: Any, error: BaseException | None) -> None:
        console = console_of(self.app)
        now = console.now()
        if isinstance(result, TaskResult):
            record.finish_ok(result, now)
            if record.vm and record.operation in CLEARS_FAILURE:
                console.failures.forget(record.vm)
            self.app.notify(text.safe(f"{record.title}: {record.message}"), title="Done", markup=False)
        else:
            failure = error if isinstance(error, VmConsoleError) else VmConsoleError(f"{type(error).__name__}: {error}")
            if failure.already_done and record.state is TaskState.PLANNING:
                self._nothing_to_do(record, failure)
                return
            record.finish_error(failure, now, cancelled=isinstance(error, Cancelled))
            outcome = {TaskState.CANCELLED: "cancelled", TaskState.INCOMPLETE: "stopped part-way"}.get(
                record.state, "failed"
            )
            self.show_error(failure, title=f"{record.title}: {outcome}")
            self._remember_failure(record)
        record.follow_ups = follow_ups(record)
        if record.inline and record.state in (TaskState.FAILED, TaskState.INCOMPLETE):
            self.show_task(record)  # a failure deserves its view: the cause, and what to do next
        if record.on_finish is not None:
            record.on_finish(record)
        console.refresh_now()
        self.on_change()
        if self.quitting and not any(r.active for r in self.tasks):
            self.app.exit(0)

    def _nothing_to_do(self, record: TaskRecord, notice: VmConsoleError) -> None:
        """The state asked for holds already: no task is left behind, an information notice says so."""
        self.tasks.remove(record)
        self._records.pop(record.record_id, None)
        screen = self.app.screen
        if isinstance(screen, TaskScreen) and screen.record is record:
            screen.dismiss(None)
        self.show_error(notice)  # an information notice
        self.on_change()

    def _remember_failure(self, record: TaskRecord) -> None:
        """A failed lifecycle task stays on its VM's row; a failed start gets its cause diagnosed."""
        vm = record.vm
        if vm is None or record.state not in (TaskState.FAILED, TaskState.INCOMPLETE):
            return
        if record.operation not in VM_FAILURES:
            return
        console = console_of(self.app)
        console.failures.remember(vm, KeptFailure(record.finished, record.operation, record.message))
        if record.operation not in STARTS_THE_VM:
            return

        def diagnosed(report: Diagnosis) -> None:
            cause = causes.cause_of(report)
            if cause is None:
                return
            record.set_cause(cause.line(), console.now())
            console.failures.add_cause(vm, cause.line())
            self.app.notify(
                text.safe(f"Cause: {cause.line()}"),
                title=text.safe(f"{record.title}: why"),
                severity="error",
                timeout=20,
                markup=False,
            )

        # quiet: a VM that is gone (the task undid its creation) has nothing to diagnose
        self.call_in_thread(lambda: diagnose.diagnose(console.services, vm), diagnosed, f"diagnose {vm}", quiet=True)


def follow_ups(record: TaskRecord) -> list[FollowUp]:
    """What to offer next: undo after a rollback, force after a stop that did not finish, the
    diagnosis after a failed start."""
    follow: list[FollowUp] = []
    if record.operation == "snapshot-rollback" and record.state is TaskState.DONE:
        follow.append(FollowUp("u", "Undo rollback", "rollback-undo", record.vm))
    if record.operation == "stop" and record.state is TaskState.FAILED:
        follow.append(FollowUp("f", "Force stop", "force-stop", record.vm))
    if record.operation in STARTS_THE_VM and record.state in (TaskState.FAILED, TaskState.INCOMPLETE):
        follow.append(FollowUp("l", "Diagnose", "log", record.vm))
    return follow
