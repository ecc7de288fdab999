"""libvirt adapter: validate domain XML, read domain states, find the Ceph secret."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import libvirt

from vmconsole.domain import xmlsafe
from vmconsole.domain.errors import BackendError, ValidationError

BACKEND = "libvirt"

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",  # running, waiting on a resource: not paused
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}


def _silence_stderr(ctx: object, err: object) -> None:
    """libvirt prints every error on stderr by default; vmconsole reports them itself."""


libvirt.registerErrorHandler(_silence_stderr, None)


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


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        raise BackendError(BACKEND, f"{what}: {exc.get_error_message() or exc}") from exc


class LibvirtSession:
    def __init__(self, uri: str, *, read_only: bool = False) -> None:
        self.uri = uri
        with translated(f"connecting to {uri}"):
            self.conn: Any = libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
        self._lock = threading.Lock()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> LibvirtSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def hostname(self) -> str:
        with translated("reading the hostname"):
            return str(self.conn.getHostname())

    def domains(self) -> dict[str, DomainInfo]:
        with translated("listing domains"):
            result: dict[str, DomainInfo] = {}
            for dom in self.conn.listAllDomains(0):
                state, _max_mem, memory, vcpus, _cpu = dom.info()
                result[dom.name()] = DomainInfo(
                    name=dom.name(),
                    uuid=dom.UUIDString(),
                    state=_STATES.get(state, "unknown"),
                    persistent=bool(dom.isPersistent()),
                    vcpus=vcpus,
                    memory_kib=memory,
                )
            return result

    def _lookup(self, name: str) -> Any | None:
        """The domain of that name, None when there is none; other libvirt errors are raised."""
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise BackendError(BACKEND, f"looking up domain {name}: {exc.get_error_message()}") from exc

    def domain_state(self, name: str) -> str | None:
        dom = self._lookup(name)
        if dom is None:
            return None
        with translated(f"reading state of {name}"):
            return _STATES.get(dom.state()[0], "unknown")

    def domain_xml(self, name: str) -> str | None:
        dom = self._lookup(name)
        if dom is None:
            return None
        with translated(f"reading XML of {name}"):
            return str(dom.XMLDesc(0))

    def freeze_filesystems(self, name: str) -> GuestFreeze:
        """Freeze the guest's filesystems through its qemu-guest-agent; ``thaw_filesystems`` undoes it.

        Not frozen (and why) when the domain has no guest-agent channel or libvirt refuses.
        """
        try:
            dom = self.conn.lookupByName(name)
            if GUEST_AGENT_CHANNEL not in dom.XMLDesc(0):
                return GuestFreeze(None, has_agent=False, why_not="no qemu-guest-agent channel")
            return GuestFreeze(int(dom.fsFreeze()), has_agent=True)
        except libvirt.libvirtError as exc:
            return GuestFreeze(None, has_agent=True, why_not=str(exc.get_error_message()))

    def thaw_filesystems(self, name: str) -> None:
        with translated(f"thawing the filesystems of {name}"):
            self.conn.lookupByName(name).fsThaw()

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
        try:
            dom = self.conn.defineXMLFlags(xmlsafe.tostring(root), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        except libvirt.libvirtError as exc:
            raise ValidationError(
                f"libvirt refuses this domain definition: {exc.get_error_message()}", field="xml"
            ) from exc
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)

    def undefine(self, name: str) -> bool:
        """Remove a persistent definition (a running transient domain is left alone)."""
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return False
        with translated(f"undefining {name}"):
            if not dom.isPersistent():
                return False
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            return True

    def destroy(self, name: str) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.lookupByName(name).destroy()

    def secret_uuid(self, usage: str) -> str | None:
        """UUID of the ceph secret with this usage name ('client.libvirt secret' on SEAPATH)."""
        with translated(f"looking up secret {usage!r}"):
            try:
                return str(self.conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_CEPH, usage).UUIDString())
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_SECRET:
                    return None
                raise

    def qemu_log_tail(self, name: str, lines: int = 40) -> list[str]:
        """Tail of /var/log/libvirt/qemu/<vm>.log on this host (the node libvirt runs on)."""
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
