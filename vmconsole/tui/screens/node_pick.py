"""``M``, step 1: pick the node to move a VM to, among the online member nodes other than its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Static

from vmconsole.domain.model import NodeState, VmState
from vmconsole.tui import text
from vmconsole.tui.screens.form_base import FormScreen
from vmconsole.tui.widgets.cluster_pane import NODE_STYLES


class NodePickScreen(FormScreen[str | None]):
    HELP = """\
## Move: pick a node

The online cluster nodes the VM can go to (its own node and nodes in standby, maintenance or
offline are not listed), with the VMs each hosts now. Pick one and press **enter**: a y/n
confirmation names the VM, where it is and where it goes before anything happens.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, vm: VmState, candidates: Sequence[NodeState], vms: Sequence[VmState] = ()) -> None:
        super().__init__(classes="form-screen")
        self.vm = vm
        self.candidates = tuple(candidates)
        self.hosted: dict[str, list[str]] = {}
        for other in vms:
            if other.node:
                self.hosted.setdefault(other.node, []).append(other.name)

    def compose(self) -> ComposeResult:
        vm = self.vm
        with Vertical(classes="form", id="node-pick-form"):
            intro = Text.assemble("Move ", text.plain(vm.name, "bold"), " (", text.status_text(vm))
            if vm.node:
                intro.append(" on ")
                intro.append(text.plain(vm.node, "bold"))
            intro.append(") to which node?")
            yield Static(intro)
            yield DataTable(id="node-pick-table", cursor_type="row", classes="list-table")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Next: confirm…", id="ok", variant="primary")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#node-pick-form").border_title = Text.assemble("Move ", text.plain(self.vm.name))
        table: DataTable[Text] = self.query_one("#node-pick-table", DataTable)
        table.add_column("Node", key="node")
        table.add_column("Status", key="status")
        table.add_column("Hosts now", key="vms")
        for node in self.candidates:
            status = Text(node.status.value, style=NODE_STYLES.get(node.status, ""))
            if node.is_dc:
                status.append(" DC", style="bold cyan")
            hosted = sorted(self.hosted.get(node.name, []))
            vms = text.plain(" ".join(hosted), "dim") if hosted else Text("no VM", style="dim")
            table.add_row(text.plain(node.name, "bold"), status, vms, key=node.name)
        table.focus()

    @property
    def selected(self) -> str | None:
        table: DataTable[Text] = self.query_one("#node-pick-table", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @on(DataTable.RowSelected)
    @on(Button.Pressed, "#ok")
    def choose(self) -> None:
        node = self.selected
        if node is not None:
            self.dismiss(node)

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
