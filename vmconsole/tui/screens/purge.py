"""``P``: purge old snapshots. The dry-run list (``purge_plan``) comes first, then the typed name.

Choose what to purge (the N oldest, those before a date, or all), press **Preview**: the service
lists what it would remove and what it keeps and why (protected, linked clones, the safety snapshot
of the last rollback). Changing the choice invalidates the preview. (A retention policy and its
prune are on ``K``.)
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, RadioButton, RadioSet, Static

from vmconsole.core import snapshots
from vmconsole.core.snapshots import PurgePlan
from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import VmState
from vmconsole.tui import text
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.form_base import FormScreen

MODES = ("oldest", "before", "all")


def add_plan_columns(table: DataTable[Text]) -> None:
    table.add_column("Action", key="action", width=7)
    table.add_column("Snapshot", key="name")
    table.add_column("Created", key="created", width=16)
    table.add_column("Age", key="age", width=4)
    table.add_column("Why kept", key="reason")


def plan_summary(plan: PurgePlan | None, ask: str = "Press Preview") -> Text:
    """What a purge or prune dry run found: how many go, how many stay, its notes."""
    summary = Text(end="")
    if plan is None:
        summary.append(f"{ask} to see what would be removed; nothing is removed before you confirm.", style="dim")
        return summary
    summary.append(f"Dry run ({text.safe(plan.mode)}): ")
    summary.append(f"{len(plan.remove)} to remove", style="bold red" if plan.remove else "bold")
    summary.append(f", {len(plan.keep)} kept.")
    for note in plan.notes:
        summary.append("\n")
        summary.append(text.plain(note, "yellow"))
    if plan.remove:
        summary.append("\nThe VM cannot be rolled back to removed snapshots.", style="red")
    return summary


def fill_plan_table(table: DataTable[Text], plan: PurgePlan | None, now: datetime) -> None:
    """Each snapshot the dry run would remove, then each it keeps, and why."""
    table.clear()
    if plan is None:
        return
    for snap in plan.remove:
        table.add_row(
            Text("REMOVE", style="bold red"),
            text.plain(snap.name, "bold"),
            Text(text.stamp(snap.created)),
            Text(text.age(snap.created, now)),
            Text(""),
            key=f"rm:{snap.name}",
        )
    for snap, reason in plan.keep:
        table.add_row(
            Text("keep", style="green"),
            text.plain(snap.name),
            Text(text.stamp(snap.created)),
            Text(text.age(snap.created, now)),
            text.plain(reason, "dim"),
            key=f"keep:{snap.name}",
        )


class PurgeScreen(FormScreen[PurgePlan | None]):
    HELP = """\
## Purge snapshots

