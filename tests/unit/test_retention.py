"""Retention policy over a synthetic history (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vmconsole.core.snapshots import RetentionPolicy, retention_selection
from vmconsole.domain.model import Snapshot

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def history(hours: list[int]) -> list[Snapshot]:
    return [Snapshot(name=f"s{h}", kind="group", created=NOW - timedelta(hours=h), disks=("system_vm",)) for h in hours]


def test_keep_last_n() -> None:
    removed, kept = retention_selection(history([1, 2, 3, 4, 5]), RetentionPolicy(keep_last=2), NOW)
    assert sorted(kept) == ["s1", "s2"]
    assert [s.name for s in removed] == ["s3", "s4", "s5"]


def test_keep_one_per_day_for_d_days_plus_last_n() -> None:
    # every 6 hours for 5 days: 20 snapshots
    snaps = history(list(range(0, 120, 6)))
    removed, kept = retention_selection(snaps, RetentionPolicy(keep_last=3, keep_daily=3), NOW)
    days = {s.created.date() for s in snaps if s.name in kept and s.created}
    assert {"s0", "s6", "s12"} <= set(kept)  # the last three
    assert len(days) == 3  # one per day for the last three days
    assert all(s.created and s.created.date() >= (NOW - timedelta(days=2)).date() for s in snaps if s.name in kept)
    assert len(removed) == len(snaps) - len(kept)


def test_the_newest_of_each_day_is_the_one_kept() -> None:
    removed, kept = retention_selection(history([1, 3, 25, 27]), RetentionPolicy(keep_daily=2), NOW)
    assert sorted(kept) == ["s1", "s25"]
    assert sorted(s.name for s in removed) == ["s27", "s3"]


def test_empty_policy_removes_everything() -> None:
    removed, kept = retention_selection(history([1, 2]), RetentionPolicy(), NOW)
    assert kept == {}
    assert len(removed) == 2
