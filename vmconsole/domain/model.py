"""The immutable picture of a cluster that every face of vmconsole reads.

One ``ClusterState`` is built per refresh by ``core.state`` from one RADOS connection and one
``crm_mon`` call. Nothing in here talks to the cluster; everything is plain frozen data that can be
diffed, rendered, or dumped as JSON.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

EMPTY_MAP: Mapping[str, str] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return EMPTY_MAP


class VmStatus(enum.StrEnum):
    """The seven statuses of a VM, as an operator reads them (rules in ``core.status``)."""

    UNDEFINED = "Undefined"  # no RBD group of that name
    DISABLED = "Disabled"  # the VM exists in Ceph but has no Pacemaker primitive
    STARTING = "Starting"
    STARTED = "Started"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"


class NodeStatus(enum.StrEnum):
    ONLINE = "online"
    PENDING = "pending"  # a member still joining: not ready to run resources yet
    STANDBY = "standby"
    MAINTENANCE = "maintenance"
    OFFLINE = "offline"
    UNCLEAN = "unclean"


@dataclass(frozen=True)
class NodeState:
    name: str
    node_id: str
    status: NodeStatus
    is_dc: bool = False
    kind: str = "member"  # "member", "remote", or "observer" (a member that never runs VMs)
    resources_running: int = 0


@dataclass(frozen=True)
class Failure:
    """One failed operation as Pacemaker recorded it."""

    operation: str  # start, stop, monitor, migrate_to...
    node: str
    exit_status: str  # "error", "not running", "not installed"...
    exit_reason: str
    exit_code: int
    when: datetime | None
    interval_ms: int = 0

    def summary(self) -> str:
        reason = self.exit_reason or self.exit_status
        return f"{self.operation} on {self.node}: {reason} (rc={self.exit_code})"


@dataclass(frozen=True)
class ResourceState:
    """What Pacemaker says of one VM primitive (from the CIB and ``crm_mon --output-as xml``)."""

    resource_id: str
    agent: str
    role: str  # crm_mon's role: Started, Stopped, Starting, Stopping, Migrating, Unknown...
    target_role: str | None
    active: bool
    managed: bool
    blocked: bool
    failed: bool
    orphaned: bool
    nodes: tuple[str, ...]
    pending: str | None = None  # the pending operation, if any (crm_mon's "pending" attribute)
    fail_count: int = 0  # the highest fail-count over all nodes (1000000 means INFINITY)
    failures: tuple[Failure, ...] = ()


@dataclass(frozen=True)
class Disk:
    image: str  # RBD image name: system_<vm> or data_<vm>_<i>
    size: int  # bytes (virtual size)
    used: int | None = None  # bytes actually allocated, where cheap to know


@dataclass(frozen=True)
class Snapshot:
    """A snapshot of a VM, as one unit whatever the number of disks it spans.

    ``kind`` is "image" for per-image snapshots of the same name on each disk (what vm_manager makes,
    and vmconsole by default, all disks at one instant) and "group" for an RBD group snapshot (what
    vmconsole makes with ``[snapshots] kind = "group"``; vm_manager cannot use those).
    """

    name: str
    kind: str
    created: datetime | None  # aware, UTC
    disks: tuple[str, ...]  # images that hold it
    protected: bool = False
    missing_on: tuple[str, ...] = ()  # disks of the VM that lack it (a partial set)
    metadata: Mapping[str, str] = field(default_factory=_empty)  # the VM configuration recorded with it, if any


@dataclass(frozen=True)
class VmState:
    name: str
    status: VmStatus
    node: str | None  # the node hosting it now (None when not running anywhere)
    enabled: bool  # has a Pacemaker primitive
    uuid: str | None = None
    target_role: str | None = None
    managed: bool = True
    blocked: bool = False
    failed: bool = False
    fail_count: int = 0
    last_failure: Failure | None = None
    resource: ResourceState | None = None
    disks: tuple[Disk, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=_empty)  # user keys (no leading underscore, not reserved)
    settings: Mapping[str, Any] = field(default_factory=_empty)  # the decoded internal ``_`` keys
    problems: tuple[str, ...] = ()  # what could not be read about this VM
    # the status string vm_manager's status() gives for it, for scripts written against vm_manager
    vm_manager_status: str = ""
    # VMs linked-cloned from this VM's snapshots (vm_manager cannot remove a VM that has some);
    # read by `vm status` only, empty in a whole-cluster read
    linked_clones: tuple[str, ...] = ()

    @property
    def total_size(self) -> int:
        return sum(d.size for d in self.disks)

    @property
    def latest_snapshot(self) -> Snapshot | None:
        dated = [s for s in self.snapshots if s.created is not None]
        return max(dated, key=lambda s: s.created or datetime.min) if dated else None


@dataclass(frozen=True)
class CephHealth:
    status: str  # HEALTH_OK, HEALTH_WARN, HEALTH_ERR or "unknown"
    checks: tuple[str, ...] = ()  # one line per active health check


@dataclass(frozen=True)
class ClusterState:
    taken_at: datetime
    nodes: tuple[NodeState, ...] = ()
    vms: tuple[VmState, ...] = ()
    ceph: CephHealth | None = None
    quorum: bool | None = None
    dc: str | None = None
    cluster_name: str | None = None
    # Each entry says which backend could not be read and why; empty means a complete picture.
    problems: tuple[str, ...] = ()
    duration: float = 0.0  # seconds spent gathering
    _index: Mapping[str, VmState] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", MappingProxyType({vm.name: vm for vm in self.vms}))

    @property
    def partial(self) -> bool:
        return bool(self.problems)

    def vm(self, name: str) -> VmState | None:
        return self._index.get(name)

    def node(self, name: str) -> NodeState | None:
        return next((n for n in self.nodes if n.name == name), None)
