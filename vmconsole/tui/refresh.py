"""The live cluster state: a self-rescheduling read, and libvirt's lifecycle events to nudge it.

* ``Refresher``: one thread worker reads a ``ClusterState``; when it ends, the next read is
  scheduled (never two reads at once). The delay grows with a slow read, backs off after failures
  (up to ``MAX_INTERVAL``), and a refresh asked for during a read runs right after it. When the read
  fails or is partial the last known state stays shown, marked STALE with the reason.
* A read still running past twice the interval is *overdue*: the header says so at once, with how
  long it has waited and on which backend. The backend is found by probes, one light call per
  backend started in daemon threads when the read becomes overdue: the probe that does not answer
  is the backend the read waits on (a hung CIB daemon, a Ceph that does not answer).
* ``LifecycleWatch`` (real mode only): a daemon thread watches this host's libvirt domains; each
  event nudges the refresh, at most once per ``NUDGE_EVERY``. When libvirt cannot be watched the
  console just keeps polling.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from textual.app import App
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from vmconsole.core import services as core_services
from vmconsole.domain.errors import VmConsoleError
from vmconsole.domain.model import ClusterState
from vmconsole.tui import text
from vmconsole.tui.messages import LifecycleEvent
from vmconsole.tui.workers import abandonable

MAX_INTERVAL = 30.0  # the refresh backoff never waits longer than this
NUDGE_EVERY = 0.5  # libvirt events nudge the refresh at most this often (seconds)
# Ceph's headers are read on every CEPH_EVERY-th timed refresh (and on every asked-for one): they change
# with snapshots and configuration, not with a VM's state; Pacemaker's part is checked every time.
CEPH_EVERY = 3
logger = logging.getLogger(__name__)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def limit_malloc_arenas(arenas: int = 2) -> None:
    """At most ``arenas`` glibc malloc arenas for the threads created from now on (the refresh
    workers, librados'): each thread otherwise gets an arena of its own that keeps what it freed,
    14 MB of resident memory for nothing at 500 VMs. No-op off glibc."""
    with contextlib.suppress(AttributeError):
        if _LIBC is not None:
            _LIBC.mallopt(-8, arenas)  # M_ARENA_MAX


def release_freed_memory() -> None:
    """Give the memory a read freed back to the system (a read's garbage is megabytes on a large
    cluster; glibc otherwise keeps it for later). No-op off glibc."""
    with contextlib.suppress(AttributeError):
        if _LIBC is not None:
            _LIBC.malloc_trim(0)


@dataclass(frozen=True)
class Overdue:
    """A read running past twice the interval: how long, and what it waits on."""

    seconds: float
    waiting_on: tuple[str, ...]  # backends whose probe has not answered (empty: unknown or none)
    answered: tuple[str, ...] = ()  # backends whose probe answered (the read is slow, not stuck there)

    def describe(self) -> str:
        waited = text.seconds_short(self.seconds)
        if self.waiting_on:
            return f"waiting {waited} for {' and '.join(self.waiting_on)}"
        if self.answered:
            return f"reading for {waited} ({' and '.join(self.answered)} answer: a slow read)"
        return f"no answer for {waited} from the cluster read"


class Refresher:
    """Reads the cluster state in a thread worker (group ``refresh``, routed here by the app)."""

    def __init__(
        self,
        app: App[Any],
        read: Callable[[], ClusterState],
        clock: Callable[[], datetime],
        *,
        interval: float,
        auto: bool,
        on_state: Callable[[ClusterState], None],
        on_change: Callable[[], None],
        probes: Mapping[str, Callable[[], object]] | None = None,
    ) -> None:
        self.app = app
        self._read = read
        self._clock = clock
        self.interval = interval
        self.auto = auto  # read again by itself after each read (off: only when asked)
        self._on_state = on_state  # a new state was read
        self._on_change = on_change  # the refresh indicator changed (age, STALE)
        self.state: ClusterState | None = None
        self.last_ok: datetime | None = None
        self.read_error: str | None = None
        self.last_read_seconds = 0.0
        self.failures_in_a_row = 0
        self.next_delay = interval
        self.reading = False
        self.nudged = False  # a refresh was asked for during a read: read again right after it
        self._timer: Timer | None = None
        self.read_started: float | None = None  # monotonic time the read in flight started
        self.probes = dict(probes or {})  # backend -> a light call to it (run only when a read is overdue)
        self._probe_round = 0
        self._probe_answers: dict[str, float] = {}  # backend -> seconds its probe took (this round)
        self._probing = False
        self._asked = True  # the next read was asked for (not the timer's): a whole one
        self._reads = 0
        self._ceph_max_age = 0.0
        limit_malloc_arenas()

    def refresh_now(self) -> None:
        """Read the cluster now (or right after the read in flight): never two reads at once. Asked
        for (a key, a finished task, a libvirt event), the read is a whole one, Ceph's headers too."""
        self._asked = True
        self._start_read()

    def nudge(self) -> None:
        """Read soon because a VM's state changed (a libvirt lifecycle event): Pacemaker's part at once,
        Ceph's headers on their own cadence (a domain starting or stopping changes none of them)."""
        self._start_read()

    @property
    def ceph_max_age(self) -> float:
        """How old the Ceph part of the read in flight may be: 0 (read it) when the read was asked
        for or every ``CEPH_EVERY`` reads, else reused from the last read. Pacemaker's part is read
        on every refresh (a version check when nothing changed)."""
        return self._ceph_max_age

    def _start_read(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self.reading:
            self.nudged = True
            return
        self.reading = True
        self._reads += 1
        whole = self._asked or self._reads % CEPH_EVERY == 0
        self._asked = False
        self._ceph_max_age = 0.0 if whole else CEPH_EVERY * (self.interval + 2 * self.last_read_seconds) + 1
        self.read_started = time.monotonic()
        self._probe_round += 1
        self._probe_answers = {}
        self._probing = False
        self.app.run_worker(
            self._timed_read,
            name="refresh",
            group="refresh",
            thread=True,
            exclusive=True,
            exit_on_error=False,
            description="read the cluster state",
        )

    def _timed_read(self) -> ClusterState:
        """The worker: read the state; the result (or the error) comes back in ``worker_changed``."""
        started = time.monotonic()
        try:
            return abandonable(self._read)
        finally:
            self.last_read_seconds = time.monotonic() - started
            release_freed_memory()

    def worker_changed(self, worker: Worker[Any], state: WorkerState) -> None:
        if state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.read_started = None
        if state is WorkerState.SUCCESS:
            self.reading = False
            self._read_ok(cast(ClusterState, worker.result))
            self.schedule_next()
        elif state is WorkerState.ERROR:
            self.reading = False
            self._read_failed(worker.error or RuntimeError("unknown error"))
            self.schedule_next()
        elif state is WorkerState.CANCELLED:
            self.reading = False

    def schedule_next(self) -> None:
        """After a read: the next one, later (slow reads and failures wait longer) or now if nudged."""
        delay = self.interval + 2 * self.last_read_seconds
        if self.failures_in_a_row:
            delay = max(delay, self.interval * 2 ** min(self.failures_in_a_row, 4))
        self.next_delay = min(delay, max(MAX_INTERVAL, self.interval))
        if self.nudged:
            self.nudged = False
            self._start_read()  # whole when it was asked for (``_asked`` says)
        elif self.auto:
            self._timer = self.app.set_timer(self.next_delay, self._start_read, name="refresh")

    def _read_ok(self, state: ClusterState) -> None:
        first = self.state is None
        self.state = state
        self.last_ok = self._clock()
        self.read_error = None
        self.failures_in_a_row = 0
        self._on_state(state)
        self._on_change()
        if first:
            # What is alive now (the imported modules, the screens, the first state) lives as long as
            # the console: out of the collector's full passes, which otherwise walk it all and stop
            # the main thread for a fraction of a second on a large cluster.
            gc.freeze()

    def _read_failed(self, error: BaseException) -> None:
        self.failures_in_a_row += 1
        self.read_error = text.safe(
            error.message if isinstance(error, VmConsoleError) else f"{type(error).__name__}: {error}"
        )
        self._on_change()

    def overdue(self) -> Overdue | None:
        """The read in flight when it is past twice the interval (its probes started then), else None."""
        if self.read_started is None:
            return None
        waited = time.monotonic() - self.read_started
        if waited <= 2 * self.interval:
            return None
        if not self._probing:
            self._start_probes()
        answers = self._probe_answers
        return Overdue(
            waited,
            tuple(name for name in self.probes if name not in answers),
            tuple(name for name in self.probes if name in answers),
        )

    def _start_probes(self) -> None:
        """One daemon thread per backend (a hung call must never hold anything): each records when it answered."""
        self._probing = True
        round_, answers = self._probe_round, self._probe_answers

        def probe(name: str, call: Callable[[], object]) -> None:
            started = time.monotonic()
            # an error is an answer too: the read's own error says what it was
            with contextlib.suppress(Exception):
                call()
            if round_ == self._probe_round:
                answers[name] = time.monotonic() - started

        for name, call in self.probes.items():
            threading.Thread(target=probe, args=(name, call), name=f"vmconsole-probe-{name}", daemon=True).start()

    @property
    def stale_reason(self) -> str | None:
        """Why the state shown may be out of date: the last read failed, or it was partial."""
        if self.read_error is not None:
            return self.read_error
        if self.state is not None and self.state.problems:
            return "; ".join(self.state.problems)
        return None


class LifecycleWatch:
    """libvirt's domain lifecycle events on this host, each one a nudge of the refresh."""

    def __init__(self, app: App[Any], uri: str, nudge: Callable[[], None]) -> None:
        self.app = app
        self.uri = uri
        self._nudge = nudge
        self.stop = threading.Event()  # set on unmount: the watch thread ends within a second
        self.thread: threading.Thread | None = None
        self.nudge_timer: Timer | None = None
        self._last_nudge = 0.0
        self.events = 0  # events received (shown nowhere; for tests and debugging)
        self.problem: str | None = None  # why the events are not watched, if they are not

    def start(self) -> None:
        """Watch in a daemon thread, not a Textual worker.

        The watch blocks in libvirt's event loop for the console's whole life (it wakes up every
        second to see ``stop``), and it must never hold the exit. When libvirt cannot be watched
        (no daemon, no rights) the console keeps polling.
        """
        stop = self.stop

        def on_event(domain: str, event: str) -> None:
            # post_message is thread-safe and, unlike call_from_thread, never blocks this thread:
            # libvirt's loop must keep turning (its keepalives) even while the UI is suspended
            # (``virsh console``) or busy.
            if stop.is_set():
                return
            try:
                self.app.post_message(LifecycleEvent(domain, event))
            except RuntimeError:  # the app's loop is gone
                stop.set()

        def watch() -> None:
            try:
                core_services.watch_lifecycle(self.uri, on_event, stop)
            except Exception as exc:  # no libvirt here: polling alone is fine
                self.problem = f"{type(exc).__name__}: {exc}"
                logger.info("libvirt lifecycle events not watched (%s): the console polls", self.problem)

        self.thread = threading.Thread(target=watch, name="vmconsole-libvirt-events", daemon=True)
        self.thread.start()

    def event_received(self) -> None:
        """A domain started, stopped, migrated...: read the cluster soon, at most once per ``NUDGE_EVERY``."""
        self.events += 1
        if self.nudge_timer is not None:
            return  # a nudge is already due: it reads the state this event changed too
        wait = self._last_nudge + NUDGE_EVERY - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self.nudge_timer = self.app.set_timer(wait, self._fire, name="libvirt-nudge")

    def _fire(self) -> None:
        self.nudge_timer = None
        self._last_nudge = time.monotonic()
        self._nudge()
