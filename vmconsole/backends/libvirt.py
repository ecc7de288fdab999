"""libvirt adapter: validate domain XML, read domain states, freeze or pause a guest, find the Ceph
secret, watch lifecycle events. Every call is bounded by a timeout."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from vmconsole.backends.proc import run
from vmconsole.domain import xmlsafe
from vmconsole.domain.errors import BackendError, BackendTimeout, ValidationError

if TYPE_CHECKING:
    import libvirt
elif "libvirt" in sys.modules:
    libvirt = sys.modules["libvirt"]
else:
    # loaded at its first use, by _states() (under a lock: a lazy module is not safe to load from two
    # threads at once): a command that never asks libvirt (most of the CLI, most Ansible tasks) is
    # spared its 50 ms of import. Registered as libvirt itself, so that there is one copy of it.
    _spec = importlib.util.find_spec("libvirt")
    if _spec is None or _spec.loader is None:
        raise ModuleNotFoundError("No module named 'libvirt'", name="libvirt")
    _spec.loader = importlib.util.LazyLoader(_spec.loader)
    libvirt = importlib.util.module_from_spec(_spec)
    sys.modules["libvirt"] = libvirt
    _spec.loader.exec_module(libvirt)

BACKEND = "libvirt"


def _silence_stderr(ctx: object, err: object) -> None:
    """libvirt prints every error on stderr by default; vmconsole reports them itself."""


_LOADING = threading.Lock()
_STATES: dict[int, str] = {}


def _states() -> dict[int, str]:
    """libvirt's domain states as vmconsole names them. The first call loads libvirt and silences its
    error printing: every use of libvirt here comes after one."""
    if not _STATES:
        with _LOADING:
            if not _STATES:
                libvirt.registerErrorHandler(_silence_stderr, None)
                _STATES.update(_state_names())
    return _STATES


def _state_names() -> dict[int, str]:
    return {
        libvirt.VIR_DOMAIN_NOSTATE: "nostate",
        libvirt.VIR_DOMAIN_RUNNING: "running",
        libvirt.VIR_DOMAIN_BLOCKED: "running",  # running, waiting on a resource: not paused
        libvirt.VIR_DOMAIN_PAUSED: "paused",
        libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
        libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
        libvirt.VIR_DOMAIN_CRASHED: "crashed",
        libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
    }


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    state: str
    persistent: bool
    vcpus: int
    memory_kib: int


GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"


@dataclass(frozen=True)
class GuestFreeze:
    """The result of a filesystem freeze: how many were frozen, or None and why not."""

    frozen: int | None
    has_agent: bool  # the domain has a qemu-guest-agent channel
    why_not: str = ""


T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0


class LibvirtSession:
    """One connection to libvirt. Every call is bounded: a daemon that does not answer within
    ``timeout`` gives a BackendTimeout, never a hang (the stuck call is left to its thread)."""

    def __init__(self, uri: str, *, read_only: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.uri = uri
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="libvirt")
        _states()  # libvirt loaded, its error printing silenced
        opener = libvirt.openReadOnly if read_only else libvirt.open
        try:
            self.conn: Any = self._bounded(f"connecting to {uri}", lambda: opener(uri))
        except BaseException:
            self._pool.shutdown(wait=False)
            raise
        self._lock = threading.Lock()

    def _bounded(self, what: str, call: Callable[[], T]) -> T:
        future = self._pool.submit(call)
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout as exc:
            raise BackendTimeout(BACKEND, f"{what}: libvirt did not answer within {self.timeout:g} s") from exc
        except libvirt.libvirtError as exc:
            raise BackendError(BACKEND, f"{what}: {exc.get_error_message() or exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._bounded("closing the connection", self.conn.close)
        self._pool.shutdown(wait=False)

    def __enter__(self) -> LibvirtSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def hostname(self) -> str:
        return self._bounded("reading the hostname", lambda: str(self.conn.getHostname()))

    def domains(self) -> dict[str, DomainInfo]:
        def read() -> dict[str, DomainInfo]:
            result: dict[str, DomainInfo] = {}
            for dom in self.conn.listAllDomains(0):
                state, _max_mem, memory, vcpus, _cpu = dom.info()
                result[dom.name()] = DomainInfo(
                    name=dom.name(),
                    uuid=dom.UUIDString(),
                    state=_states().get(state, "unknown"),
                    persistent=bool(dom.isPersistent()),
                    vcpus=vcpus,
                    memory_kib=memory,
                )
            return result

        return self._bounded("listing domains", read)

    def _lookup(self, name: str) -> Any | None:
        """The domain of that name, None when there is none; other libvirt errors are raised."""

        def lookup() -> Any | None:
            try:
                return self.conn.lookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise

        return self._bounded(f"looking up domain {name}", lookup)

    def domain_state(self, name: str) -> str | None:
        dom = self._lookup(name)
        if dom is None:
            return None
        return self._bounded(f"reading state of {name}", lambda: _states().get(dom.state()[0], "unknown"))

    def domain_xml(self, name: str) -> str | None:
        dom = self._lookup(name)
        if dom is None:
            return None
        return self._bounded(f"reading XML of {name}", lambda: str(dom.XMLDesc(0)))

    def freeze_filesystems(self, name: str) -> GuestFreeze:
        """Freeze the guest's filesystems through its qemu-guest-agent; ``thaw_filesystems`` undoes it.

        Not frozen (and why) when the domain has no guest-agent channel or libvirt refuses.
        """

        def freeze() -> GuestFreeze:
            try:
                dom = self.conn.lookupByName(name)
                if GUEST_AGENT_CHANNEL not in dom.XMLDesc(0):
                    return GuestFreeze(None, has_agent=False, why_not="no qemu-guest-agent channel")
                return GuestFreeze(int(dom.fsFreeze()), has_agent=True)
            except libvirt.libvirtError as exc:
                return GuestFreeze(None, has_agent=True, why_not=str(exc.get_error_message()))

        return self._bounded(f"freezing the filesystems of {name}", freeze)

    def thaw_filesystems(self, name: str) -> None:
        self._bounded(f"thawing the filesystems of {name}", lambda: self.conn.lookupByName(name).fsThaw())

    def suspend(self, name: str) -> bool:
        """Pause a running domain (QEMU finishes its in-flight I/O first); False when it does not run here."""
        dom = self._lookup(name)
        if dom is None:
            return False

        def pause() -> bool:
            if dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
                return False
            dom.suspend()
            return True

        return self._bounded(f"pausing {name}", pause)

    def resume(self, name: str) -> None:
        self._bounded(f"resuming {name}", lambda: self.conn.lookupByName(name).resume())

    def check_schema(self, xml_text: str) -> None:
        """Check a domain definition against libvirt's schema, defining nothing (``virt-xml-validate``)."""
        with tempfile.NamedTemporaryFile("w", suffix=".xml", prefix="vmconsole-") as handle:
            handle.write(xml_text)
            handle.flush()
            result = run(["virt-xml-validate", handle.name, "domain"], timeout=self.timeout, backend=BACKEND)
        if not result.ok:
            lines = [line for line in (result.stderr + result.stdout).splitlines() if "fails to validate" not in line]
            detail = "; ".join(line.replace(handle.name, "the domain XML") for line in lines if line.strip())
            raise ValidationError(f"libvirt's schema refuses this domain definition: {detail}", field="xml")

    def validate_domain_xml(self, xml_text: str) -> None:
        """Have libvirt check a domain definition (schema and devices) without keeping it.

        The domain is defined under a throwaway name and UUID, so a running domain of the same name
        (a VM started by Pacemaker on this node) is never touched, then undefined at once.
        """
        root = xmlsafe.parse(xml_text, what="domain XML", field="xml")
        probe_name = f"vmconsole-validate-{uuid.uuid4().hex[:12]}"
        for element in root.findall("name"):
            element.text = probe_name
        for element in root.findall("uuid"):
            element.text = str(uuid.uuid4())

        def define_and_drop() -> str | None:
            try:
                dom = self.conn.defineXMLFlags(xmlsafe.tostring(root), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
            except libvirt.libvirtError as exc:
                return str(exc.get_error_message())
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            return None

        refusal = self._bounded("checking the domain definition", define_and_drop)
        if refusal is not None:
            raise ValidationError(f"libvirt refuses this domain definition: {refusal}", field="xml")

    def undefine(self, name: str) -> bool:
        """Remove a persistent definition (a running transient domain is left alone)."""
        dom = self._lookup(name)
        if dom is None:
            return False

        def drop() -> bool:
            if not dom.isPersistent():
                return False
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            return True

        return self._bounded(f"undefining {name}", drop)

    def destroy(self, name: str) -> None:
        dom = self._lookup(name)
        if dom is not None:
            with contextlib.suppress(BackendError):
                self._bounded(f"destroying {name}", dom.destroy)

    def secret_uuid(self, usage: str) -> str | None:
        """UUID of the ceph secret with this usage name ('client.libvirt secret' on SEAPATH)."""

        def lookup() -> str | None:
            try:
                return str(self.conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_CEPH, usage).UUIDString())
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_SECRET:
                    return None
                raise

        return self._bounded(f"looking up secret {usage!r}", lookup)

    def qemu_log_tail(self, name: str, lines: int = 40) -> list[str]:
        """Tail of /var/log/libvirt/qemu/<vm>.log on this host (the node libvirt runs on)."""
        if "/" in name or name.startswith("."):
            return []  # a name from the cluster never builds a path outside the log directory
        path = f"/var/log/libvirt/qemu/{name}.log"
        try:
            with open(path, "rb") as handle:
                handle.seek(0, 2)
                size = handle.tell()
                handle.seek(max(0, size - 64 * 1024))
                text = handle.read().decode(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]


