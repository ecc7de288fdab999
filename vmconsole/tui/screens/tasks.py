"""``t``: every task started from this console, running and finished; enter opens its progress."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from vmconsole.tui import text
from vmconsole.tui.console import console_of
from vmconsole.tui.task_record import TaskRecord
from vmconsole.tui.widgets.progress_pane import ENDED_BADLY, STATE_STYLES, result_text


class TaskListScreen(ModalScreen[None]):
    HELP = """\
## Tasks

Every task started from this console: running ones first, then finished ones, newest first.
The result of the task under the cursor is shown in full below the list. **enter** opens a task's
progress and log; tasks keep running in the background.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,t", "dismiss", "Close", id="tasks.close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="tasks-dialog"):
            yield Static(Text("Tasks", style="bold"), id="tasks-title")
            yield DataTable(id="tasks-table", cursor_type="row")
            yield Static(Text("no task started yet", style="dim"), id="tasks-empty")
            yield Static(id="tasks-result")
        yield Footer(compact=True)

    @property
    def records(self) -> list[TaskRecord]:
        return console_of(self.app).tasks

    def on_mount(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        table.add_column("#", key="id", width=3)
        table.add_column("State", key="state", width=10)
        table.add_column("%", key="percent", width=4)
        table.add_column("Task", key="title")
        table.add_column("Started", key="started", width=8)
        table.add_column("Result", key="message")
        self._fill()
        self.set_interval(0.5, self._fill)
        table.focus()

    def _fill(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        records = sorted(self.records, key=lambda r: (not r.active, -r.record_id))
        self.query_one("#tasks-empty").display = not records
        keep = table.cursor_row
        with self.app.batch_update():
            table.clear()
            for record in records:
                table.add_row(
                    Text(str(record.record_id), end=""),
                    Text(record.state.value, style=STATE_STYLES[record.state], end=""),
                    Text(f"{record.percent:3.0f}", justify="right", end=""),
                    text.plain(record.title),
                    Text(f"{record.started:%H:%M:%S}", end=""),
                    text.plain(text.shorten(record.message, 60), "red" if record.state in ENDED_BADLY else "dim"),
                    key=str(record.record_id),
                )
            if records:
                table.move_cursor(row=min(keep, len(records) - 1), animate=False)
        self._show_result()

    def _show_result(self) -> None:
        """The full result of the task under the cursor: the list's column only has room for its start."""
        table: DataTable[Text] = self.query_one(DataTable)
        record = None
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            record = next((r for r in self.records if str(r.record_id) == key), None)
        detail = Text(end="")
        if record is not None:
            detail.append(text.plain(record.title, "bold"))
            detail.append("\n")
            detail.append(result_text(record) if record.message else Text("running…", style="dim"))
        self.query_one("#tasks-result", Static).update(detail)

    def on_data_table_row_highlighted(self) -> None:
        self._show_result()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        record = next((r for r in self.records if str(r.record_id) == event.row_key.value), None)
        if record is not None:
            console_of(self.app).show_task(record)
