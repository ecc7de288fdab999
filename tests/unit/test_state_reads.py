"""The state read's fast paths, on recorded data: RBD headers decoded without opening an image, VMs
kept as they were when their objects read the same, Pacemaker asked only what changed.

``tests/fixtures/rbd/scale0020.json`` is the raw omap of one VM of the scale fixture (a system and a
data disk, 10 group snapshots; its ``xml`` shortened), recorded from the lab with Ceph 16.2, with what
librbd's public API said of the same images' snapshots.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lxml import etree

from vmconsole.backends import cib
from vmconsole.backends.crm_mon import parse_crm_mon
from vmconsole.backends.rbd_headers import decode_image_snapshot, image_header
from vmconsole.core.pacemaker_state import PacemakerPart, PacemakerReader
from vmconsole.core.state import CephReader, StateReader, build_vm
from vmconsole.domain.errors import BackendError
from vmconsole.domain.model import VmStatus
from vmconsole.domain.pacemaker_status import CrmMonSnapshot

PACEMAKER_FIXTURES = Path(__file__).parent.parent / "fixtures" / "pacemaker"
RECORDED = json.loads((Path(__file__).parent.parent / "fixtures" / "rbd" / "scale0020.json").read_text())
# two snapshot entries as librbd 16.2 wrote them: a group snapshot's member, and a protected user snapshot
GROUP_ENTRY = bytes.fromhex(
    "08087c0000004d01000000000000210000002e67726f75702e335f31313135393432313166325f313131353566623830313163"
    "000000040000000000000000000000000001012b0000000100000003000000000000000b00000031313135393432313166320c"
    "000000313131353566623830313163d7ed106b11a8453a0000000000"
)
USER_ENTRY = bytes.fromhex(
    "0808390000009c3a000000000000050000007573657231000080000000000002000000000000000001010400000000000000"
    "f2ef106b206824340000000000"
)


def test_a_group_snapshot_entry_reads_as_librbd_says() -> None:
    entry = decode_image_snapshot(GROUP_ENTRY)
    assert (entry.snap_id, entry.name, entry.size) == (0x14D, ".group.3_111594211f2_11155fb8011c", 64 << 20)
    assert entry.namespace == "group" and entry.group_snapshot_id == "11155fb8011c"
    assert not entry.protected
    assert entry.created is not None and entry.created.isoformat() == "2026-12-03T04:19:35+00:00"


def test_a_protected_user_snapshot_reads_protected() -> None:
    entry = decode_image_snapshot(USER_ENTRY)
    assert (entry.name, entry.namespace, entry.protected, entry.group_snapshot_id) == ("user1", "user", True, None)
    assert entry.created is not None and entry.created.isoformat() == "2026-12-03T04:28:34+00:00"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x07\x01" + GROUP_ENTRY[2:],  # an older encoding (before Nautilus): not guessed at
        GROUP_ENTRY[:40],  # cut short
        b"",
    ],
)
def test_an_entry_that_surprises_is_refused_not_guessed(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_image_snapshot(raw)


def test_an_image_whose_entries_surprise_says_so_and_keeps_the_rest() -> None:
    header = image_header("abc", {"size": (8 << 20).to_bytes(8, "little"), "snapshot_0000000000000001": b"\x01"})
    assert header.snapshots is None  # the reader opens this image instead
    assert header.size == 8 << 20 and header.snapshot_ids == (1,)


class RecordedSession:
    """An ``RbdSession`` answering the state read from recorded objects (and nothing else)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, bytes]] = {
            oid: {k: bytes.fromhex(v) for k, v in omap.items()} for oid, omap in RECORDED["objects"].items()
        }
        self.batches: list[list[str]] = []
        self.opened: list[str] = []

    def health(self) -> tuple[str, list[str]]:
        return "HEALTH_OK", []

    def group_ids(self) -> dict[str, str]:
        return dict(RECORDED["group_ids"])

    def image_ids(self) -> dict[str, str]:
        return dict(RECORDED["image_ids"])

    def omap_get_many(self, oids: Sequence[str]) -> dict[str, dict[str, bytes] | None]:
        self.batches.append(list(oids))
        return {oid: dict(self.objects[oid]) if oid in self.objects else None for oid in oids}

    def omap_stream(self, oids: Sequence[str]) -> Iterator[tuple[str, dict[str, bytes] | None]]:
        yield from self.omap_get_many(oids).items()

    def image_info(self, name: str) -> Any:
        self.opened.append(name)
        raise AssertionError("the fast path opens no image")


