"""A VM's snapshots as the listing builds them from its disks (as librbd describes them on the lab),
and vmconsole's records tied to the very snapshot they were written for (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

from vmconsole.backends.rbd import ImageInfo, ImageSnapshot
from vmconsole.core.snapshots.create import instant_note
from vmconsole.core.snapshots.instant import Instant
from vmconsole.core.state import SNAP_IDS, build_snapshots, record_of

T0 = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
T1 = datetime(2026, 12, 3, 4, 5, tzinfo=UTC)


def user(snap_id: int, name: str, when: datetime, protected: bool = False) -> ImageSnapshot:
    return ImageSnapshot(snap_id, name, "user", 64 << 20, when, protected)


def member(snap_id: int, group_snapshot: str, when: datetime) -> ImageSnapshot:
    return ImageSnapshot(snap_id, f".group.2_{snap_id:x}", "group", 64 << 20, when, False, group_snapshot)


def disk(name: str, *snaps: ImageSnapshot) -> ImageInfo:
    return ImageInfo(name, f"id-{name}", 64 << 20, {}, snaps, "db1")


# what the lab shows for a VM with one data disk: a vmconsole image snapshot on both disks, a group
# snapshot, and a vm_manager snapshot made on the system disk only
DISKS = [
    disk("system_db1", user(4, "s1", T0), member(5, "g1", T1), user(6, "vmm", T1)),
    disk("data_db1_0", user(7, "s1", T0), member(8, "g1", T1)),
]


def test_a_name_on_every_disk_is_one_vm_snapshot() -> None:
    snaps = {s.name: s for s in build_snapshots("db1", DISKS, {})}
    assert sorted(snaps) == ["g1", "s1", "vmm"]
    assert snaps["s1"].kind == "image" and snaps["s1"].disks == ("system_db1", "data_db1_0")
    assert snaps["s1"].missing_on == ()
    assert snaps["g1"].kind == "group" and snaps["g1"].disks == ("system_db1", "data_db1_0")
    assert snaps["vmm"].kind == "image" and snaps["vmm"].missing_on == ("data_db1_0",)


def test_a_record_belongs_to_the_snapshot_it_was_written_for() -> None:
    config = {"xml": "<domain/>", "_priority": "3"}
    records = {
        "s1": {"config": config, "kind": "image", SNAP_IDS: {"system_db1": 4, "data_db1_0": 7}},
        "g1": {"config": config, "kind": "group", SNAP_IDS: {"system_db1": 5, "data_db1_0": 8}},
        # written for an earlier "vmm" that another tool removed; this one has another id
        "vmm": {"config": config, "protected": True, SNAP_IDS: {"system_db1": 2}},
    }
    snaps = {s.name: s for s in build_snapshots("db1", DISKS, records)}
    assert dict(snaps["s1"].metadata) == config and dict(snaps["g1"].metadata) == config
    assert dict(snaps["vmm"].metadata) == {} and not snaps["vmm"].protected


def test_record_matching_rules() -> None:
    old = {"config": {}}  # an older vmconsole wrote no ids: trusted as before
    assert record_of(old, {"system_db1": 9}) is old
    stamped = {SNAP_IDS: {"system_db1": 4, "data_db1_0": 7}}
    assert record_of(stamped, {"system_db1": 4}) is stamped  # a disk removed since: still the same snapshot
    assert record_of(stamped, {"system_db1": 4, "data_db1_0": 70}) == {}
    assert record_of(stamped, {"data_db1_1": 4}) == {}  # no disk in common


def test_what_a_result_says_of_the_instant() -> None:
    assert instant_note(Instant("paused", 0.1234, "", False)) == "paused 0.123 s"
    assert instant_note(Instant("frozen", 0.5, "", True)) == "filesystems frozen 0.500 s"
    assert instant_note(Instant("stopped", None, "", True)) == "the VM was not running"
    assert instant_note(Instant("single", None, "", False)) == "crash-consistent"
    assert Instant("paused", 0.2, "db1 paused for 0.200 s", False).to_dict() == {
        "method": "paused",
        "seconds": 0.2,
        "detail": "db1 paused for 0.200 s",
        "consistent": False,
    }
