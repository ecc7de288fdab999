"""The observer in the console: marked in the cluster pane, never offered as a VM's new node."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import tui_sample
from textual.widgets import DataTable
from tui_helpers import drive

from vmconsole.domain.model import NodeState, NodeStatus
from vmconsole.tui.screens.node_pick import NodePickScreen
from vmconsole.tui.widgets.cluster_pane import ClusterPane
from vmconsole.tui.widgets.vm_table import VmTable


def test_the_observer_is_marked_in_the_cluster_pane_and_never_a_move_target(
    source: tui_sample.Source, make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    tui_sample.FakeOperations().install(monkeypatch)
    observer = NodeState("obs1", "9", NodeStatus.ONLINE, kind="observer")
    source.current = replace(source.current, nodes=(*source.current.nodes, observer))
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        lines = app.screen.query_one(ClusterPane).render().plain.splitlines()
        assert "● obs1 online (observer)" in lines
        app.screen.query_one(VmTable).move_to("web1")
        await pilot.press("M")
        await pilot.pause()
        picker = app.screen
        assert isinstance(picker, NodePickScreen)
        rows: DataTable[Any] = picker.query_one("#node-pick-table", DataTable)
        assert "obs1" not in [row.key.value for row in rows.ordered_rows]

    drive(app, scenario)