def test_a_vm_reads_from_its_headers_as_librbd_lists_it_without_opening_an_image() -> None:
    session = RecordedSession()
    part = CephReader().read(session, None)  # type: ignore[arg-type]
    vm = RECORDED["vm"]
    assert part.problems == ()
    assert part.groups[vm] == [f"data_{vm}_0", f"system_{vm}"]
    for image, expected in RECORDED["librbd_snapshots"].items():
        got = part.images[image].snapshots
        assert [
            [
                s.snap_id,
                s.name,
                s.namespace,
                s.group_snap_name,
                s.created.isoformat() if s.created else None,
                s.protected,
                s.size,
            ]
            for s in sorted(got, key=lambda s: s.snap_id)
        ] == sorted(expected)
    assert part.images[f"system_{vm}"].metadata["vm_name"] == vm
    assert session.opened == []
    assert len(session.batches) == 1  # one batch of reads for the whole pool


def test_a_vm_whose_objects_read_the_same_is_the_same_and_a_change_is_seen() -> None:
    session = RecordedSession()
    reader = CephReader()
    vm = RECORDED["vm"]
    first = reader.read(session, None)  # type: ignore[arg-type]
    second = reader.read(session, None)  # type: ignore[arg-type]
    assert second.tokens[vm] is first.tokens[vm]
    system = f"rbd_header.{RECORDED['image_ids'][f'system_{vm}']}"
    session.objects[system]["metadata_owner"] = b"someone else"
    third = reader.read(session, None)  # type: ignore[arg-type]
    assert third.tokens[vm] is not first.tokens[vm]
    assert third.images[f"system_{vm}"].metadata["owner"] == "someone else"


class CountingPacemaker:
    """A ``PacemakerClient`` answering with a recorded CIB the test edits, counting what it is asked.

    crm_mon answers with the recorded answer of the same scenario; the calls say whether it was asked
    about the whole CIB, the live cluster or some resources alone."""

    def __init__(self, scenario: str = "healthy") -> None:
        self.cib = cib.parse_cib((PACEMAKER_FIXTURES / f"{scenario}.cib.xml").read_text())
        self.answer = parse_crm_mon((PACEMAKER_FIXTURES / f"{scenario}.crm_mon.xml").read_text())
        self.calls: list[str] = []
        self.while_status_is_read: Callable[[], None] | None = None  # another tool's change, meanwhile
        self.crm_mon_fails = False

    def change(self, xpath: str, name: str, value: str, *, configuration: bool) -> None:
        """Edit the CIB as Pacemaker would: a configuration change is a new epoch, a status change a new
        num_updates."""
        found = self.cib.xpath(xpath)
        assert isinstance(found, list) and found and isinstance(found[0], etree._Element), xpath
        found[0].set(name, value)
        if configuration:
            self.cib.set("epoch", str(int(self.cib.get("epoch", "0")) + 1))
            self.cib.set("num_updates", "0")
        else:
            self.cib.set("num_updates", str(int(self.cib.get("num_updates", "0")) + 1))

    def cib_header(self) -> dict[str, str]:
        self.calls.append("version")
        return cib.attributes(self.cib)

    def cib_xml(self) -> str:
        self.calls.append("whole CIB")
        return etree.tostring(self.cib, encoding="unicode")

    def cib_status_xml(self) -> str:
        self.calls.append("status section")
        if self.while_status_is_read is not None:
            self.while_status_is_read()
        status = self.cib.find("status")
        assert status is not None
        return etree.tostring(status, encoding="unicode", pretty_print=True)

    def status(self, cib_text: str | None = None) -> CrmMonSnapshot:
        if self.crm_mon_fails:
            self.calls.append("crm_mon failed")
            raise BackendError("pacemaker", "crm_mon failed: signal 9")
        if cib_text is None:
            self.calls.append("crm_mon")
        else:
            asked = sorted(str(p.get("id")) for p in cib.parse_cib(cib_text).iterfind("configuration/resources/*"))
            everything = [str(p.get("id")) for p in self.cib.iterfind("configuration/resources/*")]
            self.calls.append("crm_mon of the whole CIB" if asked == sorted(everything) else f"crm_mon about {asked}")
        return self.answer


