"""``H``: the audit history of operations (who, when, what, result), newest first, filtered by VM."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Label, Select, Static

from vmconsole.tui import readable, text
from vmconsole.tui.screens.form_base import FormScreen

RESULT_STYLES = {"ok": "green", "failed": "bold red", "cancelled": "yellow", "incomplete": "bold yellow"}
ALL = "\x00all"


class HistoryScreen(FormScreen[None]):
    HELP = """\
## History

Every operation run on this cluster by any vmconsole (console or CLI), from the cluster's own audit
trail: when it finished, who ran it (user@host), what, on which VM, the result and its message. The
**VM** box filters by VM; the message of the operation under the cursor is shown in full below. The
timeline (**T** on the main screen) merges this with Pacemaker's failures and node changes.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Back", id="history.back")]

    def __init__(self, records: list[dict[str, Any]], vm: str | None = None) -> None:
        super().__init__(classes="form-screen")
        self.records = records
        self.initial_vm = vm
        self.shown: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        vms = sorted(
            {str(r["vm"]) for r in self.records if r.get("vm")} | ({self.initial_vm} if self.initial_vm else set())
        )
        with Vertical(classes="form fill", id="history-form"):
            with Horizontal(classes="filters"):
                yield Label("VM", classes="filter-label")
                yield Select(
                    [(Text("all VMs"), ALL), *((text.plain(v), v) for v in vms)],
                    value=self.initial_vm or ALL,
                    allow_blank=False,
                    id="history-vm",
                )
            yield DataTable(id="history-table", cursor_type="row")
            yield Static(id="history-message", classes="form-note")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        for key, label in (
            ("finished", "Finished"),
            ("who", "Who"),
            ("operation", "Operation"),
            ("vm", "VM"),
            ("result", "Result"),
            ("seconds", "Time"),
            ("message", "Message"),
        ):
            table.add_column(label, key=key)
        self._fill()
        table.focus()

    @on(Select.Changed, "#history-vm")
    def _fill(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        value = self.query_one("#history-vm", Select).value
        vm = None if value in (ALL, Select.BLANK) else str(value)
        self.shown = [r for r in reversed(self.records) if vm is None or r.get("vm") == vm]
        what = f"History of {text.safe(vm)}" if vm else "History"
        self.query_one("#history-form").border_title = f"{what} ({len(self.shown)} operations)"
        table.clear()
        for index, record in enumerate(self.shown):
            result = str(record.get("result", ""))
            table.add_row(
                text.plain(str(record.get("finished", ""))[:19].replace("T", " ")),
                text.plain(record.get("who", "")),
                text.plain(record.get("operation", "")),
                text.plain(record.get("vm") or "-"),
                text.plain(result, RESULT_STYLES.get(result, "")),
                Text(f"{record.get('seconds', '')}", justify="right"),
                text.plain(text.shorten(str(record.get("message", "")), 60)),
                key=str(index),
            )
        if not self.shown:
            self.query_one("#history-message", Static).update(Text("no operation recorded", style="dim"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        records = self.shown
        index = int(event.row_key.value or 0)
        if 0 <= index < len(records):
            record = records[index]
            message = Text.assemble(
                ("task ", "dim"), text.plain(record.get("task", "")), "  ", text.plain(record.get("message", ""))
            )
            args = record.get("args")
            if args:
                message.append("\nargs: ", style="dim")
                message.append(text.plain(readable.pairs(args) if isinstance(args, Mapping) else args))
            self.query_one("#history-message", Static).update(message)
