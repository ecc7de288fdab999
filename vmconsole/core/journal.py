"""What the cluster records of vmconsole's tasks, in small RADOS objects of the pool: a lock lease per
VM (it frees itself when its holder dies), the journal of running tasks (intent and completed steps,
so that ``recover`` can undo a task whose process was killed), and the append-only audit history.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmconsole.backends.rbd import RbdSession
from vmconsole.domain import naming
from vmconsole.domain.errors import LockedError, VmConsoleError

if TYPE_CHECKING:
    from vmconsole.core.tasks import Task

LOCK_NAME = "vmconsole"
LEASE_SECONDS = 30
RENEW_EVERY = 10.0


NO_LOGIN_UID = 4294967295  # /proc/self/loginuid of a process with no login session


def real_user() -> str:
    """Who runs this, for the audit trail: the login user the kernel recorded, else sudo's caller when
    sudo's own record agrees, else the account of the real uid; never an environment variable alone."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        login_uid = int(Path("/proc/self/loginuid").read_text().strip())
        if login_uid != NO_LOGIN_UID:
            return pwd.getpwuid(login_uid).pw_name
    sudo_user, sudo_uid = os.environ.get("SUDO_USER"), os.environ.get("SUDO_UID")
    if sudo_user and sudo_uid and os.getuid() == 0:
        with contextlib.suppress(KeyError, ValueError):
            if pwd.getpwnam(sudo_user).pw_uid == int(sudo_uid):
                return sudo_user
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid{os.getuid()}"


def who() -> str:
    return f"{real_user()}@{socket.gethostname()}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Journal:
    """The locks, journal entries and history records of the tasks run by ``holder`` (user@host)."""

    def __init__(self, session: RbdSession, holder: str | None = None) -> None:
        self.session = session
        self.holder = holder or who()
        self._journal_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._leases: dict[str, list[str]] = {}  # task id -> lock objects it holds now

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
        self.acquire_object(naming.lock_object(vm), vm, task)

    def acquire_object(self, oid: str, vm: str | None, task: Task) -> None:
        if not self.session.lock_exclusive(oid, LOCK_NAME, task.task_id, task.operation, LEASE_SECONDS):
            holder = (self.lock_holder(vm) if vm else None) or {}
            raise LockedError(
                f"{vm or oid} is locked by {holder.get('holder', 'another vmconsole')}"
                f" ({holder.get('operation', 'an operation')}) since {holder.get('since', '?')}",
                hint="wait for it to finish; a lock of a dead process frees itself within "
                f"{LEASE_SECONDS} s, or `vmconsole lock break {vm}`",
            )
        if vm is not None:
            self.session.omap_set(oid, {"holder": self._holder_record(task)})

    @contextmanager
    def locked(self, task: Task, vms: list[str] | None = None) -> Iterator[None]:
        """The locks of the task's VMs (and, for the whole run, the task's own lease) while the block runs."""
        names = sorted(set(vms if vms is not None else (task.locks or ([task.vm] if task.vm else []))))
        wanted: list[tuple[str, str | None]] = [(naming.lock_object(vm), vm) for vm in names]
        with self._state_lock:
            first = task.task_id not in self._leases
        if first:
            wanted.insert(0, (naming.task_lock_object(task.task_id), None))
        cookie = task.task_id
        taken: list[str] = []
        try:
            for oid, vm in wanted:
                self.acquire_object(oid, vm, task)
                taken.append(oid)
        except BaseException:
            self._release(taken, cookie)
            raise
        with self._state_lock:
            self._leases.setdefault(task.task_id, []).extend(taken)
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
            with self._state_lock:
                held = self._leases.get(task.task_id, [])
                for oid in taken:
                    if oid in held:
                        held.remove(oid)
                if not held:
                    self._leases.pop(task.task_id, None)
            self._release(taken, cookie)

    def check_leases(self, task: Task) -> None:
        """Raise LockedError when another holder took one of the task's locks (our lease ran out while
        this process was stalled): a task never goes on acting without its locks."""
        with self._state_lock:
            held = list(self._leases.get(task.task_id, []))
        for oid in held:
            if not self.session.lock_exclusive(oid, LOCK_NAME, task.task_id, task.operation, LEASE_SECONDS):
                raise LockedError(
                    f"{task.operation} lost its lock {oid} to another holder; it stops here",
                    hint="what it had done is undone; check the VM before trying again",
                )

    def task_alive(self, task_id: str) -> bool:
        """Is the task still running anywhere? Its lease says, on the cluster's own clock: a live task
        renews it every few seconds; the lease of a dead one ran out (within LEASE_SECONDS)."""
        oid = naming.task_lock_object(task_id)
        probe = f"probe-{os.getpid()}-{threading.get_ident()}"
        if not self.session.lock_exclusive(oid, LOCK_NAME, probe, "liveness probe", 1):
            return True
        with contextlib.suppress(VmConsoleError):
            self.session.unlock(oid, LOCK_NAME, probe)
        with contextlib.suppress(VmConsoleError):
            self.session.remove_object(oid)
        return False

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

    def _renew(self, oids: list[str], task: Task, stop: threading.Event) -> None:
        """Renew the leases and refresh the journal entry (a heartbeat people can read)."""
        while not stop.wait(RENEW_EVERY):
            for oid in oids:
                # a failed renewal is retried at the next tick: the lease is 3 renewals long
                with contextlib.suppress(VmConsoleError):
                    self.session.lock_exclusive(oid, LOCK_NAME, task.task_id, task.operation, LEASE_SECONDS)
            with contextlib.suppress(VmConsoleError):
                self.update(task, heartbeat=True)

    def _release(self, oids: list[str], cookie: str) -> None:
        for oid in oids:
            try:
                if oid.startswith(naming.TASK_LOCK_PREFIX):
                    self.session.unlock(oid, LOCK_NAME, cookie)
                    self.session.remove_object(oid)
                else:
                    self.session.omap_remove(oid, ["holder"])
                    self.session.unlock(oid, LOCK_NAME, cookie)
            except VmConsoleError:
                pass  # the lease expires by itself

    # ------------------------------------------------------------------ journal
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

    def update(
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

    def remove(self, task_id: str, task: Task | None = None) -> None:
        with self._journal_lock:
            if task is not None:
                task.args["_finished"] = True
            self.session.omap_remove(naming.JOURNAL_OBJECT, [task_id])

    def entries(self) -> list[dict[str, Any]]:
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

    def audit(self, operation: str, vm: str | None, args: Mapping[str, Any], message: str) -> None:
        """A history record of a change made outside a task (a lock broken, a policy set)."""
        self.history_append(
            {
                "task": f"{operation}-{uuid.uuid4().hex[:8]}",
                "operation": operation,
                "vm": vm,
                "args": dict(args),
                "who": self.holder,
                "started": now_iso(),
                "finished": now_iso(),
                "seconds": 0.0,
                "result": "done",
                "message": message,
            }
        )

    # ------------------------------------------------------------------ history
    def history_record(self, task: Task, outcome: str, seconds: float, message: str) -> dict[str, Any]:
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
