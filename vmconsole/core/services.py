"""The service layer's entry point: one object per process that reaches the cluster.

Both faces (the Textual console and the CLI) hold one ``Services`` and call its operations; it
never imports either of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from vmconsole.backends import libvirt as libvirt_backend
from vmconsole.backends.libvirt import LibvirtSession
from vmconsole.backends.pacemaker import PacemakerClient
from vmconsole.backends.rbd import RbdSession
from vmconsole.config import Config, read_observer
from vmconsole.core.connection import CephConnection
from vmconsole.core.journal import Journal
from vmconsole.core.state import StateReader, build_vm, read_ceph
from vmconsole.core.tasks import Listener, Task, TaskResult, TaskRunner
from vmconsole.domain import naming
from vmconsole.domain.errors import BackendTimeout, NotFoundError, OperationFailed, ReadOnlyError, VmConsoleError
from vmconsole.domain.model import ClusterState, VmState, VmStatus
from vmconsole.domain.pacemaker_status import CrmMonSnapshot
from vmconsole.domain.primitive import PrimitiveConfig
from vmconsole.domain.status import derive_status_and_node

POLL = 0.3


def watch_lifecycle(uri: str, on_event: Callable[[str, str], None], stop: threading.Event) -> None:
    """libvirt's domain lifecycle events at ``uri`` until ``stop`` is set (blocks: give it a thread).

    Wakes up every second to notice ``stop``; ends when the connection closes.
    """
    libvirt_backend.watch_lifecycle(uri, on_event, stop)


class Services:
    """``read_only``: why this session may not change the cluster (None: it may). Every mutation goes
    through ``run`` or ``require_writable`` and is refused with that reason, whichever face asked."""

    def __init__(self, config: Config, listener: Listener | None = None, *, read_only: str | None = None) -> None:
        self.config = config
        self.read_only = read_only
        self.pacemaker = PacemakerClient(config.pacemaker)
        self.listener = listener
        self.ceph = CephConnection(config.ceph)
        self.reader = StateReader(config, ceph=self.ceph, pacemaker=self.pacemaker)

    # ------------------------------------------------------------------ connections
    @property
    def rbd(self) -> RbdSession:
        return self.ceph.session()

    def libvirt(self) -> LibvirtSession:
        return LibvirtSession(self.config.libvirt.uri, timeout=self.config.libvirt.timeout)

    def node_libvirt_uri(self, node: str, *, interactive: bool = False) -> str:
        """libvirt of ``node``: this host's own URI when it is this host, else over SSH as the console's
        user (the way the serial console goes). Not ``interactive``: SSH never asks (no password prompt
        to hang on)."""
        with self.libvirt() as lv:
            local = lv.hostname()
        if node in (local, local.split(".")[0]):
            return self.config.libvirt.uri
        return f"qemu+ssh://{self.config.console.ssh_user}@{node}/system" + ("" if interactive else "?no_tty=1")

    def libvirt_on(self, node: str) -> LibvirtSession:
        return LibvirtSession(self.node_libvirt_uri(node), timeout=self.config.libvirt.timeout)

    def close(self) -> None:
        self.reader.close()
        self.ceph.close()

    @property
    def journal(self) -> Journal:
        """The cluster's records of tasks: locks, the journal of running tasks, the history."""
        return Journal(self.rbd)

    def runner(self, listener: Listener | None = None) -> TaskRunner:
        return TaskRunner(self.rbd, listener or self.listener)

    def require_writable(self, what: str) -> None:
        if self.read_only is not None:
            raise ReadOnlyError(f"{what} refused: this session is read-only ({self.read_only})")

    def run(self, task: Task, cancel: threading.Event | None = None, listener: Listener | None = None) -> TaskResult:
        self.require_writable(task.description or task.operation)
        return self.runner(listener).run(task, cancel)

    # ------------------------------------------------------------------ reading
    def state(self) -> ClusterState:
        return self.reader.read()

    def crm_mon(self) -> CrmMonSnapshot:
        return self.pacemaker.status()

    def primitives(self) -> dict[str, PrimitiveConfig]:
        return self.pacemaker.primitives()

    def vm(self, name: str, *, with_usage: bool = False) -> VmState:
        """One VM, read fresh (Ceph and Pacemaker); NotFoundError when it does not exist.

        ``with_usage`` also measures the bytes allocated on each disk (an object-map walk per disk:
        cheap for one VM, not for a whole table).
        """
        ceph = read_ceph(self.rbd, only={name})
        pcmk = self.reader.pacemaker_part()
        state = build_vm(name, ceph, pcmk)
        if with_usage and state.disks:
            state = replace(state, disks=tuple(replace(d, used=self.rbd.disk_usage(d.image)) for d in state.disks))
            clones = {naming.vm_of_image(c) or c for d in state.disks for c in self.rbd.children(d.image)}
            state = replace(state, linked_clones=tuple(sorted(clones)))
        if state.status is VmStatus.UNDEFINED and not state.enabled:
            raise NotFoundError(
                f"no VM named {name!r} (no RBD group {name!r} in pool {self.config.ceph.pool!r})", field="name"
            )
        return state

    def history(self, months: int = 3) -> list[dict[str, Any]]:
        """The audit trail of operations, oldest first."""
        return self.journal.history(months)

    def vm_exists(self, name: str) -> bool:
        return self.rbd.group_exists(name)

    def observer(self) -> str | None:
        """The cluster's observer node (never runs a VM: banned for each, refused as a VM's host), from
        ``[pacemaker] observer`` or SEAPATH's ``/etc/cluster.conf``; None when there is none."""
        return read_observer(self.config.pacemaker)

    def node_names(self) -> list[str]:
        return [n.name for n in self.crm_mon().nodes if n.kind == "member"]

    def vm_status(self, name: str) -> tuple[VmStatus, str | None]:
        pcmk = self.reader.pacemaker_part()
        primitive = pcmk.primitives.get(name)
        return derive_status_and_node(
            True, primitive if primitive and primitive.is_vm else None, pcmk.status.resource(name)
        )

    # ------------------------------------------------------------------ waiting on real state
    def wait_status(
        self,
        name: str,
        wanted: set[VmStatus],
        timeout: float,
        *,
        fail_on: set[VmStatus] | None = None,
        tick: Callable[[], None] | None = None,
    ) -> tuple[VmStatus, str | None]:
        """Poll Pacemaker until the VM's status is one of ``wanted``; raise on ``fail_on`` or timeout."""
        fail_on = fail_on if fail_on is not None else {VmStatus.FAILED}
        deadline = time.monotonic() + timeout
        status: VmStatus | None = None
        while True:
            status, node = self.vm_status(name)
            if status in wanted:
                return status, node
            if status in fail_on:
                vm = build_vm(name, None, self.reader.pacemaker_part())
                reason = vm.last_failure.summary() if vm.last_failure else "no failure recorded"
                raise OperationFailed(
                    f"{name} is {status.value}: {reason}", hint=f"`vmconsole vm diagnose {name}` shows the details"
                )
            if time.monotonic() > deadline:
                raise BackendTimeout(
                    "pacemaker",
                    f"{name} still {status.value} after {timeout:g} s "
                    f"(waiting for {' or '.join(sorted(s.value for s in wanted))})",
                    hint=self._why(name),
                )
            if tick:
                tick()
            time.sleep(POLL)

    def _why(self, name: str) -> str:
        """Pacemaker's own explanation of where a resource can run (shown as is, never parsed)."""
        try:
            raw = self.pacemaker.why(name)
        except VmConsoleError:
            return f"`crm_resource --why --resource {name}` may tell why"
        text = " / ".join(line.strip() for line in raw.splitlines() if line.strip())
        return f"Pacemaker says: {text[:300]}" if text else "check its constraints (colocation, location)"

    def disk_users(self, images: Sequence[str]) -> dict[str, list[str]]:
        """Image -> the clients (QEMU on some node, a mapping, another tool) that have it open now."""
        users: dict[str, list[str]] = {}
        for image in images:
            try:
                watchers = self.rbd.watchers(image)
            except NotFoundError:
                continue
            if watchers:
                users[image] = watchers
        return users

    def wait_disks_released(
        self,
        name: str,
        timeout: float,
        tick: Callable[[], None] | None = None,
        images: Sequence[str] | None = None,
    ) -> None:
        """Wait until no client (QEMU, on any node) still has any of the VM's disks open."""
        deadline = time.monotonic() + timeout
        wanted = list(images) if images is not None else self._vm_disks(name)
        while True:
            users = self.disk_users(wanted)
            if not users:
                return
            if time.monotonic() > deadline:
                held = "; ".join(f"{image} by {', '.join(clients)}" for image, clients in sorted(users.items()))
                raise BackendTimeout(
                    "ceph",
                    f"still open after {timeout:g} s: {held}",
                    hint="the VM's QEMU (or another client) is still running somewhere",
                )
            if tick:
                tick()
            time.sleep(POLL)

    def _vm_disks(self, name: str) -> list[str]:
        images = set(self.rbd.group_images(name)) if self.rbd.group_exists(name) else set()
        images.add(naming.system_image(name))
        return sorted(images, key=lambda i: naming.disk_order(name, i))
