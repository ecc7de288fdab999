"""Read ``crm_mon --output-as xml``: nodes, resources, failures, fail-counts, operation history.

Written against Pacemaker 2.1.5 (crm_mon ``api-version="2.25"``); the fixtures in
``tests/fixtures/pacemaker`` are real outputs of that tool. Pure functions: text in, frozen records
out.

Containers: crm_mon nests the members of a ``<group>``, ``<clone>`` or ``<bundle>`` inside it. Each
primitive is reported under its own id; the instances of a clone (listed once per node, all with
the same id, or ``id:N`` for unique clones) are merged into one ``ResourceState`` whose ``nodes``
are all the nodes an instance runs on. ``CrmMonSnapshot.parents`` says which container holds which
primitive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TypeVar

from lxml import etree

from vmconsole.backends.cib import BACKEND, CONTAINERS, flag, integer, parse_tool_output
from vmconsole.domain.errors import BackendError
from vmconsole.domain.model import Failure, NodeState, NodeStatus, ResourceState
from vmconsole.domain.pacemaker_status import CrmMonSnapshot, OperationHistoryEntry
from vmconsole.domain.units import duration_ms

V = TypeVar("V")


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


# ------------------------------------------------------------------------------------------------
# crm_mon


def _check_status(root: etree._Element) -> None:
    """Raise the error crm_mon reported (rc 102 "Not connected" when no cluster runs here)."""
    if root.tag != "pacemaker-result":
        raise BackendError(BACKEND, f"crm_mon answered <{root.tag}>, not <pacemaker-result>")
    status = root.find("status")
    if status is None:
        return
    code = integer(status.get("code"), 0)
    if code == 0:
        return
    message = status.get("message") or f"error {code}"
    errors = [(e.text or "").strip() for e in status.iterfind("errors/error")]
    detail = "; ".join(e for e in errors if e)
    hint = "is the cluster running on this node?" if code == 102 else None
    raise BackendError(BACKEND, f"crm_mon: {message} (code {code})" + (f": {detail}" if detail else ""), hint=hint)


def _node_status(element: etree._Element) -> NodeStatus:
    """Unclean first (it needs fencing), then offline, pending, maintenance, standby, online.

    Pacemaker also reports a joining node as standby; it is shown as pending, for it is no one's choice."""
    if flag(element, "unclean"):
        return NodeStatus.UNCLEAN
    if not flag(element, "online"):
        return NodeStatus.OFFLINE
    if flag(element, "pending"):
        return NodeStatus.PENDING
    if flag(element, "maintenance"):
        return NodeStatus.MAINTENANCE
    if flag(element, "standby") or flag(element, "standby_onfail"):
        return NodeStatus.STANDBY
    return NodeStatus.ONLINE


def _parse_nodes(root: etree._Element) -> tuple[NodeState, ...]:
    return tuple(
        NodeState(
            name=node.get("name", ""),
            node_id=node.get("id", ""),
            status=_node_status(node),
            is_dc=flag(node, "is_dc"),
            kind=node.get("type", "member"),
            resources_running=integer(node.get("resources_running")),
        )
        for node in root.iterfind("nodes/node")
    )


def _walk_resources(element: etree._Element, parent: str | None) -> Iterator[tuple[etree._Element, str | None]]:
    """Every <resource> under ``element``, with the id of its nearest group/clone/bundle."""
    for child in element:
        if child.tag == "resource":
            yield child, parent
        elif child.tag in CONTAINERS:
            yield from _walk_resources(child, _base_id(child.get("id", "")) or parent)
        elif child.tag == "replica":  # bundle replicas: no id of their own worth keeping
            yield from _walk_resources(child, parent)


def _resource_state(element: etree._Element) -> ResourceState:
    return ResourceState(
        resource_id=_base_id(element.get("id", "")),
        agent=element.get("resource_agent", ""),
        role=element.get("role", "Unknown"),
        target_role=element.get("target_role"),
        active=flag(element, "active"),
        managed=flag(element, "managed", default=True),
        blocked=flag(element, "blocked"),
        failed=flag(element, "failed"),
        orphaned=flag(element, "orphaned"),
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
            exit_code=integer(element.get("exitcode"), -1),
            when=parse_pacemaker_time(element.get("last-rc-change")),
            interval_ms=duration_ms(element.get("interval")),
        )
        failures.append((_failure_resource(element), failure))
    return failures


def _parse_fail_counts(root: etree._Element) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for node in root.iterfind("node_history/node"):
        for history in node.iterfind("resource_history"):
            count = integer(history.get("fail-count"))
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
    root = parse_tool_output(text, "crm_mon output")
    _check_status(root)

    summary = root.find("summary")
    dc_element = summary.find("current_dc") if summary is not None else None
    dc: str | None = None
    quorum: bool | None = None
    if dc_element is not None and flag(dc_element, "present"):
        dc = dc_element.get("name")
        quorum = flag(dc_element, "with_quorum")
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
        maintenance_mode=flag(options, "maintenance-mode") if options is not None else False,
        parents=MappingProxyType(parents),
    )


def parse_operation_history(text: str | bytes, resource: str) -> list[OperationHistoryEntry]:
    """The operation history of one resource on every node (``crm_mon --include=operations``)."""
    root = parse_tool_output(text, "crm_mon output")
    return [
        OperationHistoryEntry(node.get("name", ""), MappingProxyType({str(k): str(v) for k, v in op.attrib.items()}))
        for node in root.iterfind("node_history/node")
        for history in node.iterfind("resource_history")
        if history.get("id") == resource
        for op in history.iterfind("operation_history")
    ]


def merge_resources(old: CrmMonSnapshot, subset: CrmMonSnapshot, resources: Set[str]) -> CrmMonSnapshot:
    """``old`` with ``resources`` as ``subset`` reports them: crm_mon asked about those resources alone,
    from a CIB whose shared parts read as ``old``'s did (``cib_delta``). A resource ``subset`` does not
    report is gone; each node's count of running resources moves with them."""
    moved: dict[str, int] = {}
    for resource_id in resources:
        for side, sign in ((old.resources.get(resource_id), -1), (subset.resources.get(resource_id), 1)):
            for node in side.nodes if side is not None else ():
                moved[node] = moved.get(node, 0) + sign
    nodes = tuple(
        replace(n, resources_running=n.resources_running + moved[n.name]) if moved.get(n.name) else n for n in old.nodes
    )

    def merged(mapping_old: Mapping[str, V], mapping_new: Mapping[str, V]) -> Mapping[str, V]:
        kept = {k: v for k, v in mapping_old.items() if k not in resources}
        kept.update((k, v) for k, v in mapping_new.items() if k in resources)
        return MappingProxyType(kept)

    states = merged(old.resources, subset.resources)
    return replace(
        old,
        nodes=nodes,
        resources=states,
        failures=tuple(f for state in states.values() for f in state.failures),
        fail_counts=merged(old.fail_counts, subset.fail_counts),
        parents=merged(old.parents, subset.parents),
    )
