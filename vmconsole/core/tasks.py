"""Every mutating operation is a task: a named plan of steps with progress, cancel and compensation.

Around each task: a cluster-wide lock per VM (a RADOS lock lease that frees itself when its holder
dies), a journal entry in RADOS recording intent and completed steps (so that ``recover`` can finish
or undo a task whose process was killed), and an append-only audit history.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from vmconsole.backends.rbd import RbdSession
from vmconsole.domain import naming
from vmconsole.domain.errors import Cancelled, LockedError, OperationFailed, VmConsoleError

LOCK_NAME = "vmconsole"
LEASE_SECONDS = 30
RENEW_EVERY = 10.0


def who() -> str:
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{user}@{socket.gethostname()}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    name: str
    run: Callable[[StepContext], None]
    undo: Callable[[StepContext], None] | None = None
    weight: float = 1.0  # share of the task's percent


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
        self.runner.journal_update(self.task)

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
        self.holder = who()
        self._journal_lock = threading.Lock()

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

    # ------------------------------------------------------------------ locks
    def _holder_record(self, task: Task) -> bytes:
        return json.dumps(
            {
                "holder": self.holder,
                "operation": task.operation,
                "task": task.task_id,
                "since": now_iso(),
                "pid": os.getpid(),
            }
        ).encode()

    def lock_holder(self, vm: str) -> dict[str, Any] | None:
        raw = self.session.omap_get(naming.lock_object(vm)).get("holder")
        try:
            return dict(json.loads(raw)) if raw else None
        except ValueError:
            return None

    def acquire(self, vm: str, task: Task) -> None:
        """Take the lock of one VM for ``task``, or raise LockedError saying who holds it."""
        oid = naming.lock_object(vm)
        if not self.session.lock_exclusive(oid, LOCK_NAME, task.task_id, task.operation, LEASE_SECONDS):
            holder = self.lock_holder(vm) or {}
            raise LockedError(
                f"{vm} is locked by {holder.get('holder', 'another vmconsole')}"
                f" ({holder.get('operation', 'an operation')}) since {holder.get('since', '?')}",
                hint="wait for it to finish; a lock of a dead process frees itself within "
                f"{LEASE_SECONDS} s, or `vmconsole lock break {vm}`",
            )
        self.session.omap_set(oid, {"holder": self._holder_record(task)})

    @contextmanager
    def locked(self, task: Task, vms: list[str] | None = None) -> Iterator[None]:
        vms = sorted(set(vms if vms is not None else (task.locks or ([task.vm] if task.vm else []))))
        cookie = task.task_id
        taken: list[str] = []
        try:
            for vm in vms:
                self.acquire(vm, task)
                taken.append(vm)
        except BaseException:
            self._release(taken, cookie)
            raise
        stop = threading.Event()
        keeper = threading.Thread(
            target=self._renew, args=(taken, task, stop), name=f"lock-{task.task_id}", daemon=True
        )
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join(timeout=5)
            self._release(taken, cookie)

    def break_lock(self, vm: str, *, cookie: str | None = None) -> list[str]:
        """Break the lock of ``vm`` (only the holder with ``cookie`` when given); return what was broken."""
        oid = naming.lock_object(vm)
        broken = []
        for locker in self.session.lock_lockers(oid, LOCK_NAME):
            if cookie is not None and locker.get("cookie") != cookie:
                continue
            self.session.break_lock(oid, LOCK_NAME, locker["name"], locker["cookie"])
            broken.append(f"{locker['name']} ({locker.get('description', '')}, task {locker['cookie']})")
        if broken:
            self.session.omap_remove(oid, ["holder"])
        return broken

    def _renew(self, vms: list[str], task: Task, stop: threading.Event) -> None:
        """Renew the lock leases and refresh the journal entry (a heartbeat other hosts can read)."""
        while not stop.wait(RENEW_EVERY):
            for vm in vms:
                # a failed renewal is retried at the next tick: the lease is 3 renewals long
                with contextlib.suppress(VmConsoleError):
                    self.session.lock_exclusive(
                        naming.lock_object(vm), LOCK_NAME, task.task_id, task.operation, LEASE_SECONDS
                    )
            with contextlib.suppress(VmConsoleError):
                self.journal_update(task, heartbeat=True)

    def _release(self, vms: list[str], cookie: str) -> None:
        for vm in vms:
            oid = naming.lock_object(vm)
            try:
                self.session.omap_remove(oid, ["holder"])
                self.session.unlock(oid, LOCK_NAME, cookie)
            except VmConsoleError:
                pass  # the lease expires by itself

    # ------------------------------------------------------------------ journal and history
    def _journal_record(self, task: Task, state: str, done: list[str]) -> bytes:
        return json.dumps(
            {
                "task": task.task_id,
                "operation": task.operation,
                "vm": task.vm,
                "args": task.args,
                "data": task.data,
                "steps": [s.name for s in task.steps],
                "done": done,
                "state": state,
                "holder": self.holder,
                "pid": os.getpid(),
                "started": task.args.get("_started", now_iso()),
                "updated": now_iso(),
            },
            default=str,
        ).encode()

    def journal_update(
        self, task: Task, state: str | None = None, done: list[str] | None = None, *, heartbeat: bool = False
    ) -> None:
        with self._journal_lock:
            if heartbeat and task.args.get("_finished"):
                return  # never resurrect the entry of a task that has ended
            if state is not None:
                task.args["_state"] = state
            if done is not None:
                task.args["_done"] = list(done)
            record = self._journal_record(task, task.args.get("_state", "running"), task.args.get("_done", []))
            self.session.omap_set(naming.JOURNAL_OBJECT, {task.task_id: record})

    def journal_remove(self, task_id: str, task: Task | None = None) -> None:
        with self._journal_lock:
            if task is not None:
                task.args["_finished"] = True
            self.session.omap_remove(naming.JOURNAL_OBJECT, [task_id])

    def journal(self) -> list[dict[str, Any]]:
        entries = []
        for value in self.session.omap_get(naming.JOURNAL_OBJECT).values():
            try:
                entries.append(dict(json.loads(value)))
            except ValueError:
                continue
        return sorted(entries, key=lambda e: str(e.get("started", "")))

    def history_append(self, record: Mapping[str, Any]) -> None:
        stamp = datetime.now(UTC)
        oid = f"{naming.HISTORY_PREFIX}{stamp:%Y-%m}"
        key = f"{stamp.isoformat(timespec='microseconds')}.{record.get('task', '')}"
        # the audit trail must not turn a finished operation into a failure
        with contextlib.suppress(VmConsoleError):
            self.session.omap_set(oid, {key: json.dumps(dict(record), default=str).encode()})

    # ------------------------------------------------------------------ running
    def run(
        self, task: Task, cancel: threading.Event | None = None, *, resume_done: list[str] | None = None
    ) -> TaskResult:
        """Run ``task``; on failure or cancel undo its completed steps in reverse and raise.

        ``resume_done`` names steps already completed by an earlier, killed run (recovery).
        """
        cancel = cancel or threading.Event()
        started = time.monotonic()
        task.args.setdefault("_started", now_iso())
        with self.locked(task):
            done: list[int] = [i for i, s in enumerate(task.steps) if resume_done and s.name in resume_done]
            self.journal_update(task, "running", [task.steps[i].name for i in done])
            self.emit(task, "start", 0, 0.0, message=task.description or task.operation)
            current: int | None = None
            try:
                for index, step in enumerate(task.steps):
                    if index in done:
                        continue
                    if cancel.is_set():
                        raise Cancelled(f"{task.operation} cancelled by the operator")
                    current = index
                    self.emit(task, "step", index, 0.0, message=step.name)
                    step.run(StepContext(self, task, index, cancel))
                    done.append(index)
                    current = None
                    self.journal_update(task, "running", [task.steps[i].name for i in done])
            except BaseException as exc:
                # the failing step may have done part of its work: its undo runs too (undos are
                # written to tolerate "nothing to undo")
                left = self._compensate(task, [*done, current] if current is not None else done, cancel)
                seconds = time.monotonic() - started
                error = exc if isinstance(exc, VmConsoleError) else OperationFailed(f"{task.operation} failed: {exc!r}")
                if isinstance(exc, KeyboardInterrupt):
                    error = Cancelled(f"{task.operation} interrupted")
                try:
                    if left:
                        self.journal_update(task, "needs-recovery", [task.steps[i].name for i in done])
                    else:
                        self.journal_remove(task.task_id, task)
                except VmConsoleError as journal_error:
                    # the cluster is sick: the entry stays as it was, `recover` will show it
                    left.append(f"journal not updated ({journal_error})")
                outcome = "cancelled" if isinstance(error, Cancelled) else "failed"
                message = str(error)
                if left:
                    message += "; could not undo: " + "; ".join(left)
                else:
                    message += " (every completed step was undone)" if done else ""
                self.emit(task, "failed", min(len(done), len(task.steps) - 1), 0.0, message=message)
                self.history_append(self._history(task, outcome, seconds, message))
                if not isinstance(exc, VmConsoleError):
                    traceback.print_exception(exc)
                if left:
                    raise OperationFailed(message, hint=f"`vmconsole recover` lists task {task.task_id}") from exc
                error.message = message
                raise error from exc if error is not exc else None
            seconds = time.monotonic() - started
            self.journal_remove(task.task_id, task)
            message = task.data.get("_summary") or f"{task.operation} done in {seconds:.1f} s"
            self.emit(task, "done", len(task.steps) - 1, 1.0, message=message)
            self.history_append(self._history(task, "ok", seconds, message))
            return TaskResult(
                task.task_id,
                task.operation,
                task.vm,
                True,
                seconds,
                message,
                {k: v for k, v in task.data.items() if not k.startswith("_")},
            )

    def _compensate(self, task: Task, done: list[int], cancel: threading.Event) -> list[str]:
        left: list[str] = []
        for index in reversed(done):
            step = task.steps[index]
            if step.undo is None:
                continue
            self.emit(task, "undo", index, 0.0, message=f"undoing: {step.name}")
            try:
                step.undo(StepContext(self, task, index, threading.Event()))
            except BaseException as exc:  # keep undoing the others
                left.append(f"{step.name} ({exc})")
        return left

    def _history(self, task: Task, outcome: str, seconds: float, message: str) -> dict[str, Any]:
        return {
            "task": task.task_id,
            "operation": task.operation,
            "vm": task.vm,
            "args": {k: v for k, v in task.args.items() if not k.startswith("_")},
            "who": self.holder,
            "started": task.args.get("_started"),
            "finished": now_iso(),
            "seconds": round(seconds, 2),
            "result": outcome,
            "message": message,
        }

    def history(self, months: int = 3) -> list[dict[str, Any]]:
        stamp = datetime.now(UTC)
        records: list[dict[str, Any]] = []
        year, month = stamp.year, stamp.month
        for _ in range(months):
            for value in self.session.omap_get(f"{naming.HISTORY_PREFIX}{year:04d}-{month:02d}").values():
                try:
                    records.append(dict(json.loads(value)))
                except ValueError:
                    continue
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        return sorted(records, key=lambda r: str(r.get("finished", "")))
