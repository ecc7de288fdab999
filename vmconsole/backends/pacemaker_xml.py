"""Read Pacemaker's XML: ``crm_mon --output-as xml`` (status) and ``cibadmin --query`` (configuration).

Written against Pacemaker 2.1.5 (crm_mon ``api-version="2.25"``); the fixtures in
``tests/fixtures/pacemaker`` are real outputs of those tools. Pure functions: text in, frozen
model out. All parsing goes through ``xmlsafe.parse`` (no entities, no DTD, no network).

Containers: crm_mon nests the members of a ``<group>``, ``<clone>`` or ``<bundle>`` inside it. Each
primitive is reported under its own id; the instances of a clone (listed once per node, all with
the same id, or ``id:N`` for unique clones) are merged into one ``ResourceState`` whose ``nodes``
are all the nodes an instance runs on. ``CrmMonSnapshot.parents`` says which container holds which
primitive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType

from lxml import etree

from vmconsole.domain import xmlsafe
from vmconsole.domain.errors import BackendError, ValidationError
from vmconsole.domain.model import EMPTY_MAP, Failure, NodeState, NodeStatus, ResourceState
from vmconsole.domain.primitive import (
    INFINITY,
    VM_AGENT,
    ColocationConstraint,
    LocationConstraint,
    OperationConfig,
    PrimitiveConfig,
    pacemaker_bool,
)
from vmconsole.domain.units import duration_ms

BACKEND = "pacemaker"
_CONTAINERS = ("group", "clone", "bundle")


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


# ------------------------------------------------------------------------------------------------
# Small readers


def _flag(element: etree._Element, name: str, default: bool = False) -> bool:
    return pacemaker_bool(element.get(name), default)


def _int(text: str | None, default: int = 0) -> int:
    if text is None:
        return default
    word = text.strip()
    if word.upper() in ("INFINITY", "+INFINITY"):
        return INFINITY
    match = re.match(r"-?[0-9]+", word)
    return int(match.group()) if match else default


def parse_pacemaker_time(text: str | None) -> datetime | None:
    """A Pacemaker timestamp as an aware UTC datetime, or None when absent or unreadable.

    Forms met in 2.1.5: "2026-11-25 23:03:56Z" (``<failure last-rc-change>``), "Thu Nov 26 00:15:35
    2026" (``<operation_history>``, local time of the node that ran crm_mon, which is this one) and
    "1795652135" (epoch seconds, in the CIB's ``lrm_rsc_op``).
    """
    if text is None or not text.strip():
        return None
    word = text.strip()
    parsed: datetime | None = None
    if word.isdigit():
        return datetime.fromtimestamp(int(word), tz=UTC)
    try:
        parsed = datetime.fromisoformat(word)
    except ValueError:
        try:
            parsed = datetime.strptime(word, "%a %b %d %H:%M:%S %Y")
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # naive means local time: attach this machine's zone
    return parsed.astimezone(UTC)


def _base_id(resource_id: str) -> str:
    """Clone instances are "rsc:N" in some places and "rsc" in others: one key for all."""
    return resource_id.split(":", 1)[0]


def _parse_or_backend_error(text: str | bytes, what: str) -> etree._Element:
    # Output of a cluster tool that is not XML is the tool's failure, not the user's input error.
    try:
        return xmlsafe.parse(text, what=what)
    except ValidationError as exc:
        raise BackendError(BACKEND, exc.message) from exc


# ------------------------------------------------------------------------------------------------
# crm_mon


def _check_status(root: etree._Element) -> None:
    """Raise the error crm_mon reported (rc 102 "Not connected" when no cluster runs here)."""
    if root.tag != "pacemaker-result":
        raise BackendError(BACKEND, f"crm_mon answered <{root.tag}>, not <pacemaker-result>")
    status = root.find("status")
    if status is None:
        return
    code = _int(status.get("code"), 0)
    if code == 0:
        return
    message = status.get("message") or f"error {code}"
    errors = [(e.text or "").strip() for e in status.iterfind("errors/error")]
    detail = "; ".join(e for e in errors if e)
    hint = "is the cluster running on this node?" if code == 102 else None
    raise BackendError(BACKEND, f"crm_mon: {message} (code {code})" + (f": {detail}" if detail else ""), hint=hint)


def _node_status(element: etree._Element) -> NodeStatus:
    """Unclean first (it needs fencing), then offline, maintenance, standby, online."""
    if _flag(element, "unclean"):
        return NodeStatus.UNCLEAN
    if not _flag(element, "online"):
        return NodeStatus.OFFLINE
    if _flag(element, "maintenance"):
        return NodeStatus.MAINTENANCE
    if _flag(element, "standby") or _flag(element, "standby_onfail"):
        return NodeStatus.STANDBY
    return NodeStatus.ONLINE


def _parse_nodes(root: etree._Element) -> tuple[NodeState, ...]:
    return tuple(
        NodeState(
            name=node.get("name", ""),
            node_id=node.get("id", ""),
            status=_node_status(node),
            is_dc=_flag(node, "is_dc"),
            kind=node.get("type", "member"),
            resources_running=_int(node.get("resources_running")),
        )
        for node in root.iterfind("nodes/node")
    )


def _walk_resources(element: etree._Element, parent: str | None) -> Iterator[tuple[etree._Element, str | None]]:
    """Every <resource> under ``element``, with the id of its nearest group/clone/bundle."""
    for child in element:
        if child.tag == "resource":
            yield child, parent
        elif child.tag in _CONTAINERS:
            yield from _walk_resources(child, _base_id(child.get("id", "")) or parent)
        elif child.tag == "replica":  # bundle replicas: no id of their own worth keeping
            yield from _walk_resources(child, parent)


def _resource_state(element: etree._Element) -> ResourceState:
    return ResourceState(
        resource_id=_base_id(element.get("id", "")),
        agent=element.get("resource_agent", ""),
        role=element.get("role", "Unknown"),
        target_role=element.get("target_role"),
        active=_flag(element, "active"),
        managed=_flag(element, "managed", default=True),
        blocked=_flag(element, "blocked"),
        failed=_flag(element, "failed"),
        orphaned=_flag(element, "orphaned"),
        nodes=tuple(n.get("name", "") for n in element.iterfind("node")),
        pending=element.get("pending"),
    )


def _merge_instances(first: ResourceState, other: ResourceState) -> ResourceState:
    """Fold one more clone instance into the state of the clone's primitive."""
    nodes = first.nodes + tuple(n for n in other.nodes if n not in first.nodes)
    # The role shown is that of an active instance, if any: "Started" beats an idle "Stopped".
    role = first.role if first.active or not other.active else other.role
    return replace(
        first,
        role=role,
        active=first.active or other.active,
        managed=first.managed and other.managed,
        blocked=first.blocked or other.blocked,
        failed=first.failed or other.failed,
        orphaned=first.orphaned and other.orphaned,
        nodes=nodes,
        pending=first.pending or other.pending,
    )


def _failure_resource(element: etree._Element) -> str:
    """The resource of a <failure>: its op_key is "<rsc>_<task>_<interval ms>"."""
    op_key = element.get("op_key", "")
    suffix = f"_{element.get('task', '')}_{element.get('interval', '0')}"
    if element.get("task") and op_key.endswith(suffix):
        return _base_id(op_key[: -len(suffix)])
    # Unknown shape: drop the two last fields (works for tasks without "_", like monitor).
    return _base_id(op_key.rsplit("_", 2)[0])


def _parse_failures(root: etree._Element) -> list[tuple[str, Failure]]:
    failures = []
    for element in root.iterfind("failures/failure"):
        failure = Failure(
            operation=element.get("task", ""),
            node=element.get("node", ""),
            exit_status=element.get("exitstatus", ""),
            exit_reason=element.get("exitreason", ""),
            exit_code=_int(element.get("exitcode"), -1),
            when=parse_pacemaker_time(element.get("last-rc-change")),
            interval_ms=duration_ms(element.get("interval")),
        )
        failures.append((_failure_resource(element), failure))
    return failures


def _parse_fail_counts(root: etree._Element) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for node in root.iterfind("node_history/node"):
        for history in node.iterfind("resource_history"):
            count = _int(history.get("fail-count"))
            if count > 0:
                per_node = counts.setdefault(_base_id(history.get("id", "")), {})
                node_name = node.get("name", "")
                per_node[node_name] = max(count, per_node.get(node_name, 0))
    return counts


def _cluster_name(summary: etree._Element | None) -> str | None:
    """Not printed by crm_mon 2.1.5; read it where later versions put it, if present."""
    if summary is None:
        return None
    element = summary.find("cluster_name")
    if element is not None:
        return element.get("name") or (element.text or "").strip() or None
    options = summary.find("cluster_options")
    return options.get("cluster-name") if options is not None else None


def parse_crm_mon(text: str | bytes) -> CrmMonSnapshot:
    """Parse ``crm_mon --output-as xml``. Raises BackendError for an error answer (rc 102...)."""
    root = _parse_or_backend_error(text, "crm_mon output")
    _check_status(root)

    summary = root.find("summary")
    dc_element = summary.find("current_dc") if summary is not None else None
    dc: str | None = None
    quorum: bool | None = None
    if dc_element is not None and _flag(dc_element, "present"):
        dc = dc_element.get("name")
        quorum = _flag(dc_element, "with_quorum")
    options = summary.find("cluster_options") if summary is not None else None

    states: dict[str, ResourceState] = {}
    parents: dict[str, str] = {}
    resources_root = root.find("resources")
    if resources_root is not None:
        for element, parent in _walk_resources(resources_root, None):
            state = _resource_state(element)
            known = states.get(state.resource_id)
            states[state.resource_id] = state if known is None else _merge_instances(known, state)
            if parent:
                parents[state.resource_id] = parent

    failures = _parse_failures(root)
    fail_counts = _parse_fail_counts(root)
    for resource_id, state in states.items():
        own_failures = tuple(f for rid, f in failures if rid == resource_id)
        counts = fail_counts.get(resource_id, {})
        states[resource_id] = replace(state, failures=own_failures, fail_count=max(counts.values(), default=0))

    return CrmMonSnapshot(
        nodes=_parse_nodes(root),
        resources=MappingProxyType(states),
        failures=tuple(f for _, f in failures),
        fail_counts=MappingProxyType({rid: MappingProxyType(c) for rid, c in fail_counts.items()}),
        dc=dc,
        quorum=quorum,
        cluster_name=_cluster_name(summary),
        maintenance_mode=_flag(options, "maintenance-mode") if options is not None else False,
        parents=MappingProxyType(parents),
    )


# ------------------------------------------------------------------------------------------------
# CIB configuration


def _nvpairs(blocks: Iterable[etree._Element]) -> Mapping[str, str]:
    """Merge nvpair blocks; the first value of a name wins, as Pacemaker does for equal scores.

    Rules inside blocks are not evaluated: a rule-bound value is read like any other.
    """
    values: dict[str, str] = {}
    for block in blocks:
        for pair in block.iterfind("nvpair"):
            name, value = pair.get("name"), pair.get("value")
            if name is not None and value is not None and name not in values:
                values[name] = value
    return MappingProxyType(values)


def _operations(primitive: etree._Element) -> tuple[OperationConfig, ...]:
    operations = []
    for op in primitive.iterfind("operations/op"):
        extra = {k: v for k, v in op.attrib.items() if k not in ("id", "name", "interval", "timeout")}
        operations.append(
            OperationConfig(
                op_id=op.get("id", ""),
                name=op.get("name", ""),
                interval=op.get("interval", "0"),
                timeout=op.get("timeout"),
                attributes=MappingProxyType({str(k): str(v) for k, v in extra.items()}),
            )
        )
    return tuple(operations)


def _set_members(constraint: etree._Element) -> list[tuple[str, ...]]:
    return [
        tuple(ref.get("id", "") for ref in resource_set.iterfind("resource_ref"))
        for resource_set in constraint.iterfind("resource_set")
    ]


def _locations(constraints: etree._Element | None) -> list[LocationConstraint]:
    found: list[LocationConstraint] = []
    if constraints is None:
        return found
    for element in constraints.iterfind("rsc_location"):
        # rsc-pattern (regular expression) constraints name no resource and are left out.
        names = [element.get("rsc")] if element.get("rsc") else [r for s in _set_members(element) for r in s]
        for name in names:
            if name:
                found.append(
                    LocationConstraint(
                        constraint_id=element.get("id", ""),
                        resource=name,
                        node=element.get("node"),
                        score=element.get("score"),
                        role=element.get("role") or element.get("rsc-role"),
                        resource_discovery=element.get("resource-discovery"),
                        has_rules=element.find("rule") is not None,
                    )
                )
    return found


def _colocations(constraints: etree._Element | None) -> list[ColocationConstraint]:
    found: list[ColocationConstraint] = []
    if constraints is None:
        return found
    for element in constraints.iterfind("rsc_colocation"):
        sets: list[tuple[str, ...]]
        if element.get("rsc"):
            sets = [(element.get("rsc", ""),), (element.get("with-rsc", ""),)]
            rsc_role, with_role = element.get("rsc-role"), element.get("with-rsc-role")
        else:
            sets = _set_members(element)
            first_set = element.find("resource_set")
            rsc_role = first_set.get("role") if first_set is not None else None
            with_role = None
        found.append(
            ColocationConstraint(
                constraint_id=element.get("id", ""),
                score=element.get("score"),
                resource_sets=tuple(sets),
                rsc_role=rsc_role,
                with_rsc_role=with_role,
            )
        )
    return found


def _primitive_parents(resources: etree._Element) -> Iterator[tuple[etree._Element, str | None]]:
    for element in resources.iter("primitive"):
        ancestor = element.getparent()
        parent: str | None = None
        while ancestor is not None and ancestor.tag != "resources":
            if ancestor.tag in _CONTAINERS:
                parent = parent or ancestor.get("id")
            ancestor = ancestor.getparent()
        yield element, parent


def _configuration(cib_text: str | bytes) -> etree._Element:
    root = _parse_or_backend_error(cib_text, "CIB")
    configuration = root if root.tag == "configuration" else root.find("configuration")
    if configuration is None:
        raise BackendError(BACKEND, f"the CIB has no <configuration> (root is <{root.tag}>)")
    return configuration


def parse_cib_primitives(cib_text: str | bytes) -> dict[str, PrimitiveConfig]:
    """Every primitive of a CIB (``cibadmin --query`` or a ``<configuration>``), by id.

    Each carries its params, meta, utilization, operations and the location and colocation
    constraints that name it (directly or through a resource set). Constraints naming the
    primitive's group or clone are attached to that container's id only, not to its members.
    """
    configuration = _configuration(cib_text)
    resources = configuration.find("resources")
    constraints = configuration.find("constraints")
    locations = _locations(constraints)
    colocations = _colocations(constraints)

    primitives: dict[str, PrimitiveConfig] = {}
    if resources is None:
        return primitives
    for element, parent in _primitive_parents(resources):
        resource_id = element.get("id", "")
        primitives[resource_id] = PrimitiveConfig(
            resource_id=resource_id,
            resource_class=element.get("class", ""),
            provider=element.get("provider"),
            agent_type=element.get("type", ""),
            params=_nvpairs(element.iterfind("instance_attributes")),
            meta=_nvpairs(element.iterfind("meta_attributes")),
            utilization=_nvpairs(element.iterfind("utilization")),
            operations=_operations(element),
            locations=tuple(c for c in locations if c.resource == resource_id),
            colocations=tuple(c for c in colocations if resource_id in c.resources),
            parent=parent,
        )
    return primitives


def parse_cib_cluster_name(cib_text: str | bytes) -> str | None:
    """The ``cluster-name`` cluster property (crm_mon 2.1.5 does not print it)."""
    configuration = _configuration(cib_text)
    for pair in configuration.iterfind("crm_config/cluster_property_set/nvpair"):
        if pair.get("name") == "cluster-name":
            return pair.get("value")
    return None
