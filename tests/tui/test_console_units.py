"""The console's pure helpers: literal text, the filter language, the ``:`` parser, progress records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tui_sample

from vmconsole.config import CephSection, Config
from vmconsole.core import rights
from vmconsole.core.tasks import ProgressEvent
from vmconsole.domain.model import VmStatus
from vmconsole.tui import cmdline, form_checks, text
from vmconsole.tui.filtering import FilterError, parse_filter, sort_value
from vmconsole.tui.task_record import TaskRecord, TaskState
from vmconsole.tui.widgets.progress_pane import current_text, steps_text


def test_safe_text_never_lets_markup_or_escapes_through() -> None:
    value = "[bold]x[/] \x1b]8;;http://evil\x07link\x1b]8;;\x07 \r\n\x00"
    shown = text.plain(value, "red")
    assert shown.plain == "[bold]x[/] \\x1b]8;;http://evil\\x07link\\x1b]8;;\\x07 \\x0d\\x0a\\x00"
    assert shown.spans and not any(ch in shown.plain for ch in "\x1b\x07\r\n\x00")
    assert text.safe("plain web1") == "plain web1" and text.safe("\u202e") == "\\u202e"
    appended = text.plain("db1", "bold")
    appended.append(" on hv1")
    assert appended.spans[0].end == 3  # the style does not leak into what follows


def test_sizes_ages_and_durations() -> None:
    assert [text.size(v) for v in (0, 512, 64 << 20, 1536 << 20, None)] == ["0 B", "512 B", "64 MiB", "1.5 GiB", "-"]
    now = tui_sample.NOW
    assert [text.age(now - timedelta(seconds=s), now) for s in (5, 600, 7200, 200000)] == ["5s", "10m", "2h", "2d"]
    assert text.age(None, now) == "-"
    assert [text.duration(s) for s in (7, 125, 3720, None)] == ["7 s", "2 min 5 s", "1 h 2 min", "unknown"]


def test_the_table_ages_move_on_the_minute_all_together() -> None:
    """Snapshots taken a few seconds apart on many VMs: their ages in the table change at the same
    refresh (the table is drawn again once a minute), never more than a minute behind."""
    minute = datetime(2026, 12, 3, 10, 27, tzinfo=UTC)
    taken = [minute - timedelta(minutes=26, seconds=s) for s in range(0, 60, 7)]
    for now in (minute + timedelta(seconds=s) for s in range(0, 60, 5)):
        assert {text.table_age(t, now) for t in taken} == {"26m"}
    later = minute + timedelta(minutes=1, seconds=1)
    assert {text.table_age(t, later) for t in taken} == {"27m"}
    for t in taken:
        for now in (minute + timedelta(seconds=s) for s in range(0, 120, 3)):
            behind = (now - t).total_seconds() // 60 - int(text.table_age(t, now)[:-1])
            assert 0 <= behind <= 1
    # the first minute in seconds, as everywhere else; then never under a minute
    assert text.table_age(minute - timedelta(seconds=42), minute + timedelta(seconds=1)) == "43s"
    assert text.table_age(minute - timedelta(seconds=30), minute + timedelta(seconds=35)) == "1m"
    assert text.table_age(None, minute) == "-"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"web1", "web2", "db1", "build1", "spare1", "legacy", "batch7", "cache1"}),
        ("WEB", {"web1", "web2"}),
        ("status:failed", {"legacy"}),
        ("status:blocked", {"cache1"}),
        ("node:hv1", {"web1", "db1", "cache1"}),
        ("node:- status:stop", {"spare1"}),
        ("~^(web|db)1$", {"web1", "db1"}),
        ("name:~1$ !status:started", {"build1", "spare1"}),
    ],
)
def test_filter_language(query: str, expected: set[str]) -> None:
    vm_filter = parse_filter(query)
    assert {vm.name for vm in tui_sample.vms() if vm_filter.match(vm)} == expected


@pytest.mark.parametrize("query", ["~(", "bogus:x", "status:"])
def test_bad_filters_are_refused_with_a_reason(query: str) -> None:
    with pytest.raises(FilterError):
        parse_filter(query)


def test_sort_values_put_failures_first_and_undated_last() -> None:
    by_status = sorted(tui_sample.vms(), key=lambda vm: sort_value(vm, "status"))
    assert by_status[0].status is VmStatus.FAILED
    by_latest = sorted(tui_sample.vms(), key=lambda vm: sort_value(vm, "latest"))
    assert by_latest[-1].name == "db1"


def test_command_line_parser() -> None:
    assert cmdline.parse_command(":start web1") == cmdline.Command("start", "web1", (), "web1")
    assert cmdline.parse_command("snap db1 pre-upgrade").verb == "snapshot"
    assert cmdline.parse_command("snapshot db1 pre-upgrade").args == ("pre-upgrade",)
    assert cmdline.parse_command("filter status:failed node:hv1").rest == "status:failed node:hv1"
    assert cmdline.parse_command("tasks").vm is None and cmdline.parse_command("q").verb == "quit"
    assert cmdline.parse_command("rollback-undo db1").verb == "rollback-undo"
    assert cmdline.parse_command("migrate web1 hv2") == cmdline.Command("move", "web1", ("hv2",), "web1 hv2")
    assert cmdline.parse_command("drain hv1") == cmdline.Command("standby", None, ("hv1",), "hv1")
    assert cmdline.parse_command("online hv3").args == ("hv3",) and cmdline.parse_command("edit db1").verb == "update"
    for bad in ("", "frobnicate web1", "start 'web1"):
        with pytest.raises(cmdline.CommandError):
            cmdline.parse_command(bad)


def test_form_checks(tmp_path: Path) -> None:
    assert form_checks.check_vm_name("web1", {"web1"}) == "a VM named web1 already exists"
    assert "not allowed" in (form_checks.check_vm_name("web-1", set()) or "")
    assert form_checks.check_vm_name("web9", {"web1"}) is None
    xml = tmp_path / "d.xml"
    xml.write_text("<domain><devices><disk device='disk'><target dev='vda'/></disk></devices></domain>")
    content, error = form_checks.read_xml(str(xml))
    assert content is None and "remove every" in (error or "")
    xml.write_text("<domain><name>x</name><devices/></domain>")
    assert form_checks.read_xml(str(xml)) == (xml.read_text(), None)
    assert form_checks.check_file(str(tmp_path), "image") == f"{tmp_path} is not a regular file"


def test_unreadable_keyring_means_read_only(tmp_path: Path, monkeypatch: Any) -> None:
    conf = tmp_path / "ceph.conf"
    conf.write_text(f"[global]\nkeyring = {tmp_path}/$cluster.$name.keyring\n")
    config = Config(ceph=CephSection(conf=str(conf)))
    monkeypatch.setattr(rights.os, "geteuid", lambda: 0)
    assert "Ceph keyring is not readable" in (rights.read_only_reason(config) or "")
    (tmp_path / "ceph.client.admin.keyring").write_text("[client.admin]\n")
    assert rights.read_only_reason(config) is None


def test_task_record_folds_progress_events() -> None:
    record = TaskRecord("clone db1 → db2", "db2", tui_sample.NOW)
    base: dict[str, Any] = {"task_id": "t1", "operation": "clone", "vm": "db2", "steps": ("group", "copy")}
    record.apply(ProgressEvent(kind="start", message="clone", **base), tui_sample.NOW)
    record.apply(ProgressEvent(kind="step", step_index=1, step_name="copy", percent=50, **base), tui_sample.NOW)
    record.apply(
        ProgressEvent(
            kind="progress", step_index=1, done=3 << 20, total=4 << 20, rate=1 << 20, eta=1.0, percent=87.5, **base
        ),
        tui_sample.NOW,
    )
    assert record.state is TaskState.RUNNING and record.percent == 87.5
    assert "3 MiB / 4 MiB" in current_text(record).plain and "ETA 1 s" in current_text(record).plain
    assert "✔ 1." in steps_text(record).plain and "▶ 2." in steps_text(record).plain
    record.apply(
        ProgressEvent(kind="progress", step_index=1, done=2, total=3, percent=90, unit="items", **base), tui_sample.NOW
    )
    assert "2/3" in current_text(record).plain  # a count, not bytes
    record.apply(ProgressEvent(kind="undo", step_index=0, message="undoing: group", **base), tui_sample.NOW)
    assert record.undoing and record.log[-1] == "12:00:00 undoing: group"


def test_the_lifecycle_watch_stops_within_a_second_without_any_event() -> None:
    """libvirt's loop returns only on events: the console's wrapper adds a 1 s timer so ``stop`` is seen.

    Runs against libvirt's in-process test driver (``test:///default``: no daemon, no lab).
    """
    import threading
    import time

    import libvirt

    from vmconsole.core import services as core_services

    events: list[tuple[str, str]] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=core_services.watch_lifecycle,
        args=("test:///default", lambda d, e: events.append((d, e)), stop),
        daemon=True,
    )
    thread.start()
    time.sleep(0.3)
    conn = libvirt.open("test:///default")  # the test driver's default connection state is shared
    try:
        domain = conn.lookupByName("test")
        domain.destroy()
        domain.create()
        deadline = time.monotonic() + 3
        while len(events) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        conn.close()
    assert events[:2] == [("test", "stopped"), ("test", "started")]
    stop.set()
    thread.join(2.5)  # no event comes any more: the timer wakes the loop up
    assert not thread.is_alive()


def test_completion_ranks_the_vm_verbs_first() -> None:
    assert cmdline.complete_verb("sta") == "start"  # not standby
    assert cmdline.complete_verb("st") == "start"
    assert cmdline.complete_verb("stan") == "standby"
    assert cmdline.complete_verb("tim") == "timeline" and cmdline.complete_verb("start") is None
    assert cmdline.complete_verb("") is None and cmdline.complete_verb("zzz") is None
    assert cmdline.parse_command("import legacy-dom web9").args == ("legacy-dom", "web9")
    assert cmdline.parse_command("colocate web1 db1 cache1") == cmdline.Command(
        "colocate", "web1", ("db1", "cache1"), "web1 db1 cache1"
    )


def test_the_failure_book_keeps_a_failure_until_a_success_or_a_cleanup() -> None:
    from dataclasses import replace

    from vmconsole.tui.memory import FailureBook, KeptFailure

    book = FailureBook()
    state = tui_sample.state()
    spare1 = state.vm("spare1")
    assert spare1 is not None and book.shown(spare1) is None
    book.remember("spare1", KeptFailure(tui_sample.NOW, "start", "spare1 failed to start"))
    book.add_cause("spare1", "Permission denied")
    kept = book.shown(spare1)
    assert kept is not None and kept.cause == "Permission denied" and kept.source == "task"
    legacy = state.vm("legacy")
    assert legacy is not None
    from_pacemaker = book.shown(legacy)  # Pacemaker's failure while it does not run
    assert from_pacemaker is not None and from_pacemaker.source == "pacemaker" and from_pacemaker.what == "start"
    assert book.failed_names(state.vms) == {"legacy", "spare1"}
    version = book.version
    book.observe(state)  # still Stopped: kept
    assert book.get("spare1") is not None and book.version == version
    started = replace(
        state, vms=tuple(replace(v, status=VmStatus.STARTED) if v.name == "spare1" else v for v in state.vms)
    )
    book.observe(started)  # a success
    assert book.get("spare1") is None and book.version == version + 1
    book.remember("spare1", KeptFailure(tui_sample.NOW, "start", "again"))
    book.forget("spare1")  # a cleanup
    assert book.get("spare1") is None


def test_an_incomplete_task_record_names_its_commands() -> None:
    from vmconsole.domain.errors import OperationIncomplete
    from vmconsole.tui.widgets.progress_pane import result_text

    record = TaskRecord("remove web9", "web9", tui_sample.NOW)
    record.finish_error(
        OperationIncomplete("web9 may be partly deleted; finish with `vmconsole vm remove web9` once fixed"),
        tui_sample.NOW,
    )
    assert record.state is TaskState.INCOMPLETE and record.commands == ["vmconsole vm remove web9"]
    assert "To finish, revert or look further:\n  vmconsole vm remove web9" in result_text(record).plain
    assert "stopped part-way" in current_text(record).plain