def reader_on(pacemaker: CountingPacemaker) -> StateReader:
    reader = StateReader.__new__(StateReader)
    reader.pacemaker = pacemaker  # type: ignore[assignment]
    reader._pacemaker = PacemakerReader(pacemaker)  # type: ignore[arg-type]
    return reader


def test_pacemaker_is_asked_only_what_changed() -> None:
    pacemaker = CountingPacemaker()
    reader = reader_on(pacemaker)
    first = reader.pacemaker_part()
    # a first read: one query of the whole CIB (its version in it), crm_mon fed that CIB
    assert pacemaker.calls == ["whole CIB", "crm_mon of the whole CIB"]
    assert first.cluster_name == "seapath" and reader._pacemaker.version == "0.23.42"
    pacemaker.calls.clear()
    assert reader.pacemaker_part() is first  # nothing changed: the version alone
    assert pacemaker.calls == ["version"]

    def after(xpath: str, name: str, value: str, *, configuration: bool) -> PacemakerPart:
        pacemaker.calls.clear()
        pacemaker.change(xpath, name, value, configuration=configuration)
        return reader.pacemaker_part()

    # a status change of one resource (an operation's result): the status section, crm_mon about it alone
    status_only = after("//lrm_resource[@id='vm2']/lrm_rsc_op", "exec-time", "7", configuration=False)
    assert pacemaker.calls == ["version", "status section", "version", "crm_mon about ['vm2']"]
    assert status_only.primitives is first.primitives
    # a status change crm_mon never reads: no crm_mon at all
    unread = after("//node_state[@id='1']", "crm-debug-origin", "elsewhere", configuration=False)
    assert pacemaker.calls == ["version", "status section", "version"]
    assert unread.status is status_only.status
    # a node's state: everything, from the live cluster
    after("//node_state[@id='2']", "join", "down", configuration=False)
    assert pacemaker.calls == ["version", "status section", "version", "crm_mon"]
    # a configuration change of one primitive: the whole CIB, crm_mon about that primitive alone
    configured = after("//nvpair[@id='vm1-meta_attributes-target-role']", "value", "Stopped", configuration=True)
    assert pacemaker.calls == ["version", "whole CIB", "crm_mon about ['vm1']"]
    assert configured.primitives["vm1"].meta["target-role"] == "Stopped"
    # a cluster option: the whole CIB, crm_mon of all of it
    after("//crm_config//nvpair[@name='stonith-enabled']", "value", "true", configuration=True)
    assert pacemaker.calls == ["version", "whole CIB", "crm_mon of the whole CIB"]
    assert reader._pacemaker.epoch == "0.25"