def watch_lifecycle(uri: str, on_event: Callable[[str, str], None], stop: threading.Event) -> None:
    """Call ``on_event(domain, event)`` for each domain lifecycle event until ``stop`` is set.

    Runs libvirt's default event loop in the calling thread (give it a thread of its own). A 1 s
    libvirt timer wakes the loop up, so ``stop`` is noticed within a second even when nothing happens;
    the watch ends when the connection closes.
    """
    names = {
        libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
        libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
        libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
        libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
        libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
        libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
        libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
        libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
    }
    _states()  # libvirt loaded, its error printing silenced
    _ensure_event_loop()
    timer = libvirt.virEventAddTimeout(1000, lambda *_args: None, None)
    conn = libvirt.openReadOnly(uri)
    closed = threading.Event()

    def callback(_conn: Any, dom: Any, event: int, _detail: int, _opaque: Any) -> None:
        on_event(dom.name(), names.get(event, "changed"))

    callback_id = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, callback, None)
    with contextlib.suppress(libvirt.libvirtError):
        conn.registerCloseCallback(lambda *_args: closed.set(), None)
    try:
        while not stop.is_set() and not closed.is_set():
            libvirt.virEventRunDefaultImpl()
    finally:
        libvirt.virEventRemoveTimeout(timer)
        with contextlib.suppress(libvirt.libvirtError):
            conn.domainEventDeregisterAny(callback_id)
            conn.close()


_event_loop_ready = False


def _ensure_event_loop() -> None:
    global _event_loop_ready
    if not _event_loop_ready:
        libvirt.virEventRegisterDefaultImpl()
        _event_loop_ready = True