Choose what to purge (the N oldest, those before a date, or all), then **Preview**: the dry run
lists what would be removed and what is kept and why (protected, linked clones, the safety snapshot
of the last rollback). Type the VM name to unlock **Purge**. Changing the choice drops the preview.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, vm: VmState, now: datetime) -> None:
        super().__init__(classes="form-screen")
        self.vm = vm
        self.now = now
        self.plan: PurgePlan | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="form danger", id="purge-form"):
            with VerticalScroll(classes="form-body"):
                yield Static(
                    Text.assemble(
                        "Purge snapshots of ",
                        text.plain(self.vm.name, "bold"),
                        f" ({len(self.vm.snapshots)} snapshot{'s' if len(self.vm.snapshots) != 1 else ''})",
                    )
                )
                with Horizontal(classes="form-row"):
                    with RadioSet(id="purge-mode"):
                        yield RadioButton("the N oldest", value=True, id="mode-oldest")
                        yield RadioButton("those before a date", id="mode-before")
                        yield RadioButton("all (except kept ones)", id="mode-all")
                    with Vertical(id="purge-choice-inputs"):
                        with Horizontal(classes="form-row"):
                            yield Label("N", classes="form-label")
                            yield Input("1", id="purge-oldest", type="integer")
                        with Horizontal(classes="form-row"):
                            yield Label("Before", classes="form-label")
                            yield Input(placeholder="2026-05-01 or 2026-05-01T12:00+02:00", id="purge-before")
                yield Static("", id="purge-error", classes="field-error")
                yield Button("Preview (dry run)", id="preview", variant="primary")
                yield Static(Text("Nothing is removed before you confirm below.", style="dim"), id="purge-summary")
                yield DataTable(id="purge-list", cursor_type="row", classes="list-table")
                yield Label(
                    Text.assemble("Type ", text.plain(self.vm.name, "bold reverse"), " (the VM name) to confirm:"),
                    classes="typed-label",
                )
                yield Input(placeholder=text.safe(self.vm.name), id="typed")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Purge", id="ok", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#purge-form").border_title = Text.assemble("Purge ", text.plain(self.vm.name))
        add_plan_columns(self.query_one("#purge-list", DataTable))
        self.query_one("#purge-oldest", Input).focus()

    # ------------------------------------------------------------------------------------ choice
    @property
    def mode(self) -> str:
        pressed = self.query_one("#purge-mode", RadioSet).pressed_index
        return MODES[pressed] if 0 <= pressed < len(MODES) else "oldest"

    def _arguments(self) -> dict[str, object]:
        """The purge_plan arguments for the current choice; ValidationError when a field is wrong."""
        mode = self.mode
        if mode == "oldest":
            raw = self.query_one("#purge-oldest", Input).value
            try:
                count = int(raw)
            except ValueError as exc:
                raise ValidationError(f"{text.safe(raw)!r} is not a number", field="N") from exc
            return {"oldest": validate.count(count, "N")}
        if mode == "before":
            parsed = validate.parse_datetime(self.query_one("#purge-before", Input).value, field="before")
            return {"before": validate.not_in_future(parsed.value, self.now, field="before")}
        return {"all": True}

    @on(RadioSet.Changed)
    @on(Input.Changed, "#purge-oldest")
    @on(Input.Changed, "#purge-before")
    def choice_changed(self) -> None:
        self.plan = None
        self._show_plan()
        error = ""
        try:
            arguments = self._arguments()
        except ValidationError as exc:
            error = exc.message
        else:
            before = arguments.get("before")
            if isinstance(before, datetime):
                self.query_one("#purge-error", Static).update(
                    Text(f"before {before.isoformat(sep=' ')}", style="green")
                )
                return
        self.query_one("#purge-error", Static).update(text.plain(error))

    @on(Button.Pressed, "#preview")
    @on(Input.Submitted, "#purge-oldest")
    @on(Input.Submitted, "#purge-before")
    def preview(self) -> None:
        console = console_of(self.app)
        try:
            arguments = self._arguments()
        except ValidationError as exc:
            console.show_error(exc)
            return
        vm = self.vm.name
        self.query_one("#purge-summary", Static).update(Text("computing the dry run…", style="dim"))
        console.call_in_thread(
            lambda: snapshots.purge_plan(console.services, vm, **arguments),  # type: ignore[arg-type]
            self.show_plan,
            f"dry run of the purge of {vm}",
            on_error=lambda _exc: self._show_plan(),
        )

    # ------------------------------------------------------------------------------------ dry run
    def show_plan(self, plan: PurgePlan) -> None:
        self.plan = plan
        self._show_plan()
        if plan.remove:
            self.query_one("#typed", Input).focus()

    def _show_plan(self) -> None:
        table: DataTable[Text] = self.query_one("#purge-list", DataTable)
        fill_plan_table(table, self.plan, self.now)
        self.query_one("#purge-summary", Static).update(plan_summary(self.plan))
        self._update_ok()

    @on(Input.Changed, "#typed")
    def _update_ok(self) -> None:
        ready = self.plan is not None and bool(self.plan.remove)
        self.query_one("#ok", Button).disabled = not (ready and self.query_one("#typed", Input).value == self.vm.name)

    @on(Input.Submitted, "#typed")
    @on(Button.Pressed, "#ok")
    def confirm(self) -> None:
        if self.plan is None or not self.plan.remove:
            self.notify("Preview the purge first.", severity="warning", markup=False)
        elif self.query_one("#typed", Input).value != self.vm.name:
            self.notify(f"Type {text.safe(self.vm.name)} exactly to confirm.", severity="warning", markup=False)
        else:
            self.dismiss(self.plan)

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
