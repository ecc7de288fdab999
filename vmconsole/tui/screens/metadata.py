"""``m``: a VM's user metadata: view every key, set one, remove one (values shown literally)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from vmconsole.core import vms
from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError
from vmconsole.tui import gating, text
from vmconsole.tui.actions import METADATA_SET
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.confirm import ask
from vmconsole.tui.screens.form_base import FormScreen
from vmconsole.tui.task_record import TaskRecord, TaskState


class MetadataScreen(FormScreen[None]):
    HELP = """\
## Metadata

The VM's user metadata (keys without a leading `_`; internal settings are in the detail view).
Select a row to edit it, set **Key** and **Value** and press **Set**; **Remove** deletes the
selected key (y/n). Values are shown literally, control characters as `\\xNN`.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Back", id="metadata.back"),
        Binding("delete", "remove", "Remove key", id="metadata.remove"),
    ]

    def __init__(self, vm: str) -> None:
        super().__init__(classes="form-screen")
        self.vm = vm
        self.values: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="form fill", id="metadata-form"):
            yield DataTable(id="metadata-table", cursor_type="row")
            with Horizontal(classes="form-row"):
                yield Label("Key", classes="form-label")
                yield Input(id="meta-key", placeholder="letters and digits")
            with Horizontal(classes="form-row"):
                yield Label("Value", classes="form-label")
                yield Input(id="meta-value")
            yield Static("", id="meta-error", classes="field-error")
            with Horizontal(classes="form-buttons"):
                yield Button("Back", id="back")
                yield Button("Remove key", id="remove", variant="warning")
                yield Button("Set", id="set", variant="primary")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#metadata-form").border_title = Text.assemble("Metadata of ", text.plain(self.vm))
        table: DataTable[Text] = self.query_one(DataTable)
        table.add_column("Key", key="key")
        table.add_column("Value", key="value")
        console = console_of(self.app)
        state = console.state.vm(self.vm) if console.state else None
        self.show_values(dict(state.metadata) if state else {})
        self.reload()
        for widget_id in ("#set", "#remove"):
            self.query_one(widget_id, Button).disabled = console.read_only
        table.focus()

    def reload(self) -> None:
        vm = self.vm
        console = console_of(self.app)
        try:
            services = console.services
        except Exception:
            return
        console.call_in_thread(lambda: vms.metadata_list(services, vm), self.show_values, f"read the metadata of {vm}")

    def show_values(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        table: DataTable[Text] = self.query_one(DataTable)
        table.clear()
        for key, value in sorted(values.items()):
            table.add_row(text.plain(key, "bold"), text.plain(text.shorten(value, 400)), key=key)
        if not values:
            table.add_row(Text("(none)", style="dim"), Text(""), key="")

    @on(DataTable.RowHighlighted)
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value or ""
        if key in self.values:
            value = self.values[key]
            self.query_one("#meta-key", Input).value = key
            # an editable Input would send control characters to the terminal as they are
            self.query_one("#meta-value", Input).value = value if value.isprintable() else ""
            if not value.isprintable():
                error = self.query_one("#meta-error", Static)
                error.update(
                    Text("this value holds control characters (shown escaped above): set a new one", style="yellow")
                )

    @on(Input.Changed, "#meta-key")
    def key_changed(self, event: Input.Changed) -> None:
        error = ""
        if event.value:
            try:
                validate.metadata_key(event.value)
            except ValidationError as exc:
                error = exc.message
        self.query_one("#meta-error", Static).update(text.plain(error))

    def _done(self, record: TaskRecord) -> None:
        if record.state is TaskState.DONE:
            self.reload()

    @on(Button.Pressed, "#set")
    @on(Input.Submitted, "#meta-value")
    def set_value(self) -> None:
        key = self.query_one("#meta-key", Input).value
        value = self.query_one("#meta-value", Input).value
        if gating.refused(self.app, METADATA_SET):
            return
        try:
            validate.metadata_key(key)
            validate.metadata_value(value)
        except ValidationError as exc:
            console_of(self.app).show_error(exc)
            return
        vm = self.vm
        console_of(self.app).start_task(
            f"set metadata {vm}.{key}",
            vm,
            lambda s: vms.plan_metadata_set(s, vm, {key: value}),
            show=False,
            on_finish=self._done,
        )

    def action_remove(self) -> None:
        key = self.query_one("#meta-key", Input).value
        if gating.refused(self.app, METADATA_SET):
            return
        if key not in self.values:
            self.notify("Select an existing key first.", severity="warning", markup=False)
            return
        vm = self.vm
        body = Text.assemble(
            "Remove metadata key ",
            text.plain(key, "bold"),
            " of ",
            text.plain(vm, "bold"),
            "?\n\nIts value is lost:\n",
            text.plain(text.shorten(self.values[key], 300)),
        )
        console = console_of(self.app)
        ask(
            self.app,
            f"Remove metadata key of {text.safe(vm)}",
            body,
            lambda: console.start_task(
                f"remove metadata {vm}.{key}",
                vm,
                lambda s: vms.plan_metadata_set(s, vm, {}, remove=[key]),
                show=False,
                on_finish=self._done,
            ),
            label="Remove key",
        )

    @on(Button.Pressed, "#remove")
    def remove_pressed(self) -> None:
        self.action_remove()

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.dismiss(None)
