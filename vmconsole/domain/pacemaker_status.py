"""Pacemaker's status as crm_mon reports it: the records the backends' crm_mon parser returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from vmconsole.domain.model import EMPTY_MAP, Failure, NodeState, ResourceState
from vmconsole.domain.primitive import VM_AGENT


def _empty_fail_counts() -> Mapping[str, Mapping[str, int]]:
    return MappingProxyType({})


def _empty_resources() -> Mapping[str, ResourceState]:
    return MappingProxyType({})


@dataclass(frozen=True)
class CrmMonSnapshot:
    """One ``crm_mon --output-as xml`` answer, as model objects."""

    nodes: tuple[NodeState, ...] = ()
    resources: Mapping[str, ResourceState] = field(default_factory=_empty_resources)
    failures: tuple[Failure, ...] = ()  # every <failure>, in crm_mon's order
    # resource id -> node -> fail-count (1000000 = INFINITY); only non-zero counts are listed
    fail_counts: Mapping[str, Mapping[str, int]] = field(default_factory=_empty_fail_counts)
    dc: str | None = None
    quorum: bool | None = None  # None when no DC is elected (nobody can tell)
    cluster_name: str | None = None
    maintenance_mode: bool = False  # the cluster-wide maintenance-mode property
    parents: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)  # primitive -> group/clone

    def resource(self, resource_id: str) -> ResourceState | None:
        return self.resources.get(resource_id)

    def node(self, name: str) -> NodeState | None:
        return next((n for n in self.nodes if n.name == name), None)

    @property
    def vm_resources(self) -> dict[str, ResourceState]:
        """The ``ocf:seapath:VirtualDomain`` primitives: what vm_manager counts as VMs."""
        return {rid: r for rid, r in self.resources.items() if r.agent == VM_AGENT}

    @property
    def remote_nodes(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes if n.kind == "remote")


@dataclass(frozen=True)
class OperationHistoryEntry:
    """One ``<operation_history>`` of a resource on a node, its attributes as crm_mon wrote them."""

    node: str
    attributes: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)

    def to_json(self) -> dict[str, str]:
        return {"node": self.node, **self.attributes}
