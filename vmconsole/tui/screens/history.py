"""``H``: the audit history of operations (who, when, what, result), newest first."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from vmconsole.tui import text
from vmconsole.tui.screens.form_base import FormScreen

RESULT_STYLES = {"ok": "green", "failed": "bold red", "cancelled": "yellow"}


class HistoryScreen(FormScreen[None]):
    HELP = """\
## History

Every operation run on this cluster by any vmconsole (console or CLI), from the cluster's own audit
trail: when it finished, who ran it, what, on which VM, the result and its message.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Back", id="history.back")]

    def __init__(self, records: list[dict[str, Any]]) -> None:
        super().__init__(classes="form-screen")
        self.records = records

    def compose(self) -> ComposeResult:
        with Vertical(classes="form fill", id="history-form"):
            yield DataTable(id="history-table", cursor_type="row")
            yield Static(id="history-message", classes="form-note")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#history-form").border_title = f"History ({len(self.records)} operations)"
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
        for index, record in enumerate(reversed(self.records)):
            result = str(record.get("result", ""))
            table.add_row(
                text.plain(str(record.get("finished", ""))[:19].replace("T", " ")),
                text.plain(record.get("who", "")),
                text.plain(record.get("operation", "")),
                text.plain(record.get("vm") or "-"),
                text.plain(result, RESULT_STYLES.get(result, "")),
                Text(f"{record.get('seconds', '')}", justify="right"),
                text.plain(text.shorten(str(record.get("message", "")), 80)),
                key=str(index),
            )
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        records = list(reversed(self.records))
        index = int(event.row_key.value or 0)
        if 0 <= index < len(records):
            record = records[index]
            message = Text.assemble(
                ("task ", "dim"), text.plain(record.get("task", "")), "  ", text.plain(record.get("message", ""))
            )
            args = record.get("args")
            if args:
                message.append("\nargs: ", style="dim")
                message.append(text.plain(args))
            self.query_one("#history-message", Static).update(message)
