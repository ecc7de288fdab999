"""The on-call timeline's pure part: each source as entries, the merge (newest first, a failure once)
and the filter."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from vmconsole.core import timeline
from vmconsole.core.timeline import Entry, TimelineFilter
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import ClusterState, Failure, NodeState, NodeStatus, ResourceState, VmState, VmStatus
from vmconsole.domain.pacemaker_status import OperationHistoryEntry

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
FAILED_AT = NOW - timedelta(minutes=7)


def resource(*failures: Failure) -> ResourceState:
    return ResourceState(
        resource_id="legacy",
        agent="ocf:seapath:VirtualDomain",
        role="Stopped",
        target_role="Started",
        active=False,
        managed=True,
        blocked=False,
        failed=True,
        orphaned=False,
        nodes=(),
        failures=failures,
    )


FAILURE = Failure("start", "hv2", "error", "Failed to start virtual domain legacy.", 1, FAILED_AT)


def state(**changes: object) -> ClusterState:
    base = ClusterState(
        taken_at=NOW,
        nodes=(NodeState("hv1", "1", NodeStatus.ONLINE), NodeState("hv2", "2", NodeStatus.ONLINE)),
        vms=(
            VmState("legacy", VmStatus.FAILED, None, True, resource=resource(FAILURE)),
            VmState("web1", VmStatus.STARTED, "hv1", True),
        ),
        quorum=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def op(node: str, **attributes: str) -> OperationHistoryEntry:
    return OperationHistoryEntry(node, MappingProxyType(attributes))


def test_failures_become_error_entries_with_their_reason() -> None:
    [entry] = timeline.failure_entries(state())
    assert entry.kind == "failure" and entry.vm == "legacy" and entry.node == "hv2" and entry.severity == "error"
    assert entry.when == FAILED_AT and "Failed to start virtual domain legacy." in entry.summary
    assert entry.action == "start"


def test_operations_keep_starts_stops_and_failed_monitors_only() -> None:
    entries = timeline.operation_entries(
        "web1",
        [
            op("hv1", task="start", rc="0", rc_text="ok", **{"last-rc-change": "2026-05-04 11:00:00Z"}),
            op(
                "hv1",
                task="monitor",
                rc="0",
                rc_text="ok",
                interval="10000ms",
                **{"last-rc-change": "2026-05-04 11:00:01Z"},
            ),
            op("hv2", task="monitor", rc="7", rc_text="not running", **{"last-rc-change": "2026-05-04 10:00:00Z"}),
            op(
                "hv1",
                task="monitor",
                rc="1",
                rc_text="error",
                interval="10000ms",
                **{"last-rc-change": "2026-05-04 11:30:00Z"},
            ),
            op("hv1", task="stop", rc="0", rc_text="ok"),  # no time: cannot be placed
        ],
    )
    assert [(e.action, e.severity) for e in entries] == [("start", "info"), ("monitor", "error")]
    assert entries[0].summary == "start on hv1: ok" and entries[0].when == datetime(2026, 5, 4, 11, 0, tzinfo=UTC)


def test_history_records_say_who_from_which_host_and_the_result() -> None:
    [ok, failed, broken] = timeline.history_entries(
        [
            {
                "task": "a1",
                "operation": "snapshot-create",
                "vm": "db1",
                "who": "ops@hv1",
                "result": "ok",
                "finished": "2026-05-04T11:00:02+00:00",
                "seconds": 1.2,
                "message": "snapshot db1 as nightly",
                "args": {"snapshot": "nightly"},
            },
            {
                "task": "a2",
                "operation": "start",
                "vm": "legacy",
                "who": "ann@hv2",
                "result": "failed",
                "finished": "2026-05-04T11:53:00+00:00",
            },
            {"task": "a3", "operation": "start", "finished": "not a date"},
            {"task": "a4", "operation": "start", "result": "cancelled", "finished": "2026-05-04T11:54:00"},
        ],
    )
    assert ok.who == "ops@hv1" and ok.user == "ops" and ok.host == "hv1" and ok.task == "a1" and ok.severity == "info"
    assert ok.summary == "snapshot-create ok in 1.2 s: snapshot db1 as nightly" and ok.detail == "snapshot = nightly"
    assert failed.severity == "error" and failed.host == "hv2"
    assert broken.task == "a4" and broken.severity == "warning" and broken.when.tzinfo is not None  # naive read as UTC


def test_node_changes_between_two_reads() -> None:
    before = state()
    after = state(
        nodes=(NodeState("hv1", "1", NodeStatus.STANDBY), NodeState("hv3", "3", NodeStatus.ONLINE)), quorum=False
    )
    entries = timeline.node_changes(before, after, NOW)
    summaries = {e.summary: e.severity for e in entries}
    assert summaries == {
        "node hv1: online → standby": "warning",
        "node hv2 left the cluster (was online)": "warning",
        "node hv3 joined the cluster (online)": "info",
        "quorum LOST": "error",
    }
    assert timeline.node_changes(None, after, NOW) == [] and timeline.node_changes(after, after, NOW) == []


def test_merge_is_newest_first_and_a_failed_operation_appears_once_as_its_failure() -> None:
    failure = timeline.failure_entries(state())
    same_failure_as_operation = timeline.operation_entries(
        "legacy", [op("hv2", task="start", rc="1", rc_text="error", **{"last-rc-change": FAILED_AT.isoformat()})]
    )
    event = timeline.lifecycle_entry("web1", "stopped (shutdown)", NOW - timedelta(minutes=1), "hv1")
    task = Entry(NOW - timedelta(hours=1), "task", "start ok", vm="web1", task="t1")
    merged = timeline.merge(same_failure_as_operation, failure, [event], [task, task])
    assert [e.kind for e in merged] == ["libvirt", "failure", "task"]
    assert merged[0].summary == "libvirt on hv1: web1 stopped (shutdown)"


def test_filter_by_vm_node_kind_and_time() -> None:
    entries = [
        Entry(NOW - timedelta(minutes=5), "failure", "x", vm="legacy", node="hv2"),
        Entry(NOW - timedelta(hours=2), "task", "y", vm="web1", who="ops@hv1"),
        Entry(NOW - timedelta(minutes=1), "node", "z", node="hv1"),
    ]
    assert [e.summary for e in TimelineFilter(vm="legacy").apply(entries)] == ["x"]
    assert [e.summary for e in TimelineFilter(node="hv1").apply(entries)] == ["y", "z"]  # ran from hv1, or on it
    assert [e.summary for e in TimelineFilter(kinds=frozenset({"task"})).apply(entries)] == ["y"]
    since = timeline.parse_since("1h", NOW)
    assert [e.summary for e in TimelineFilter(since=since).apply(entries)] == ["x", "z"]


def test_since_takes_a_span_or_a_date_and_says_what_is_wrong() -> None:
    assert timeline.parse_since("15m", NOW) == NOW - timedelta(minutes=15)
    assert timeline.parse_since(" 2 d ", NOW) == NOW - timedelta(days=2)
    assert timeline.parse_since("", NOW) is None
    assert timeline.parse_since("2026-05-04T10:00Z", NOW) == datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
    with pytest.raises(ValidationError) as raised:
        timeline.parse_since("yesterday-ish", NOW)
    assert raised.value.field == "since" and "15m, 2h, 1d" in raised.value.message


def test_read_gathers_operations_and_history_and_reports_what_it_cannot_read() -> None:
    from vmconsole.domain.errors import BackendTimeout

    class Pacemaker:
        def operations_xml(self) -> str:
            raise BackendTimeout("pacemaker", "crm_mon did not answer within 30 s")

    class Services:
        pacemaker = Pacemaker()

        def history(self, months: int = 3) -> list[dict[str, object]]:
            return [{"task": "t", "operation": "stop", "vm": "web1", "result": "ok", "finished": NOW.isoformat()}]

    found = timeline.read(Services(), state(), "web1")  # type: ignore[arg-type]
    assert [e.kind for e in found.entries] == ["task"]
    assert found.problems == ("Pacemaker's operation history: pacemaker: crm_mon did not answer within 30 s",)
    everything = timeline.read(Services(), state())  # type: ignore[arg-type]
    assert [e.kind for e in everything.entries] == ["task", "failure"]
