"""The on-call timeline: what happened on the cluster, newest first, from every source there is.

Sources: Pacemaker's failures and operation history (crm_mon), vmconsole's task history (the
cluster's audit trail: who, from which host, with which result), and what a console saw itself
(node membership changes between two reads, libvirt lifecycle events of its host), which it keeps
in memory. Converting each source, merging and filtering are pure functions; ``read`` gathers the
cluster's part in one crm_mon call and one history read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vmconsole.backends import crm_mon
from vmconsole.core.services import Services
from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError, VmConsoleError
from vmconsole.domain.model import ClusterState, NodeState, NodeStatus
from vmconsole.domain.pacemaker_status import OperationHistoryEntry

FAILURE, OPERATION, NODE, LIBVIRT, TASK = "failure", "operation", "node", "libvirt", "task"
KINDS = (FAILURE, OPERATION, NODE, LIBVIRT, TASK)
INFO, WARNING, ERROR = "info", "warning", "error"

# crm_mon answers rc 7 ("not running") to a probe of a stopped resource: normal, not an event
_QUIET_RC = ("0", "7")
_INTERESTING_TASKS = frozenset({"start", "stop", "migrate_to", "migrate_from", "promote", "demote", "notify"})
_RELATIVE = re.compile(r"\s*(\d{1,6})\s*(s|sec|m|min|h|hr|d|day|days)\s*", re.IGNORECASE)
_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400, "days": 86400}
_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """One thing that happened. ``when`` is aware (UTC); ``summary`` is one line for a person."""

    when: datetime
    kind: str  # one of KINDS
    summary: str
    vm: str | None = None
    node: str | None = None
    who: str | None = None  # user@host, for tasks
    result: str | None = None  # a task's "ok", "failed"...; an operation's rc text
    task: str | None = None  # vmconsole's task id, for tasks
    action: str | None = None  # the operation: start, stop, monitor, clone, node-standby...
    detail: str = ""  # more lines for whoever opens the entry
    severity: str = INFO  # info, warning or error

    @property
    def user(self) -> str | None:
        return self.who.rpartition("@")[0] or self.who if self.who else None

    @property
    def host(self) -> str | None:
        """The host a task ran from (the part after '@' of ``who``)."""
        return self.who.rpartition("@")[2] if self.who and "@" in self.who else None


@dataclass(frozen=True)
class Timeline:
    entries: tuple[Entry, ...]
    problems: tuple[str, ...] = ()  # sources that could not be read, and why


# ---------------------------------------------------------------------------------------------- sources
def failure_entries(state: ClusterState) -> list[Entry]:
    """Pacemaker's recorded failures of every VM (they stay until a cleanup)."""
    entries: list[Entry] = []
    for vm in state.vms:
        failures = vm.resource.failures if vm.resource else ()
        if not failures and vm.last_failure is not None:
            failures = (vm.last_failure,)
        for failure in failures:
            if failure.when is None:
                continue
            entries.append(
                Entry(
                    when=failure.when,
                    kind=FAILURE,
                    summary=f"{failure.operation} failed on {failure.node}: "
                    + (failure.exit_reason or failure.exit_status),
                    action=failure.operation,
                    vm=vm.name,
                    node=failure.node,
                    result=failure.exit_status,
                    detail=f"rc={failure.exit_code}"
                    + (f", interval {failure.interval_ms} ms" if failure.interval_ms else ""),
                    severity=ERROR,
                )
            )
    return entries


def operation_entries(vm: str, operations: Iterable[OperationHistoryEntry]) -> list[Entry]:
    """The VM's operations as crm_mon keeps them (the last of each kind per node): starts, stops and
    migrations whatever their result, monitors and probes only when they failed."""
    entries: list[Entry] = []
    for operation in operations:
        attributes: Mapping[str, str] = operation.attributes
        task = attributes.get("task", "?")
        rc = attributes.get("rc", "?")
        when = crm_mon.parse_pacemaker_time(attributes.get("last-rc-change"))
        if when is None:
            continue
        if task not in _INTERESTING_TASKS and rc in _QUIET_RC:
            continue
        ok = rc == "0"
        rc_text = attributes.get("rc_text", "")
        exec_time = attributes.get("exec-time", "")
        entries.append(
            Entry(
                when=when,
                kind=OPERATION,
                summary=f"{task} on {operation.node}: {rc_text or 'rc=' + rc}"
                + (f" ({exec_time})" if exec_time and exec_time != "0ms" else ""),
                vm=vm,
                node=operation.node,
                result=rc_text or rc,
                action=task,
                detail=f"rc={rc}, call {attributes.get('call', '?')}",
                severity=INFO if ok else ERROR,
            )
        )
    return entries


def history_entries(records: Iterable[Mapping[str, Any]]) -> list[Entry]:
    """vmconsole's audit trail: every task of any vmconsole on the cluster, with who ran it."""
    entries: list[Entry] = []
    for record in records:
        when = _parse_iso(record.get("finished")) or _parse_iso(record.get("started"))
        if when is None:
            continue
        result = str(record.get("result", "") or "")
        operation = str(record.get("operation", "") or "?")
        message = str(record.get("message", "") or "")
        seconds = record.get("seconds")
        took = f" in {seconds} s" if isinstance(seconds, int | float) else ""
        entries.append(
            Entry(
                when=when,
                kind=TASK,
                summary=f"{operation} {result or '?'}{took}: {message}" if message else f"{operation} {result}{took}",
                vm=str(record["vm"]) if record.get("vm") else None,
                who=str(record["who"]) if record.get("who") else None,
                result=result or None,
                task=str(record["task"]) if record.get("task") else None,
                action=operation,
                detail=_args_text(record.get("args")),
                severity={"ok": INFO, "cancelled": WARNING}.get(result, ERROR),
            )
        )
    return entries


