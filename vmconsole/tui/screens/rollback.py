"""Guided rollback, step 2: the impact (from ``rollback_plan``), the safety snapshot, the typed name.

Nothing has changed yet: the screen shows what the service planned (the VM, its node, whether it is
stopped, how much data written since the snapshot is lost, the downtime), keeps the safety
snapshot on by default, and unlocks the button only when the VM name is typed. The progress screen
that follows offers "undo rollback" when it is done.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Static

from vmconsole.core.snapshots import RollbackPlan
from vmconsole.tui import text
from vmconsole.tui.screens.form_base import FormScreen


def impact_table(plan: RollbackPlan, now: datetime) -> Table:
    snap = plan.snapshot
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    where = text.plain(plan.vm, "bold")
    where.append(f" ({plan.status.value}")
    if plan.node:
        where.append(" on ")
        where.append(text.plain(plan.node, "bold"))
    where.append(")")
    table.add_row("VM", where)
    taken = text.plain(snap.name, "bold")
    taken.append(f"  taken {text.stamp(snap.created)} ({text.age(snap.created, now)} ago)")
    table.add_row("Back to", taken)
    if plan.will_stop:
        table.add_row(
            "Stopped", Text.assemble(("YES", "bold red"), ": ", text.plain(plan.vm), " is stopped during the rollback")
        )
    else:
        table.add_row("Stopped", Text("no: it is not running"))
    lost = Text("everything written since ", style="bold red")
    lost.append(text.stamp(snap.created), style="bold red")
    if plan.written_since is not None:
        lost.append(f": at least {text.size(plan.written_since)}", style="bold red")
    else:
        lost.append(" (amount unknown)", style="red")
    table.add_row("Lost", lost)
    table.add_row(
        "Config",
        Text(
            "the configuration recorded with the snapshot is restored"
            if plan.restores_config
            else "kept (the snapshot has no configuration recorded)"
        ),
    )
    table.add_row("After", Text("started again" if plan.restart_after else f"left {plan.status.value}"))
    table.add_row("Downtime", Text(f"about {text.duration(plan.expected_downtime)}", style="bold yellow"))
    for warning in plan.warnings:
        table.add_row(Text("Warning", style="bold yellow"), text.plain(warning, "yellow"))
    return table


class RollbackImpactScreen(FormScreen[bool | None]):
    HELP = """\
## Rollback: impact and confirmation

What the rollback will do, as the service planned it. Keep **safety snapshot** on: it records the
current state first, so the rollback can be undone (the progress screen offers **u** "undo
rollback"). Type the VM name to unlock **Roll back**; **escape** cancels, nothing has changed yet.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, plan: RollbackPlan, now: datetime) -> None:
        super().__init__(classes="form-screen")
        self.plan = plan
        self.now = now

    def compose(self) -> ComposeResult:
        plan = self.plan
        with Vertical(classes="form danger", id="impact-form"):
            with VerticalScroll(classes="form-body"):
                yield Static(impact_table(plan, self.now), classes="impact", id="impact")
                yield Checkbox(
                    Text.assemble(
                        "Safety snapshot first",
                        (f" ({plan.safety_snapshot})" if plan.safety_snapshot else "", "dim"),
                        ": allows undo",
                    ),
                    value=True,
                    id="safety",
                )
                yield Static("", id="safety-warning", classes="field-error")
                yield Label(
                    Text.assemble("Type ", text.plain(plan.vm, "bold reverse"), " (the VM name) to confirm:"),
                    classes="typed-label",
                )
                yield Input(placeholder=text.safe(plan.vm), id="typed")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Roll back", id="ok", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#impact-form").border_title = Text.assemble(
            "Rollback ", text.plain(self.plan.vm), " to ", text.plain(self.plan.snapshot.name), ": 2/3 impact"
        )
        self.query_one("#typed", Input).focus()

    @property
    def matches(self) -> bool:
        return self.query_one("#typed", Input).value == self.plan.vm

    @on(Input.Changed, "#typed")
    def typed(self) -> None:
        self.query_one("#ok", Button).disabled = not self.matches

    @on(Checkbox.Changed, "#safety")
    def safety_changed(self, event: Checkbox.Changed) -> None:
        warning = "" if event.value else "NO safety snapshot: the current state of the VM cannot be recovered."
        self.query_one("#safety-warning", Static).update(Text(warning))

    @on(Input.Submitted, "#typed")
    @on(Button.Pressed, "#ok")
    def confirm(self) -> None:
        if self.matches:
            self.dismiss(self.query_one("#safety", Checkbox).value)
        else:
            self.notify(f"Type {text.safe(self.plan.vm)} exactly to confirm.", severity="warning", markup=False)

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
