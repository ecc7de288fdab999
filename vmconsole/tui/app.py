"""The interactive console: ``VmConsoleApp(config)``.

How it is put together (see ``/work/shared/design.md``):

* state: a self-rescheduling thread worker reads a ``ClusterState`` (``Services.state()``, or the
  injected ``state_source``) and the main screen diffs it into its table by row key;
* actions: one entry point, ``perform(action, vm)``, used by keys, the command palette and the ``:``
  line alike; it checks read-only mode, opens the action's screen or confirmation, then
  ``start_task`` plans and runs the core task in a thread worker and shows its progress;
* errors: every worker's failure comes back through ``on_worker_state_changed`` and is shown by
  ``show_error`` (message, field, hint), the one error path of the console;
* libvirt lifecycle events (real mode only): a daemon thread watches this host's domains and each
  event posts a ``LifecycleEvent`` that nudges ``refresh_now`` (at most once per ``NUDGE_EVERY``);
  when libvirt cannot be watched the console just keeps polling.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, TypeVar, cast

from rich.text import Text
from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.css.query import NoMatches
from textual.signal import Signal
from textual.timer import Timer
from textual.worker import Worker, WorkerState, get_current_worker

from vmconsole.config import Config
from vmconsole.core import placement, snapshots, vms
from vmconsole.core.rights import read_only_reason
from vmconsole.core.services import Services
from vmconsole.core.snapshots import PurgePlan, RollbackPlan
from vmconsole.core.tasks import ProgressEvent, Task, TaskResult
from vmconsole.core.vms import UpdatePlan
from vmconsole.domain.errors import Cancelled, VmConsoleError
from vmconsole.domain.model import ClusterState, NodeState, NodeStatus, VmState, VmStatus
from vmconsole.tui import ops, text
from vmconsole.tui.actions import BY_NAME, ActionSpec
from vmconsole.tui.messages import LifecycleEvent, TaskEvent, TaskPlanned
from vmconsole.tui.provider import VmCommandProvider
from vmconsole.tui.screens.confirm import ConfirmModal
from vmconsole.tui.screens.help import HelpScreen, KeyHelp
from vmconsole.tui.screens.main import MainScreen
from vmconsole.tui.screens.progress import TaskScreen
from vmconsole.tui.screens.tasks import TaskListScreen
from vmconsole.tui.task_record import FollowUp, TaskRecord, TaskState

T = TypeVar("T")
MAX_INTERVAL = 30.0  # the refresh backoff never waits longer than this
NUDGE_EVERY = 0.5  # libvirt events nudge the refresh at most this often (seconds)
logger = logging.getLogger(__name__)
Planner = Callable[[Services], Task]


def abandonable(work: Callable[[], T]) -> T:
    """Run ``work`` in a daemon thread and wait for it, unless the worker is cancelled first.

    Thread workers do not stop by themselves (textual #3966): a read stuck on a sick cluster would
    hold the executor, and so the console's exit, until the backend's timeout. Here the worker
    returns as soon as it is cancelled (the app quits) and the daemon thread is abandoned.
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
        self.auto_read = auto_refresh
        self.interval = max(config.console.refresh_interval, 0.5)
        # refresh state
        self.state: ClusterState | None = None
        self.last_ok: datetime | None = None
        self.read_error: str | None = None
        self.last_read_seconds = 0.0
        self.failures_in_a_row = 0
        self.next_delay = self.interval
        self._refresh_timer: Timer | None = None
        self._reading = False
        self._nudge = False
        # tasks
        self.tasks: list[TaskRecord] = []
        self._records: dict[int, TaskRecord] = {}
        self._calls: dict[str, _Call] = {}
        self._call_ids = 0
        self._quitting = False
        self.state_signal: Signal[ClusterState] = Signal(self, "state")
        # libvirt lifecycle events
        self._events_stop = threading.Event()
        self._events_thread: threading.Thread | None = None
        self._nudge_timer: Timer | None = None
        self._last_event_nudge = 0.0
        self.lifecycle_events = 0  # events received (shown nowhere; for tests and debugging)
        self.lifecycle_problem: str | None = None  # why the events are not watched, if they are not

    # ------------------------------------------------------------------------------------ basics
    def now(self) -> datetime:
        return self._clock()

    @property
    def services(self) -> Services:
        """The service layer; refused when the console runs on an injected state (tests, demos)."""
        if self._services is None:
            if self._state_source is not None:
                raise VmConsoleError("this console shows an injected state and has no cluster connection")
            self._services = Services(self.config)
        return self._services

    def get_default_screen(self) -> MainScreen:
        return MainScreen()

    def on_mount(self) -> None:
        if self._keymap:
            self.set_keymap(self._keymap)
        self.set_interval(1.0, self._tick)
        self.refresh_now()
        if self._watch_events:
            self._start_lifecycle_watch()

    def on_unmount(self) -> None:
        self._events_stop.set()
        if self._services is not None and self._own_services:
            self._services.close()

    def _main_screen(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    # ------------------------------------------------------------------------------------ refresh
    def _read(self) -> ClusterState:
        if self._state_source is not None:
            return self._state_source()
        return self.services.state()

    def refresh_now(self) -> None:
        """Read the cluster now (or right after the read in flight): never two reads at once."""
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        if self._reading:
            self._nudge = True
            return
        self._reading = True
        self._refresh_worker()

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False, description="read the cluster state")
    def _refresh_worker(self) -> ClusterState:
        """Read the state; the result (or the error) comes back through ``on_worker_state_changed``."""
        started = time.monotonic()
        try:
            return abandonable(self._read)
        finally:
            self.last_read_seconds = time.monotonic() - started

    def _schedule_refresh(self) -> None:
        delay = self.interval + 2 * self.last_read_seconds
        if self.failures_in_a_row:
            delay = max(delay, self.interval * 2 ** min(self.failures_in_a_row, 4))
        self.next_delay = min(delay, max(MAX_INTERVAL, self.interval))
        if self._nudge:
            self._nudge = False
            self.refresh_now()
        elif self.auto_read:
            self._refresh_timer = self.set_timer(self.next_delay, self.refresh_now, name="refresh")

    def _state_read(self, state: ClusterState) -> None:
        self.state = state
        self.last_ok = self.now()
        self.read_error = None
        self.failures_in_a_row = 0
        main = self._main_screen()
        if main is not None:
            main.show_state(state, self.now())
        self.state_signal.publish(state)
        self._tick()

    def _state_failed(self, error: BaseException) -> None:
        self.failures_in_a_row += 1
        self.read_error = text.safe(
            error.message if isinstance(error, VmConsoleError) else f"{type(error).__name__}: {error}"
        )
        self._tick()

    @property
    def stale_reason(self) -> str | None:
        if self.read_error is not None:
            return self.read_error
        if self.state is not None and self.state.problems:
            return "; ".join(self.state.problems)
        return None

    def _tick(self) -> None:
        main = self._main_screen()
        if main is not None:
            try:
                main.show_refresh(self.last_ok, self.now(), self.stale_reason)
                main.show_tasks(sum(1 for r in self.tasks if r.active))
            except NoMatches:
                pass  # not composed yet: its on_mount asks again

    # ------------------------------------------------------------------------------------ libvirt events
    def _start_lifecycle_watch(self) -> None:
        """Watch this host's libvirt domain events in a daemon thread; each one nudges the refresh.

        Not a Textual worker: the watch blocks in libvirt's event loop for the console's whole life
        (it wakes up every second to see ``_events_stop``, set on unmount), and it must never hold
        the exit. When libvirt cannot be watched (no daemon, no rights) the console keeps polling.
        """
        stop = self._events_stop
        uri = self.config.libvirt.uri

        def on_event(domain: str, event: str) -> None:
            # post_message is thread-safe and, unlike call_from_thread, never blocks this thread:
            # libvirt's loop must keep turning (its keepalives) even while the UI is suspended
            # (``virsh console``) or busy.
            if stop.is_set():
                return
            try:
                self.post_message(LifecycleEvent(domain, event))
            except RuntimeError:  # the app's loop is gone
                stop.set()

        def watch() -> None:
            try:
                ops.watch_lifecycle(uri, on_event, stop)
            except Exception as exc:  # no libvirt here: polling alone is fine
                self.lifecycle_problem = f"{type(exc).__name__}: {exc}"
                logger.info("libvirt lifecycle events not watched (%s): the console polls", self.lifecycle_problem)

        self._events_thread = threading.Thread(target=watch, name="vmconsole-libvirt-events", daemon=True)
        self._events_thread.start()

    def on_lifecycle_event(self, message: LifecycleEvent) -> None:
        """A domain started, stopped, migrated...: read the cluster soon, at most once per ``NUDGE_EVERY``."""
        self.lifecycle_events += 1
        if self._nudge_timer is not None:
            return  # a nudge is already due: it reads the state this event changed too
        wait = self._last_event_nudge + NUDGE_EVERY - time.monotonic()
        if wait <= 0:
            self._event_nudge()
        else:
            self._nudge_timer = self.set_timer(wait, self._event_nudge, name="libvirt-nudge")

    def _event_nudge(self) -> None:
        self._nudge_timer = None
        self._last_event_nudge = time.monotonic()
        self.refresh_now()

    # ------------------------------------------------------------------------------------ workers
    def call_in_thread(
        self,
        work: Callable[[], Any],
        on_result: Callable[[Any], object],
        description: str,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run a blocking service call in a thread worker; the result comes back on the UI thread."""
        self._call_ids += 1
        name = f"call:{self._call_ids}"
        self._calls[name] = _Call(on_result, on_error)
        self.run_worker(
            partial(abandonable, work),
            name=name,
            group="call",
            thread=True,
            exit_on_error=False,
            description=description,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        state = event.state
        if worker.group == "refresh":
            if state is WorkerState.SUCCESS:
                self._reading = False
                self._state_read(cast(ClusterState, worker.result))
                self._schedule_refresh()
            elif state is WorkerState.ERROR:
                self._reading = False
                self._state_failed(worker.error or RuntimeError("unknown error"))
                self._schedule_refresh()
            elif state is WorkerState.CANCELLED:
                self._reading = False
        elif worker.group == "task" and state in (WorkerState.SUCCESS, WorkerState.ERROR):
            record = self._records.get(int(worker.name.split(":", 1)[1]))
            if record is not None:
                self._task_finished(record, worker.result if state is WorkerState.SUCCESS else None, worker.error)
        elif worker.group == "call" and state in (WorkerState.SUCCESS, WorkerState.ERROR):
            call = self._calls.pop(worker.name, None)
            if call is None:
                return
            if state is WorkerState.SUCCESS:
                call.on_result(worker.result)
            else:
                error = worker.error or RuntimeError("unknown error")
                if call.on_error is not None:
                    call.on_error(error)
                self.show_error(error)

    def show_error(self, error: BaseException, title: str | None = None) -> None:
        """The console's one error path: message, the field at fault and a hint, shown literally."""
        if isinstance(error, VmConsoleError):
            lines = [error.message]
            if error.field:
                lines.append(f"field: {error.field}")
            if error.hint:
                lines.append(f"hint: {error.hint}")
            heading = title or ("Cancelled" if isinstance(error, Cancelled) else type(error).__name__)
        else:
            lines = [f"{type(error).__name__}: {error}"]
            heading = title or "Unexpected error"
            self.log.error(repr(error))
        message = "\n".join(text.safe(line) for line in lines)
        self.notify(message, title=text.safe(heading), severity="error", timeout=15, markup=False)

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
        record = TaskRecord(title, vm, self.now(), on_finish=on_finish)
        self.tasks.append(record)
        self._records[record.record_id] = record
        self.run_worker(
            partial(self._run_task, record, planner),
            name=f"task:{record.record_id}",
            group="task",
            thread=True,
            exit_on_error=False,
            description=title,
        )
        self._tick()
        if show:
            self.show_task(record)
        return record

    def _run_task(self, record: TaskRecord, planner: Planner) -> TaskResult:
        services = self.services
        task = planner(services)
        self.post_message(
            TaskPlanned(record.record_id, task.operation, tuple(s.name for s in task.steps), task.description)
        )

        def listener(event: ProgressEvent) -> None:
            self.post_message(TaskEvent(record.record_id, event))

        return services.run(task, record.cancel, listener=listener)

    def on_task_planned(self, message: TaskPlanned) -> None:
        record = self._records.get(message.record_id)
        if record is not None:
            record.operation = message.operation
            record.steps = message.steps
            record.add_log(
                self.now(),
                f"planned: {message.description or message.operation} "
                f"({len(message.steps)} step{'s' if len(message.steps) != 1 else ''})",
            )

    def on_task_event(self, message: TaskEvent) -> None:
        record = self._records.get(message.record_id)
        if record is not None:
            record.apply(message.event, self.now())

    def _task_finished(self, record: TaskRecord, result: Any, error: BaseException | None) -> None:
        now = self.now()
        if isinstance(result, TaskResult):
            record.finish_ok(result, now)
            self.notify(text.safe(f"{record.title}: {record.message}"), title="Done", markup=False)
        else:
            failure = error if isinstance(error, VmConsoleError) else VmConsoleError(f"{type(error).__name__}: {error}")
            record.finish_error(failure, now, cancelled=isinstance(error, Cancelled))
            outcome = "cancelled" if record.state is TaskState.CANCELLED else "failed"
            self.show_error(failure, title=f"{record.title}: {outcome}")
        record.follow_ups = self._follow_ups(record)
        if record.on_finish is not None:
            record.on_finish(record)
        self.refresh_now()
        self._tick()
        if self._quitting and not any(r.active for r in self.tasks):
            self.exit(0)

    def _follow_ups(self, record: TaskRecord) -> list[FollowUp]:
        """What to offer next: undo after a rollback, force after a stop that did not finish."""
        follow: list[FollowUp] = []
        if record.operation == "snapshot-rollback" and record.state is TaskState.DONE:
            follow.append(FollowUp("u", "Undo rollback", "rollback-undo", record.vm))
        if record.operation == "stop" and record.state is TaskState.FAILED:
            follow.append(FollowUp("f", "Force stop", "force-stop", record.vm))
        return follow

    def show_task(self, record: TaskRecord) -> None:
        self.push_screen(TaskScreen(record))

    # ------------------------------------------------------------------------------------ gating
    def disabled_reason(self, spec: ActionSpec | None) -> str | None:
        if spec is not None and spec.mutating and self.read_only:
            return self.read_only_reason or "read-only mode"
        return None

    def notify_disabled(self, spec: ActionSpec, reason: str) -> None:
        self.notify(
            text.safe(f"{spec.label} is disabled: {reason}"), title="Read-only", severity="warning", markup=False
        )

    def _vm(self, name: str | None) -> VmState | None:
        return self.state.vm(name) if self.state is not None and name else None

    # ------------------------------------------------------------------------------------ perform
    def perform(
        self, action: str, vm: str | None = None, *, snapshot: str | None = None, node: str | None = None
    ) -> None:
        """Run one action by name (keys, palette and ``:`` all come here).

        ``node`` is the node of a node action (standby, online), or the target of a move.
        """
        spec = BY_NAME.get(action)
        if spec is None:
            self.notify(text.safe(f"unknown action {action!r}"), severity="error", markup=False)
            return
        reason = self.disabled_reason(spec)
        if reason is not None:
            self.notify_disabled(spec, reason)
            return
        handler = getattr(self, f"_do_{spec.name.replace('-', '_')}")
        if spec.needs_node:
            node_state = self.state.node(node) if self.state is not None and node else None
            if node is None:
                self.notify("No node selected (tab to the cluster pane).", severity="warning", markup=False)
            elif node_state is None:
                self.notify(
                    text.safe(f"No node named {node!r} in the last cluster state."), severity="error", markup=False
                )
            else:
                handler(node_state)
            return
        if not spec.needs_vm:
            handler()
            return
        if vm is None:
            self.notify("No VM selected.", severity="warning", markup=False)
            return
        state = self._vm(vm)
        if state is None:
            self.notify(text.safe(f"No VM named {vm!r} in the last cluster state."), severity="error", markup=False)
            return
        if spec.name.startswith("snapshot") or spec.name == "rollback":
            handler(state, snapshot)
        elif spec.name == "move":
            handler(state, node)
        else:
            handler(state)

    @staticmethod
    def _where(vm: VmState) -> Text:
        """``web1 (Started on hv1)``: every confirmation names the VM and its node."""
        out = text.plain(vm.name, "bold")
        out.append(" (")
        out.append(text.status_text(vm))
        if vm.node:
            out.append(" on ")
            out.append(text.plain(vm.node, "bold"))
        out.append(")")
        return out

    def confirm(
        self,
        title: str,
        body: Text,
        then: Callable[[], object],
        *,
        label: str = "Confirm",
        typed: str | None = None,
        typed_what: str = "the VM name",
        danger: bool = True,
    ) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.push_screen(
            ConfirmModal(title, body, confirm_label=label, typed=typed, typed_what=typed_what, danger=danger), answered
        )

    # --- simple VM actions
    def _do_detail(self, vm: VmState) -> None:
        from vmconsole.tui.screens.vm_detail import VmDetailScreen

        self.push_screen(VmDetailScreen(vm.name))

    def _do_start(self, vm: VmState) -> None:
        name = vm.name
        self.start_task(f"start {name}", name, lambda s: vms.plan_start(s, name))

    def _do_stop(self, vm: VmState, *, force: bool = False) -> None:
        name = vm.name
        body = Text.assemble(
            "Stop ",
            self._where(vm),
            "?\n\n",
            "The guest is shut down; its services are unavailable until it is started again.",
        )
        if force:
            body.append(
                "\nIf it does not stop in time it is forced off (like pulling the plug): unsaved data in "
                "the guest is lost.",
                style="bold red",
            )
        self.confirm(
            f"{'Force stop' if force else 'Stop'} {text.safe(name)}",
            body,
            lambda: self.start_task(
                f"{'force ' if force else ''}stop {name}", name, lambda s: vms.plan_stop(s, name, force=force)
            ),
            label="Force stop" if force else "Stop",
        )

    def _do_force_stop(self, vm: VmState) -> None:
        self._do_stop(vm, force=True)

    def _do_enable(self, vm: VmState) -> None:
        name = vm.name
        self.start_task(f"enable {name}", name, lambda s: vms.plan_enable(s, name))

    def _do_disable(self, vm: VmState) -> None:
        name = vm.name
        body = Text.assemble(
            "Disable ",
            self._where(vm),
            "?\n\n",
            "Its Pacemaker primitive is removed: the cluster stops it"
            " and will no longer start, watch or move it.\nIts disks, snapshots and"
            " configuration stay; enable it again with e.",
        )
        self.confirm(
            f"Disable {text.safe(name)}",
            body,
            lambda: self.start_task(f"disable {name}", name, lambda s: vms.plan_disable(s, name)),
            label="Disable",
        )

    def _do_cleanup(self, vm: VmState) -> None:
        name = vm.name
        self.start_task(f"cleanup {name}", name, lambda s: vms.plan_cleanup(s, name))

    def _do_remove(self, vm: VmState) -> None:
        name = vm.name
        body = Text.assemble("Remove ", self._where(vm), " for good?\n\n")
        if vm.enabled:
            body.append("It is stopped and removed from the cluster, then ")
        body.append(
            f"its {len(vm.disks)} disk{'s' if len(vm.disks) != 1 else ''} ({text.size(vm.total_size)}), "
            f"its {len(vm.snapshots)} snapshot{'s' if len(vm.snapshots) != 1 else ''} and its configuration"
            " are deleted.\n"
        )
        body.append("This cannot be undone.", style="bold red")
        self.confirm(
            f"Remove {text.safe(name)}",
            body,
            lambda: self.start_task(f"remove {name}", name, lambda s: vms.plan_remove(s, name)),
            label="Remove",
            typed=name,
        )

    def _do_console(self, vm: VmState) -> None:
        name = vm.name
        self.call_in_thread(
            lambda: vms.console_argv(self.services, name),
            partial(self.attach_console, name),
            f"find the console of {name}",
        )

    def attach_console(self, vm: str, argv: list[str]) -> None:
        """Hand the terminal to ``virsh console`` (an argv, never a shell), then take it back."""
        try:
            with self.suspend():
                print(f"Attaching to the console of {text.safe(vm)}; leave with ctrl+]", flush=True)
                subprocess.run(argv, check=False)
        except Exception as exc:  # SuspendNotSupported, OSError: reported, never fatal
            self.show_error(VmConsoleError(f"cannot attach to the console: {exc}", hint=" ".join(argv)))
        self.refresh()

    def _do_mark(self, vm: VmState) -> None:
        main = self._main_screen()
        if main is not None:
            main.table.move_to(vm.name)
            main.toggle_mark()

    # --- placement: move a VM, drain or bring back a node
    def _do_move(self, vm: VmState, node: str | None = None) -> None:
        from vmconsole.tui.screens.node_pick import NodePickScreen

        name = vm.name
        if vm.status is not VmStatus.STARTED:
            self.notify(
                text.safe(f"{name} is {vm.status.value}: only a Started VM can be moved."),
                title="Move",
                severity="warning",
                markup=False,
            )
            return
        state = self.state
        candidates = [
            n
            for n in (state.nodes if state is not None else ())
            if n.kind == "member" and n.status is NodeStatus.ONLINE and n.name != vm.node
        ]
        if not candidates:
            self.notify(
                text.safe(f"No other online node to move {name} to."), title="Move", severity="warning", markup=False
            )
            return
        if node is not None:
            if not any(n.name == node for n in candidates):
                choices = ", ".join(n.name for n in candidates)
                self.notify(
                    text.safe(f"{node} is not another online node for {name}; choose one of: {choices}"),
                    title="Move",
                    severity="warning",
                    markup=False,
                )
                return
            self._confirm_move(vm, node)
            return

        def picked(target: str | None) -> None:
            if target is not None:
                self._confirm_move(vm, target)

        self.push_screen(NodePickScreen(vm, candidates, state.vms if state is not None else ()), picked)

    def _confirm_move(self, vm: VmState, target: str) -> None:
        name, source = vm.name, vm.node
        body = Text.assemble("Move ", self._where(vm), "\n  from ", text.plain(source or "-", "bold"))
        body.append("\n  to   ")
        body.append(text.plain(target, "bold"))
        body.append("?\n\n")
        if vm.settings.get("live_migration"):
            body.append("Live migration is on: the VM keeps running while it moves.")
        else:
            body.append(
                "Live migration is off: the VM is stopped on its node and started again on the new one;"
                " its services are down meanwhile.",
                style="yellow",
            )
        if vm.settings.get("preferred_host"):
            body.append("\nIts preferred host becomes ")
            body.append(text.plain(target, "bold"))
            body.append(".")
        self.confirm(
            f"Move {text.safe(name)}",
            body,
            lambda: self.start_task(
                f"move {name} {source or '-'} → {target}", name, lambda s: placement.plan_move(s, name, target)
            ),
            label="Move",
            danger=False,
        )

    def _hosted(self, node: str) -> list[VmState]:
        return sorted((vm for vm in self.state.vms if vm.node == node), key=lambda vm: vm.name) if self.state else []

    def _do_standby(self, node: NodeState) -> None:
        name = node.name
        if node.status is NodeStatus.STANDBY:
            self.notify(text.safe(f"Node {name} is already in standby."), severity="warning", markup=False)
            return
        hosted = self._hosted(name)
        body = Text.assemble("Put node ", text.plain(name, "bold"), " in standby (drain it)?\n\n")
        if hosted:
            count = len(hosted)
            body.append(
                f"Pacemaker moves the {count} VM{'s' if count != 1 else ''} it hosts to other nodes"
                " (live-migrated where allowed, otherwise stopped and started again):\n"
            )
            for vm in hosted:
                body.append("  • ")
                body.append(self._where(vm))
                body.append("\n")
        else:
            body.append("It hosts no VM now.\n")
        body.append(
            "\nA VM that can run nowhere else is stopped. The node takes no VM until it is brought online again (O)."
        )
        self.confirm(
            f"Standby {text.safe(name)}",
            body,
            lambda: self.start_task(
                f"standby {name}",
                None,
                lambda s: placement.plan_node_standby(s, name, True),
                on_finish=self._report_moves,
            ),
            label="Standby (drain)",
            typed=name,
            typed_what="the node name",
        )

    def _do_online(self, node: NodeState) -> None:
        name = node.name
        if node.status is NodeStatus.ONLINE:
            self.notify(text.safe(f"Node {name} is already online."), severity="warning", markup=False)
            return
        body = Text.assemble(
            "Bring node ",
            text.plain(name, "bold"),
            " (",
            text.plain(node.status.value),
            ") back online?\n\n",
            "It can host VMs again: Pacemaker may move VMs to it (preferred hosts, location constraints).",
        )
        self.confirm(
            f"Online {text.safe(name)}",
            body,
            lambda: self.start_task(
                f"online {name}",
                None,
                lambda s: placement.plan_node_standby(s, name, False),
                on_finish=self._report_moves,
            ),
            label="Online",
            danger=False,
        )

    def _report_moves(self, record: TaskRecord) -> None:
        """After a node standby/online: where each VM went, in the task's log and a notification."""
        if record.state is not TaskState.DONE or record.result is None:
            return
        moves = record.result.data.get("moves") or {}
        now = self.now()
        if not moves:
            record.add_log(now, "no VM moved")
            return
        lines = [
            f"{vm}: {where.get('from') or '-'} → {where.get('to') or 'stopped'}"
            for vm, where in sorted(moves.items())
            if isinstance(where, Mapping)
        ]
        record.add_log(now, "where each VM went:")
        for line in lines:
            record.add_log(now, f"  {line}")
        self.notify(
            "\n".join(text.safe(line) for line in lines),
            title=text.safe(f"{record.title}: where the VMs went"),
            timeout=15,
            markup=False,
        )

    # --- update in place
    def _do_update(self, vm: VmState) -> None:
        from vmconsole.tui.screens.update import UpdateScreen

        def planned(plan: UpdatePlan | None) -> None:
            if plan is not None:
                self.show_update_diff(plan)

        self.push_screen(UpdateScreen(vm, self.state.nodes if self.state is not None else ()), planned)

    def show_update_diff(self, plan: UpdatePlan) -> None:
        from vmconsole.tui.screens.update_diff import UpdateDiffScreen

        def confirmed(yes: bool | None) -> None:
            if yes:
                vm = plan.vm
                self.start_task(f"update {vm}", vm, lambda s: vms.plan_update(s, plan), on_finish=self._reread_config)

        self.push_screen(UpdateDiffScreen(plan), confirmed)

    def _reread_config(self, record: TaskRecord) -> None:
        """After an update, an open XML view of the VM shows the new definition."""
        from vmconsole.tui.screens.config_view import ConfigScreen

        vm = record.vm
        views = [s for s in self.screen_stack if isinstance(s, ConfigScreen) and s.config.vm == vm]
        if record.state is not TaskState.DONE or vm is None or not views:
            return

        def show(config: ops.DomainConfig) -> None:
            for view in views:
                view.show_config(config)

        self.call_in_thread(lambda: ops.read_domain_config(self.services, vm), show, f"read the XML of {vm}")

    # --- snapshots
    def _do_snapshot(self, vm: VmState, name: str | None = None) -> None:
        from vmconsole.tui.screens.snapshot_create import SnapshotCreateScreen

        vm_name = vm.name

        def chosen(choice: tuple[str, bool] | None) -> None:
            if choice is None:
                return
            snap, freeze = choice
            self.start_task(
                f"snapshot {vm_name} {snap}",
                vm_name,
                lambda s: snapshots.plan_snapshot_create(s, vm_name, snap, freeze=freeze),
            )

        self.push_screen(SnapshotCreateScreen(vm, self.now(), name), chosen)

    def _find_snapshot(self, vm: VmState, snapshot: str | None) -> str | None:
        if snapshot is None:
            self.notify("Select a snapshot in the snapshot pane (tab) first.", severity="warning", markup=False)
            return None
        if not any(s.name == snapshot for s in vm.snapshots):
            self.notify(text.safe(f"{vm.name} has no snapshot {snapshot!r}"), severity="error", markup=False)
            return None
        return snapshot

    def _do_snapshot_remove(self, vm: VmState, snapshot: str | None) -> None:
        name = vm.name
        snap_name = self._find_snapshot(vm, snapshot)
        if snap_name is None:
            return
        snap = next(s for s in vm.snapshots if s.name == snap_name)
        body = Text.assemble(
            "Remove snapshot ",
            text.plain(snap_name, "bold"),
            " of ",
            self._where(vm),
            "?\n\n",
            f"Taken {text.stamp(snap.created)} ({text.age(snap.created, self.now())} ago). ",
            "You will no longer be able to roll back to it; the VM itself is not touched.",
        )
        self.confirm(
            f"Remove snapshot {text.safe(snap_name)}",
            body,
            lambda: self.start_task(
                f"remove snapshot {name}@{snap_name}",
                name,
                lambda s: snapshots.plan_snapshot_remove(s, name, snap_name),
            ),
            label="Remove snapshot",
        )

    def _do_snapshot_protect(self, vm: VmState, snapshot: str | None) -> None:
        name = vm.name
        snap_name = self._find_snapshot(vm, snapshot)
        if snap_name is None:
            return
        protect = not next(s for s in vm.snapshots if s.name == snap_name).protected
        verb = "protect" if protect else "unprotect"
        self.start_task(
            f"{verb} snapshot {name}@{snap_name}",
            name,
            lambda s: snapshots.plan_snapshot_protect(s, name, snap_name, protect),
            show=False,
        )

    def _do_rollback(self, vm: VmState, snapshot: str | None = None) -> None:
        from vmconsole.tui.screens.rollback_pick import RollbackPickScreen

        if not vm.snapshots:
            self.notify(text.safe(f"{vm.name} has no snapshot to roll back to."), severity="warning", markup=False)
            return
        name = vm.name

        def picked(snap: str | None) -> None:
            if snap is not None:
                self.call_in_thread(
                    lambda: snapshots.rollback_plan(self.services, name, snap, safety=True),
                    self.show_rollback_impact,
                    f"plan the rollback of {name}",
                )

        self.push_screen(RollbackPickScreen(vm, self.now(), snapshot), picked)

    def show_rollback_impact(self, plan: RollbackPlan) -> None:
        from vmconsole.tui.screens.rollback import RollbackImpactScreen

        def decided(safety: bool | None) -> None:
            if safety is None:
                return
            vm, snap = plan.vm, plan.snapshot.name
            keep_plan = safety == (plan.safety_snapshot is not None)

            def planner(s: Services) -> Task:
                chosen = plan if keep_plan else snapshots.rollback_plan(s, vm, snap, safety=safety)
                return snapshots.plan_rollback(s, chosen)

            self.start_task(f"rollback {vm} to {snap}", vm, planner)

        self.push_screen(RollbackImpactScreen(plan, self.now()), decided)

    def _do_rollback_undo(self, vm: VmState) -> None:
        name = vm.name
        body = Text.assemble(
            "Undo the last rollback of ",
            self._where(vm),
            "?\n\n",
            "The VM goes back to the safety snapshot taken just before the rollback;"
            " what it wrote since the rollback is discarded.",
        )
        self.confirm(
            f"Undo rollback of {text.safe(name)}",
            body,
            lambda: self.start_task(f"undo rollback {name}", name, lambda s: snapshots.plan_rollback_undo(s, name)),
            label="Undo rollback",
        )

    def _do_purge(self, vm: VmState) -> None:
        from vmconsole.tui.screens.purge import PurgeScreen

        name = vm.name

        def confirmed(plan: PurgePlan | None) -> None:
            if plan is not None:
                self.start_task(
                    f"purge snapshots of {name} ({len(plan.remove)})", name, lambda s: snapshots.plan_purge(s, plan)
                )

        self.push_screen(PurgeScreen(vm, self.now()), confirmed)

    def _do_bulk_snapshot(self) -> None:
        main = self._main_screen()
        marked = sorted(main.table.marked) if main else []
        if not marked:
            current = main.table.current_vm if main else None
            if current is None:
                self.notify("Mark VMs with space first.", severity="warning", markup=False)
                return
            marked = [current]
        count = str(len(marked))
        body = Text.assemble(f"Take one snapshot of each of these {count} VMs, at the same time:\n\n")
        for name in marked:
            state = self._vm(name)
            body.append("  • ")
            body.append(self._where(state) if state else text.plain(name))
            body.append("\n")
        body.append("\nRunning VMs are frozen (fsfreeze) for an instant.")

        def run() -> None:
            names = list(marked)
            self.start_task(
                f"bulk snapshot of {len(names)} VMs",
                None,
                lambda s: snapshots.plan_bulk_snapshot(s, names),
                on_finish=lambda r: main.table.clear_marks() if main and r.state is TaskState.DONE else None,
            )

        self.confirm(
            f"Snapshot {count} VMs",
            body,
            run,
            label="Snapshot all",
            typed=count,
            typed_what="the number of VMs",
            danger=False,
        )

    # --- create and clone
    def _do_create(self) -> None:
        from vmconsole.tui.screens.create import CreateScreen

        def chosen(spec: vms.CreateSpec | None) -> None:
            if spec is not None:
                self.start_task(f"create {spec.name}", spec.name, lambda s: vms.plan_create(s, spec))

        self.push_screen(CreateScreen(), chosen)

    def _do_clone(self, vm: VmState) -> None:
        from vmconsole.tui.screens.clone import CloneScreen

        def chosen(spec: vms.CloneSpec | None) -> None:
            if spec is not None:
                kind = "linked clone" if spec.linked else "clone"
                self.start_task(f"{kind} {spec.source} → {spec.name}", spec.name, lambda s: vms.plan_clone(s, spec))

        self.push_screen(CloneScreen(vm), chosen)

    # --- views
    def _do_metadata(self, vm: VmState) -> None:
        from vmconsole.tui.screens.metadata import MetadataScreen

        self.push_screen(MetadataScreen(vm.name))

    def _do_config(self, vm: VmState) -> None:
        from vmconsole.tui.screens.config_view import ConfigScreen

        name = vm.name
        self.call_in_thread(
            lambda: ops.read_domain_config(self.services, name),
            lambda config: self.push_screen(ConfigScreen(config)),
            f"read the XML of {name}",
        )

    def _do_tasks(self) -> None:
        self.push_screen(TaskListScreen())

    def _do_history(self) -> None:
        from vmconsole.tui.screens.history import HistoryScreen

        self.call_in_thread(
            lambda: ops.read_history(self.services),
            lambda records: self.push_screen(HistoryScreen(records)),
            "read the history",
        )

    def _do_recover(self, *, quiet: bool = False) -> None:
        from vmconsole.core import recovery
        from vmconsole.tui.screens.recovery import RecoveryScreen

        def found(entries: list[dict[str, Any]]) -> None:
            if entries:
                self.notify(
                    f"{len(entries)} incomplete task(s) from an earlier vmconsole need attention.",
                    title="Recovery",
                    severity="warning",
                    markup=False,
                )
                self.push_screen(RecoveryScreen(entries))
            elif not quiet:
                self.notify("No incomplete task.", markup=False)

        self.call_in_thread(lambda: recovery.incomplete_tasks(self.services), found, "look for incomplete tasks")

    def _do_refresh(self) -> None:
        self.refresh_now()

    # ------------------------------------------------------------------------------------ app keys
    def action_help(self) -> None:
        screen = self.screen
        widget = screen.focused
        help_text: str | None = None
        title = type(screen).__name__
        node: Any = widget
        while node is not None and help_text is None:
            help_text = getattr(node, "HELP", None)
            if help_text:
                title = type(node).__name__
            node = node.parent
        keys: list[KeyHelp] = []
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or (binding.id or key) in seen:
                continue
            seen.add(binding.id or key)
            reason = None
            if not active.enabled:
                from textual.actions import parse as parse_action

                _ns, _name, params = parse_action(binding.action)
                spec = BY_NAME.get(str(params[0])) if params else None
                reason = self.disabled_reason(spec)
            keys.append(KeyHelp(self.get_key_display(binding), binding.description, active.enabled, reason))
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
            self._quitting = True
            for record in running:
                record.cancel.set()
            self.notify("Cancelling running tasks; the console closes when they have undone their steps.", markup=False)

        self.confirm("Quit with running tasks?", body, cancel_all, label="Cancel tasks and quit")

    def on_ready(self) -> None:
        if self._check_recovery and not self.read_only:
            self._do_recover(quiet=True)
