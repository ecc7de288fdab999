"""What the console remembers by itself, in memory, for as long as it runs.

* ``FailureBook``: the last failure of each VM, so that it stays on the row until a success or a
  cleanup. Pacemaker forgets a failure the moment a failed start is undone (the primitive of a VM
  that failed to enable is removed; a cleanup clears its record); the console does not.
* ``EventLog``: node membership changes seen between two reads and libvirt lifecycle events of
  this host, for the on-call timeline (no cluster component records them for later).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from vmconsole.core import timeline
from vmconsole.core.timeline import Entry
from vmconsole.domain.model import ClusterState, VmState, VmStatus

MAX_EVENTS = 2000


@dataclass(frozen=True)
class KeptFailure:
    """A failure the console shows on the VM's row: from a task of this console, or Pacemaker's."""

    when: datetime | None
    what: str  # "start", "enable"...: the operation that failed
    message: str  # one line: what went wrong
    cause: str | None = None  # the resource agent's or libvirt's own error, once diagnosed
    source: str = "task"  # "task" (this console saw it fail) or "pacemaker"


class FailureBook:
    """The last failure of each VM seen by this console, until a success or a cleanup."""

    def __init__(self) -> None:
        self._failures: dict[str, KeptFailure] = {}
        self.version = 0  # changes whenever what the rows show may change

    def remember(self, vm: str, failure: KeptFailure) -> None:
        self._failures[vm] = failure
        self.version += 1

    def add_cause(self, vm: str, cause: str) -> None:
        kept = self._failures.get(vm)
        if kept is not None:
            self._failures[vm] = KeptFailure(kept.when, kept.what, kept.message, cause, kept.source)
            self.version += 1

    def forget(self, vm: str) -> None:
        if self._failures.pop(vm, None) is not None:
            self.version += 1

    def get(self, vm: str) -> KeptFailure | None:
        return self._failures.get(vm)

    def observe(self, state: ClusterState) -> None:
        """A VM seen Started again, or gone, needs no failure mark any more."""
        for name in list(self._failures):
            vm = state.vm(name)
            if vm is None or (vm.status is VmStatus.STARTED and not vm.failed):
                del self._failures[name]
                self.version += 1

    def shown(self, vm: VmState) -> KeptFailure | None:
        """The failure the VM's row shows: this console's record of it, else Pacemaker's last recorded
        failure while the VM is not running (a success hides it; a cleanup clears it)."""
        kept = self._failures.get(vm.name)
        if kept is not None:
            return kept
        failure = vm.last_failure
        if failure is None or (vm.status is VmStatus.STARTED and not vm.failed):
            return None
        return KeptFailure(failure.when, failure.operation, failure.summary(), source="pacemaker")

    def failed_names(self, vms: Iterable[VmState]) -> frozenset[str]:
        return frozenset(vm.name for vm in vms if vm.failed or self.shown(vm) is not None)


class EventLog:
    """Node changes and libvirt events this console saw, newest last (bounded)."""

    def __init__(self, host: str | None = None) -> None:
        self.host = host
        self.entries: deque[Entry] = deque(maxlen=MAX_EVENTS)
        self._last: ClusterState | None = None

    def observe(self, state: ClusterState, when: datetime) -> None:
        self.entries.extend(timeline.node_changes(self._last, state, when))
        self._last = state

    def lifecycle(self, domain: str, event: str, when: datetime) -> None:
        self.entries.append(timeline.lifecycle_entry(domain, event, when, self.host))

    def note(self, entry: Entry) -> None:
        """Something the console did that the cluster keeps no record of (a lock broken...)."""
        self.entries.append(entry)