def test_a_configuration_change_while_the_status_is_read_reads_the_whole_cib() -> None:
    pacemaker = CountingPacemaker()
    reader = reader_on(pacemaker)
    reader.pacemaker_part()
    pacemaker.change("//lrm_resource[@id='vm2']/lrm_rsc_op", "exec-time", "7", configuration=False)
    # between the status section and the header read after it, someone changes vm1's primitive
    pacemaker.while_status_is_read = lambda: pacemaker.change(
        "//nvpair[@id='vm1-meta_attributes-target-role']", "value", "Stopped", configuration=True
    )
    pacemaker.calls.clear()
    part = reader.pacemaker_part()
    pacemaker.while_status_is_read = None
    # that status may be of the new configuration: not combined with the old one, the whole CIB read
    assert pacemaker.calls == ["version", "status section", "version", "whole CIB", "crm_mon about ['vm1', 'vm2']"]
    assert part.primitives["vm1"].meta["target-role"] == "Stopped"
    assert reader._pacemaker.version == "0.24.0"


@pytest.mark.parametrize(
    ("xpath", "name", "configuration"),
    [
        ("//lrm_resource[@id='vm1']/lrm_rsc_op", "exec-time", False),
        ("//nvpair[@id='vm1-meta_attributes-priority']", "value", True),
    ],
    ids=["status change", "configuration change"],
)
def test_a_crm_mon_that_fails_leaves_the_last_answer_and_the_next_read_asks_again(
    xpath: str, name: str, configuration: bool
) -> None:
    pacemaker = CountingPacemaker()
    reader = reader_on(pacemaker)
    first = reader.pacemaker_part()
    pacemaker.change(xpath, name, "3", configuration=configuration)
    pacemaker.crm_mon_fails = True
    with pytest.raises(BackendError, match="crm_mon failed"):
        reader.pacemaker_part()
    # nothing half-read is kept: the version is the last answer's, so the change is still to read
    assert reader._pacemaker.version == "0.23.42"
    pacemaker.crm_mon_fails = False
    pacemaker.calls.clear()
    again = reader.pacemaker_part()
    assert again is not first and reader._pacemaker.version != "0.23.42"
    assert pacemaker.calls[-1] == "crm_mon about ['vm1']"


def test_an_unchanged_vm_keeps_its_state_and_a_changed_one_shows_the_change() -> None:
    session = RecordedSession()
    vm = RECORDED["vm"]
    pacemaker = CountingPacemaker()
    reader = reader_on(pacemaker)
    reader._ceph_reader = CephReader()
    reader._vm_cache = {}
    reader._sides = {}
    ceph = reader._ceph_reader.read(session, None)  # type: ignore[arg-type]
    pcmk = reader.pacemaker_part()
    before = reader._build_vm(vm, ceph, pcmk)
    assert before.status is VmStatus.DISABLED and len(before.snapshots) == 10
    assert reader._build_vm(vm, reader._ceph_reader.read(session, None), pcmk) is before  # type: ignore[arg-type]
    session.objects[f"rbd_header.{RECORDED['image_ids'][f'system_{vm}']}"]["metadata_role"] = b"spare"
    after = reader._build_vm(vm, reader._ceph_reader.read(session, None), pcmk)  # type: ignore[arg-type]
    assert after is not before and after.metadata["role"] == "spare"
    assert isinstance(after.snapshots[0].created, datetime)


def test_a_vms_ceph_side_is_built_in_the_reading_thread_once_per_change_of_its_objects() -> None:
    session = RecordedSession()
    vm = RECORDED["vm"]
    reader = reader_on(CountingPacemaker())
    reader._ceph_reader = CephReader()
    reader._vm_cache = {}
    reader._sides = {}
    reader._last_ceph = None
    reader.ceph = SimpleNamespace(session=lambda: session)  # type: ignore[assignment]
    ceph = reader._read_ceph(None)
    token, side = reader._sides[vm]
    assert token is ceph.tokens[vm] and len(side.snapshots) == 10 and side.missing_system is None
    reader._read_ceph(None)
    assert reader._sides[vm][1] is side  # the same objects read: not built again
    session.objects[f"rbd_header.{RECORDED['image_ids'][f'system_{vm}']}"]["metadata_role"] = b"spare"
    ceph = reader._read_ceph(None)
    assert reader._sides[vm][1] is not side and reader._sides[vm][1].user_metadata["role"] == "spare"
    # the VM is built from that side, as a build from scratch builds it
    pcmk = reader.pacemaker_part()
    assert reader._build_vm(vm, ceph, pcmk) == build_vm(vm, ceph, pcmk)


