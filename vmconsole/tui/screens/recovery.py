"""Incomplete tasks left by a vmconsole that died mid-way (found at start, or with ``F``)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Static

from vmconsole.core import recovery
from vmconsole.tui import gating, text
from vmconsole.tui.actions import RECOVERY_UNDO
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.confirm import ask
from vmconsole.tui.screens.form_base import FormScreen


class RecoveryScreen(FormScreen[None]):
    HELP = """\
## Incomplete tasks

Tasks whose vmconsole process died before finishing (from the cluster's journal): what they were
doing and which steps were done. **Undo** removes what they had created (y/n); **Forget** drops the
journal entry without touching the cluster.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back", id="recovery.back")]

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        super().__init__(classes="form-screen")
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical(classes="form danger fill", id="recovery-form"):
            yield Static(Text("These tasks stopped half-way; their VMs may hold partial objects.", style="yellow"))
            yield DataTable(id="recovery-table", cursor_type="row")
            yield Static(id="recovery-detail", classes="form-note")
            with Horizontal(classes="form-buttons"):
                yield Button("Back", id="back")
                yield Button("Forget", id="forget", variant="warning")
                yield Button("Undo", id="undo", variant="error")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#recovery-form").border_title = f"Incomplete tasks ({len(self.entries)})"
        table: DataTable[Text] = self.query_one(DataTable)
        for key, label in (
            ("task", "Task"),
            ("operation", "Operation"),
            ("vm", "VM"),
            ("holder", "Who"),
            ("started", "Started"),
            ("state", "State"),
        ):
            table.add_column(label, key=key)
        self._fill()
        for widget_id in ("#undo", "#forget"):
            self.query_one(widget_id, Button).disabled = console_of(self.app).read_only
        table.focus()

    def _fill(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        table.clear()
        for entry in self.entries:
            table.add_row(
                *(text.plain(entry.get(k) or "-") for k in ("task", "operation", "vm", "holder", "started", "state")),
                key=str(entry.get("task")),
            )

    @property
    def selected(self) -> dict[str, Any] | None:
        table: DataTable[Text] = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((e for e in self.entries if str(e.get("task")) == key), None)

    @on(DataTable.RowHighlighted)
    def highlighted(self) -> None:
        entry = self.selected
        if entry is None:
            return
        done = entry.get("done") or []
        steps = entry.get("steps") or []
        detail = Text.assemble(("steps done: ", "bold"), text.plain(f"{len(done)}/{len(steps)}"))
        for step in steps:
            detail.append("\n  ✔ " if step in done else "\n  · ", style="green" if step in done else "dim")
            detail.append(text.plain(step))
        self.query_one("#recovery-detail", Static).update(detail)

    def _act(self, undo: bool) -> None:
        entry = self.selected
        if gating.refused(self.app, RECOVERY_UNDO):
            return
        if entry is None:
            return
        task_id = str(entry.get("task"))
        verb = "Undo" if undo else "Forget"
        body = Text.assemble(
            f"{verb} incomplete task ",
            text.plain(task_id, "bold"),
            " (",
            text.plain(entry.get("operation", "")),
            " of ",
            text.plain(entry.get("vm") or "-"),
            ")?\n\n",
        )
        body.append(
            "Its completed steps are undone: the objects it had created are deleted."
            if undo
            else "Its journal entry is dropped; whatever it left on the cluster stays as it is."
        )

        def run() -> None:
            console = console_of(self.app)
            services = console.services
            work = (
                (lambda: recovery.undo_task(services, task_id))
                if undo
                else (lambda: recovery.forget(services, task_id))
            )
            console.call_in_thread(work, lambda result: self._done(task_id, result), f"{verb.lower()} {task_id}")

        ask(self.app, f"{verb} task {text.safe(task_id)}", body, run, label=verb)

    def _done(self, task_id: str, result: Any) -> None:
        message = result.get("message") if isinstance(result, dict) else f"task {task_id} forgotten"
        self.notify(text.safe(str(message)), title="Recovery", markup=False)
        self.entries = [e for e in self.entries if str(e.get("task")) != task_id]
        self._fill()
        console_of(self.app).refresh_now()
        if not self.entries:
            self.dismiss(None)

    @on(Button.Pressed, "#undo")
    def undo(self) -> None:
        self._act(True)

    @on(Button.Pressed, "#forget")
    def forget(self) -> None:
        self._act(False)

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.dismiss(None)