def node_changes(before: ClusterState | None, after: ClusterState, when: datetime) -> list[Entry]:
    """Node membership changes between two reads: joined, left, online, standby, offline..."""
    if before is None:
        return []
    old = {n.name: n for n in before.nodes}
    new = {n.name: n for n in after.nodes}
    entries: list[Entry] = []
    for name in sorted(set(old) | set(new)):
        was, now = old.get(name), new.get(name)
        if was is not None and now is not None and was.status is now.status:
            continue
        if now is None:
            summary, severity = f"node {name} left the cluster (was {was.status.value if was else '?'})", WARNING
        elif was is None:
            summary, severity = f"node {name} joined the cluster ({now.status.value})", INFO
        else:
            summary, severity = f"node {name}: {was.status.value} → {now.status.value}", _node_severity(now)
        entries.append(Entry(when=when, kind=NODE, summary=summary, node=name, severity=severity))
    if before.quorum is not None and after.quorum is not None and before.quorum != after.quorum:
        entries.append(
            Entry(
                when=when,
                kind=NODE,
                summary="quorum regained" if after.quorum else "quorum LOST",
                severity=INFO if after.quorum else ERROR,
            )
        )
    return entries


def _node_severity(node: NodeState) -> str:
    if node.status in (NodeStatus.OFFLINE, NodeStatus.UNCLEAN):
        return ERROR
    return WARNING if node.status in (NodeStatus.STANDBY, NodeStatus.MAINTENANCE) else INFO


def lifecycle_entry(domain: str, event: str, when: datetime, host: str | None = None) -> Entry:
    """A libvirt lifecycle event of a domain, as a console on ``host`` saw it."""
    severity = ERROR if "crash" in event.lower() or "fail" in event.lower() else INFO
    where = f" on {host}" if host else ""
    return Entry(
        when=when, kind=LIBVIRT, summary=f"libvirt{where}: {domain} {event}", vm=domain, node=host, severity=severity
    )


# ---------------------------------------------------------------------------------------------- merge and filter
def merge(*groups: Iterable[Entry]) -> list[Entry]:
    """Every entry once, newest first. A failed operation Pacemaker also lists as a failure is kept
    once, as the failure (it carries the exit reason)."""
    lists = [list(group) for group in groups]
    failures = {_failure_key(e) for group in lists for e in group if e.kind == FAILURE}
    seen: set[tuple[object, ...]] = set()
    merged: list[Entry] = []
    for group in lists:
        for entry in group:
            if entry.kind == OPERATION and entry.severity == ERROR and _failure_key(entry) in failures:
                continue
            key = (entry.when, entry.kind, entry.summary, entry.vm, entry.node, entry.task)
            if key in seen:
                continue
            seen.add(key)
            merged.append(entry)
    merged.sort(key=lambda e: (e.when, KINDS.index(e.kind) if e.kind in KINDS else 0), reverse=True)
    return merged


def _failure_key(entry: Entry) -> tuple[object, ...]:
    return (entry.vm, entry.node, entry.action, int(entry.when.timestamp()))


@dataclass(frozen=True)
class TimelineFilter:
    """Which entries to show: all of ``vm``, ``node``, ``kinds`` and ``since`` must match (None: any)."""

    vm: str | None = None
    node: str | None = None
    kinds: frozenset[str] = field(default_factory=lambda: frozenset(KINDS))
    since: datetime | None = None

    def match(self, entry: Entry) -> bool:
        if self.vm is not None and entry.vm != self.vm:
            return False
        if self.node is not None and entry.node != self.node and entry.host != self.node:
            return False
        if entry.kind not in self.kinds:
            return False
        return self.since is None or entry.when >= self.since

    def apply(self, entries: Iterable[Entry]) -> list[Entry]:
        return [e for e in entries if self.match(e)]


def parse_since(text: str, now: datetime) -> datetime | None:
    """``15m``, ``2h``, ``1d`` (that long ago) or a date and time (``validate.parse_datetime``);
    empty means no limit. ValidationError (field ``since``) otherwise."""
    if not text.strip():
        return None
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return now - timedelta(seconds=int(relative.group(1)) * _SECONDS[relative.group(2).lower()])
    try:
        return validate.parse_datetime(text, field="since").value
    except ValidationError as exc:
        raise ValidationError(f"{exc.message}; or a span such as 15m, 2h, 1d", field="since") from exc


# ---------------------------------------------------------------------------------------------- reading
def read(services: Services, state: ClusterState, vm: str | None = None, *, months: int = 1) -> Timeline:
    """The cluster's part of the timeline (failures, operations, task history) for every VM of
    ``state`` or only ``vm``; what cannot be read is said in ``problems``, the rest is kept."""
    problems: list[str] = []
    names: Sequence[str] = [vm] if vm is not None else [v.name for v in state.vms]
    groups: list[list[Entry]] = [
        [e for e in failure_entries(state) if vm is None or e.vm == vm],
    ]
    try:
        operations = services.pacemaker.operations_xml()
        groups.append(
            [e for name in names for e in operation_entries(name, crm_mon.parse_operation_history(operations, name))]
        )
    except VmConsoleError as exc:
        problems.append(f"Pacemaker's operation history: {exc}")
    try:
        records = services.history(months)
        groups.append([e for e in history_entries(records) if vm is None or e.vm == vm])
    except VmConsoleError as exc:
        problems.append(f"vmconsole's task history: {exc}")
    return Timeline(tuple(merge(*groups)), tuple(problems))


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _args_text(args: object) -> str:
    if not isinstance(args, Mapping) or not args:
        return ""
    return ", ".join(f"{k} = {v}" for k, v in sorted(args.items()))