def test_a_pacemaker_part_is_a_plain_record() -> None:
    part = PacemakerPart(CrmMonSnapshot(nodes=(), resources={}, dc=None, quorum=True), {}, None)
    assert replace(part, cluster_name="x").cluster_name == "x"


class FakeApp:
    """Just what ``Refresher`` asks of the app: start a worker, set a timer."""

    def __init__(self) -> None:
        self.workers: list[Any] = []
        self.timers: list[Any] = []

    def run_worker(self, work: Any, **_: Any) -> None:
        self.workers.append(work)

    def set_timer(self, delay: float, callback: Any, **_: Any) -> Any:
        self.timers.append(callback)

        class Timer:
            def stop(self) -> None:
                pass

        return Timer()


def test_a_timed_refresh_reads_ceph_every_third_time_and_an_asked_one_always() -> None:
    from vmconsole.tui.refresh import CEPH_EVERY, Refresher

    app = FakeApp()
    refresher = Refresher(
        app,  # type: ignore[arg-type]
        read=lambda: None,  # type: ignore[arg-type,return-value]
        clock=datetime.now,
        interval=2.0,
        auto=True,
        on_state=lambda state: None,
        on_change=lambda: None,
    )
    whole: list[bool] = []

    def one_read(asked: bool) -> None:
        if asked:
            refresher.refresh_now()
        else:
            app.timers[-1]()
        whole.append(refresher.ceph_max_age == 0)
        refresher.reading = False
        refresher.schedule_next()

    one_read(asked=True)  # the first read
    for _ in range(2 * CEPH_EVERY):
        one_read(asked=False)
    one_read(asked=True)  # a key, a finished task, a libvirt event
    assert whole[0] and whole[-1]
    assert whole[1:-1].count(True) == 2 and whole[1:-1].count(False) == 2 * CEPH_EVERY - 2


def test_a_light_read_uses_the_last_ceph_part_until_the_configuration_changes() -> None:
    session = RecordedSession()
    pacemaker = CountingPacemaker()
    reader = reader_on(pacemaker)
    reader._ceph_reader = CephReader()
    reader._vm_cache = {}
    reader._sides = {}
    reader._last_ceph = None
    reader.ceph = type("Ceph", (), {"session": lambda self: session, "retire": lambda self: None})()  # type: ignore[assignment]
    from concurrent.futures import ThreadPoolExecutor

    reader._pool = ThreadPoolExecutor(max_workers=2)
    reader.timeout = 10
    reader.config = type(
        "Config", (), {"pacemaker": type("P", (), {"observer": None, "cluster_conf": "/nonexistent"})()}
    )()  # type: ignore[assignment]
    try:
        reader.read()
        reader.read(ceph_max_age=60)  # the first read knew no CIB epoch yet: a whole one again
        assert len(session.batches) == 2
        reader.read(ceph_max_age=60)
        assert len(session.batches) == 2  # Ceph not asked
        # someone added or removed a VM: a configuration change
        pacemaker.change("//nvpair[@id='vm1-meta_attributes-priority']", "value", "1", configuration=True)
        reader.read(ceph_max_age=60)  # the first read to see the new epoch
        reader.read(ceph_max_age=60)
        assert len(session.batches) == 3
        reader.read(ceph_max_age=60)
        assert len(session.batches) == 3
        reader.read()
        assert len(session.batches) == 4
    finally:
        reader._pool.shutdown()
