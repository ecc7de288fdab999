"""Guided rollback, step 1: pick the snapshot on the VM's timeline (oldest first, then NOW)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Static

from vmconsole.domain.model import Snapshot, VmState
from vmconsole.tui import text
from vmconsole.tui.screens.form_base import FormScreen
from vmconsole.tui.widgets.snapshot_pane import NOW_KEY, snapshot_flags, timeline


class RollbackPickScreen(FormScreen[str | None]):
    HELP = """\
## Rollback: pick a snapshot

The VM's snapshots, oldest first; **NOW** is its current state. Pick the state to go back to and
press **enter**: the next screen shows the impact (what is stopped, what is lost) before anything
happens.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel", id="form.cancel"),
    ]

    def __init__(self, vm: VmState, now: datetime, preselect: str | None = None) -> None:
        super().__init__(classes="form-screen")
        self.vm = vm
        self.now = now
        self.preselect = preselect

    def compose(self) -> ComposeResult:
        with Vertical(classes="form danger", id="pick-form"):
            yield Static(Text.assemble("Roll ", text.plain(self.vm.name, "bold"), " back to which snapshot?"))
            yield DataTable(id="timeline", cursor_type="row", classes="list-table")
            yield Static(id="pick-info", classes="form-note")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Next: impact…", id="ok", variant="warning")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#pick-form").border_title = Text.assemble(
            "Rollback ", text.plain(self.vm.name), ": 1/3 pick a snapshot"
        )
        table: DataTable[Text] = self.query_one("#timeline", DataTable)
        table.add_column("", key="mark", width=1)
        table.add_column("Snapshot", key="name")
        table.add_column("Created", key="created", width=16)
        table.add_column("Age", key="age", width=5)
        table.add_column("", key="flags")
        ordered = timeline(self.vm.snapshots)
        for snap in ordered:
            table.add_row(
                Text("○", style="cyan"),
                text.plain(snap.name, "bold"),
                Text(text.stamp(snap.created)),
                Text(text.age(snap.created, self.now), justify="right"),
                snapshot_flags(snap),
                key=snap.name,
            )
        table.add_row(
            Text("●", style="bold green"),
            Text("NOW", style="bold green"),
            Text("current state", style="green"),
            Text(""),
            Text(""),
            key=NOW_KEY,
        )
        target = next((s.name for s in ordered if s.name == self.preselect), ordered[-1].name if ordered else NOW_KEY)
        table.move_cursor(row=table.get_row_index(target), animate=False)
        table.focus()
        self._show_info()

    @property
    def selected(self) -> Snapshot | None:
        table: DataTable[Text] = self.query_one("#timeline", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((s for s in self.vm.snapshots if s.name == key), None)

    @on(DataTable.RowHighlighted)
    def _show_info(self) -> None:
        snap = self.selected
        info = Text(end="")
        if snap is None:
            info.append("NOW is the VM's current state: pick an older snapshot.", style="dim")
        else:
            info.append("Going back to ")
            info.append(text.plain(snap.name, "bold"))
            info.append(
                f" discards every change made since {text.stamp(snap.created)} "
                f"({text.age(snap.created, self.now)} ago)."
            )
            if snap.missing_on:
                info.append("\nIt is missing on ", style="bold red")
                info.append(text.plain(", ".join(snap.missing_on), "bold red"))
                info.append(": those disks cannot be rolled back.", style="bold red")
        self.query_one("#pick-info", Static).update(info)
        self.query_one("#ok", Button).disabled = snap is None

    @on(DataTable.RowSelected)
    @on(Button.Pressed, "#ok")
    def choose(self) -> None:
        snap = self.selected
        if snap is not None:
            self.dismiss(snap.name)

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
