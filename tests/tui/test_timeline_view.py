"""The on-call timeline (T), the snapshot tree, the history filtered by VM, settings as an operator
reads them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import tui_sample
from textual.widgets import Input, Select
from tui_helpers import drive, settle, shown

from vmconsole.domain.model import NodeStatus
from vmconsole.tui import ops, readable
from vmconsole.tui.screens.history import HistoryScreen
from vmconsole.tui.screens.timeline import EntryScreen, TimelineScreen
from vmconsole.tui.screens.vm_detail import VmDetailScreen
from vmconsole.tui.widgets.snapshot_pane import SnapshotPane
from vmconsole.tui.widgets.vm_table import VmTable


def rows(screen: TimelineScreen) -> list[tuple[str, str, str, str]]:
    return [(e.kind, e.vm or "-", e.who or e.node or "-", e.summary) for e in screen.shown]


def test_the_timeline_merges_every_source_newest_first_and_filters(
    make_app: Any, fake_services: Any, source: tui_sample.Source
) -> None:
    fake_services.records = list(tui_sample.HISTORY)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        # the console sees hv2 go to standby between two reads, and a libvirt event of its host
        source.current = replace(
            source.current,
            nodes=tuple(replace(n, status=NodeStatus.STANDBY) if n.name == "hv2" else n for n in source.current.nodes),
        )
        app.refresh_now()
        await settle(pilot, app)
        app.events.host = "hv1"
        app.events.lifecycle("web1", "stopped", tui_sample.NOW)
        await pilot.press("T")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, TimelineScreen)
        kinds = [kind for kind, *_ in rows(screen)]
        assert {"node", "libvirt", "task", "failure", "operation"} <= set(kinds)
        assert [e.when for e in screen.shown] == sorted((e.when for e in screen.shown), reverse=True)
        task = next(r for r in rows(screen) if r[0] == "task" and r[1] == "legacy")
        assert task[2] == "ann@hv2" and task[3].startswith("start failed in 35.0 s")
        # legacy's failed start is one line: Pacemaker's failure (with its reason), not the op again
        assert sum(1 for r in rows(screen) if r[1] == "legacy" and r[0] in ("failure", "operation")) == 2  # + its stop
        screen.query_one("#timeline-vm", Select).value = "legacy"
        await pilot.pause()
        assert {r[1] for r in rows(screen)} == {"legacy"}
        screen.query_one("#timeline-kind", Select).value = "task"
        await pilot.pause()
        assert [r[0] for r in rows(screen)] == ["task"]
        screen.query_one("#timeline-kind", Select).value = "\x00all"
        screen.query_one("#timeline-vm", Select).value = "\x00all"
        screen.query_one("#timeline-node", Select).value = "hv1"
        await pilot.pause()
        assert {r[2] for r in rows(screen)} <= {"hv1", "ops@hv1"}  # on hv1, or run from it
        screen.query_one("#timeline-node", Select).value = "\x00all"
        since = screen.query_one("#timeline-since", Input)
        since.value = "soon"
        await pilot.pause()
        assert "15m, 2h, 1d" in shown(screen.query_one("#timeline-detail"))
        since.value = "30m"
        await pilot.pause()
        assert all(e.when >= tui_sample.NOW.replace(minute=30, hour=11) for e in screen.shown) and screen.shown
        since.value = ""
        await pilot.pause()
        # enter: a task this console did not run opens its record; a failure opens the VM
        table = screen.query_one("#timeline-table")
        index = next(i for i, e in enumerate(screen.shown) if e.kind == "task" and e.vm == "db1")
        table.move_cursor(row=index)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
        entry = app.screen
        assert isinstance(entry, EntryScreen) and "ops" in shown(entry.query(".impact").first())
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(app.screen, VmDetailScreen) and app.screen.vm_name == "db1"
        await pilot.press("escape")
        index = next(i for i, e in enumerate(screen.shown) if e.kind == "failure")
        table.move_cursor(row=index)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, VmDetailScreen) and app.screen.vm_name == "legacy"

    drive(app, scenario, size=(120, 40))


def test_the_timeline_of_one_vm_from_its_detail_and_without_a_cluster(make_app: Any) -> None:
    app = make_app()  # no services: what this console saw, and why the rest is missing

    async def scenario(pilot: Any) -> None:
        app.screen.query_one(VmTable).move_to("web1")
        await pilot.press("enter", "T")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, TimelineScreen) and screen.vm_filter == "web1"
        assert "no cluster connection" in shown(screen.query_one("#timeline-problems"))
        assert "Timeline of web1" in str(screen.query_one("#timeline-form").border_title)

    drive(app, scenario)


def test_history_filters_by_vm(make_app: Any, fake_services: Any) -> None:
    fake_services.records = list(tui_sample.HISTORY)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        await pilot.press("H")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, HistoryScreen) and len(screen.shown) == 2
        screen.query_one("#history-vm", Select).value = "legacy"
        await pilot.pause()
        assert [r["vm"] for r in screen.shown] == ["legacy"]
        message = shown(screen.query_one("#history-message"))
        assert "Failed to start virtual domain legacy. (rc=1)" in message  # the message in full

    drive(app, scenario)


def test_the_snapshot_pane_is_a_tree_with_clones_and_the_undo_point(make_app: Any) -> None:
    app = make_app()

    async def scenario(pilot: Any) -> None:
        app.screen.query_one(VmTable).move_to("db1")
        await pilot.pause()
        pane = app.screen.query_one(SnapshotPane)
        pane.extras["db1"] = ops.SnapshotExtras(
            "db1", {"before-upgrade": ("db2", "db3")}, last_safety="snap-20260504-110000"
        )
        pane._signature = ()
        pane.show_vm(app.state.vm("db1"), tui_sample.NOW)
        await pilot.pause()
        labels = [pane.get_row_at(i)[0].plain for i in range(pane.row_count)]
        assert labels[0].startswith("├─○ before-upgrade group protected")
        assert labels[1].startswith("│   └─⧉ db2 linked clone") and labels[2].startswith("│   └─⧉ db3")
        assert "↺ undo point" in labels[4] and labels[-1] == "└─● NOW"
        pane.move_cursor(row=1)
        await pilot.pause()
        assert "db2 is a linked clone of before-upgrade" in pane._border_subtitle.plain  # type: ignore[union-attr]
        pane.move_cursor(row=0)
        await pilot.pause()
        subtitle = pane._border_subtitle.plain  # type: ignore[union-attr]
        assert "before-upgrade · 2026-05-02 10:00 · protected · 2 disks" in subtitle

    drive(app, scenario)


def test_settings_read_as_an_operator_reads_them() -> None:
    settings = {
        "live_migration": False,
        "pinned_host": None,
        "preferred_host": "hv2",
        "stop_timeout": "30",
        "migration_downtime": "200",
        "pacemaker_params": {"force_stop": "true"},
        "pacemaker_meta": {},
        "crm_config_cmd": [],
        "additional_disks": 0,
        "colocations": [{"resources": ["db1"], "strong": True}],
        "remote_node": "guest1",
        "remote_node_address": "10.0.0.5",
        "remote_node_port": "3121",
        "remote_node_timeout": None,
    }
    shown_rows = {label: value.plain for label, value in readable.setting_rows(settings)}
    assert shown_rows["Live migration"] == "no"
    assert shown_rows["Pinned host"] == "not set" and shown_rows["Preferred host"] == "hv2"
    assert shown_rows["Stop timeout"] == "30 s" and shown_rows["Migration downtime"] == "200 ms"
    assert shown_rows["Migrate-to timeout"] == "not set (120 s)"
    assert shown_rows["Pacemaker params"] == "force_stop = true" and shown_rows["Pacemaker meta"] == "none"
    assert shown_rows["Extra constraints"] == "none" and shown_rows["Data disks"] == "none"
    assert shown_rows["Colocations"] == "with db1 (strong, score INFINITY)"
    assert shown_rows["Pacemaker remote"] == "guest1 at 10.0.0.5:3121"
    everything = " ".join(shown_rows.values())
    for python in ("None", "False", "True", "{", "[", "'"):
        assert python not in everything, python


def test_the_detail_view_shows_settings_without_python_values(make_app: Any, source: tui_sample.Source) -> None:
    from types import MappingProxyType

    source.current = replace(
        source.current,
        vms=tuple(
            replace(v, settings=MappingProxyType({"live_migration": True, "pacemaker_meta": {}, "pinned_host": None}))
            if v.name == "db1"
            else v
            for v in source.current.vms
        ),
    )
    app = make_app()

    async def scenario(pilot: Any) -> None:
        app.screen.query_one(VmTable).move_to("db1")
        await pilot.press("enter")
        await pilot.pause()
        text = "\n".join(shown(s) for s in app.screen.query(".section"))
        assert "Live migration" in text and "yes" in text and "not set" in text
        assert "None" not in text and "True" not in text and "{}" not in text

    drive(app, scenario)
