"""``K``: a VM's snapshot retention policy, and its prune with the dry run first.

The policy (keep the last N snapshots, and the newest of each of the last D days) is what
``vmconsole snapshot prune`` applies, on a timer or by hand; **Save policy** stores it on the cluster
(N = D = 0 removes it). **Preview prune** has the service compute what the policy removes now and
what it keeps and why (protected, linked clones, the safety snapshot of the last rollback, the
policy itself); the VM name typed unlocks **Prune**.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, Static

from vmconsole.core import snapshots
from vmconsole.core.snapshots import PurgePlan, RetentionPolicy
from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import VmState
from vmconsole.tui import gating, text
from vmconsole.tui.actions import BY_NAME, POLICY_SET
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.form_base import FormScreen
from vmconsole.tui.screens.purge import add_plan_columns, fill_plan_table, plan_summary


def policy_text(policy: RetentionPolicy | None) -> Text:
    if policy is None or (policy.keep_last == 0 and policy.keep_daily == 0):
        return Text("no retention policy: `snapshot prune` leaves this VM alone", style="dim")
    return Text.assemble(
        "keep the last ",
        (str(policy.keep_last), "bold"),
        " and the newest of each of the last ",
        (str(policy.keep_daily), "bold"),
        f" day{'s' if policy.keep_daily != 1 else ''}",
    )


class RetentionScreen(FormScreen[PurgePlan | None]):
    HELP = """\
## Retention policy and prune

* **Keep last** N and **Keep daily** D: the policy `vmconsole snapshot prune` applies (by a timer,
  or **B** here for every VM with a policy). **Save policy** stores it on the cluster; 0 and 0
  remove it.
* **Preview prune** (dry run): what the policy in the fields would remove now, and what it keeps
  and why (protected, linked clones, the safety snapshot of the last rollback, the policy).
* Type the VM name to unlock **Prune**; removed snapshots cannot come back.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, vm: VmState, now: datetime) -> None:
        super().__init__(classes="form-screen")
        self.vm = vm
        self.now = now
        self.policy: RetentionPolicy | None = None
        self.plan: PurgePlan | None = None

    def compose(self) -> ComposeResult:
        vm = self.vm
        with Vertical(classes="form danger fill", id="retention-form"):
            with VerticalScroll(classes="form-body"):
                yield Static(
                    Text.assemble(
                        "Snapshot retention of ",
                        text.plain(vm.name, "bold"),
                        f" ({len(vm.snapshots)} snapshot{'s' if len(vm.snapshots) != 1 else ''})",
                    )
                )
                yield Static(Text("reading the policy…", style="dim"), id="retention-now", classes="form-note")
                with Horizontal(classes="form-row"):
                    yield Label("Keep last", classes="form-label")
                    yield Input(placeholder="N snapshots (0: none)", id="keep-last")
                with Horizontal(classes="form-row"):
                    yield Label("Keep daily", classes="form-label")
                    yield Input(placeholder="the newest of each of the last D days (0: none)", id="keep-daily")
                yield Static("", id="retention-error", classes="field-error")
                with Horizontal(classes="form-row actions"):
                    yield Button("Save policy", id="save")
                    yield Button("Preview prune (dry run)", id="prune-preview", variant="primary")
                yield Static(plan_summary(None, "Press Preview prune"), id="retention-summary", classes="form-note")
                yield DataTable(id="retention-list", cursor_type="row", classes="list-table")
                yield Label(
                    Text.assemble("Type ", text.plain(vm.name, "bold reverse"), " (the VM name) to prune:"),
                    classes="typed-label",
                )
                yield Input(placeholder=text.safe(vm.name), id="typed")
            with Horizontal(classes="form-buttons"):
                yield Button("Close", id="cancel")
                yield Button("Prune", id="ok", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#retention-form").border_title = Text.assemble("Retention of ", text.plain(self.vm.name))
        add_plan_columns(self.query_one("#retention-list", DataTable))
        self.query_one("#retention-error", Static).display = False
        self.query_one("#save", Button).disabled = console_of(self.app).read_only
        self.query_one("#keep-last", Input).focus()
        self.reload()

    # ------------------------------------------------------------------------------------ the policy
    def reload(self) -> None:
        console = console_of(self.app)
        name = self.vm.name
        console.call_in_thread(
            lambda: snapshots.policies(console.services).get(name), self.show_policy, f"read the policy of {name}"
        )

    def show_policy(self, policy: RetentionPolicy | None) -> None:
        self.policy = policy
        self.query_one("#retention-now", Static).update(Text.assemble("Now: ", policy_text(policy)))
        if policy is not None:
            self.query_one("#keep-last", Input).value = str(policy.keep_last)
            self.query_one("#keep-daily", Input).value = str(policy.keep_daily)

    def typed_policy(self) -> RetentionPolicy:
        """The policy in the fields (empty is 0); ValidationError as ``snapshot policy`` reports it."""
        last = self.query_one("#keep-last", Input).value.strip() or "0"
        daily = self.query_one("#keep-daily", Input).value.strip() or "0"
        return RetentionPolicy(validate.count(last, "keep_last"), validate.count(daily, "keep_daily"))

    @on(Input.Changed, "#keep-last, #keep-daily")
    def policy_changed(self) -> None:
        self.plan = None
        self._show_plan()
        error = self.query_one("#retention-error", Static)
        try:
            self.typed_policy()
        except ValidationError as exc:
            error.update(text.plain(exc.message))
            error.display = True
        else:
            error.display = False

    @on(Button.Pressed, "#save")
    def save(self) -> None:
        if gating.refused(self.app, POLICY_SET):
            return
        try:
            policy = self.typed_policy()
        except ValidationError as exc:
            console_of(self.app).show_error(exc)
            return
        console = console_of(self.app)
        name = self.vm.name

        def saved(_result: object) -> None:
            removed = policy.keep_last == 0 and policy.keep_daily == 0
            self.notify(
                text.safe(f"{name}: " + ("retention policy removed" if removed else policy_text(policy).plain)),
                title="Retention policy saved",
                markup=False,
            )
            self.show_policy(None if removed else policy)

        console.call_in_thread(
            lambda: snapshots.set_policy(console.services, name, policy), saved, f"set the policy of {name}"
        )

    # ------------------------------------------------------------------------------------ the prune
    @on(Button.Pressed, "#prune-preview")
    @on(Input.Submitted, "#keep-last, #keep-daily")
    def preview(self) -> None:
        console = console_of(self.app)
        try:
            policy = self.typed_policy()
        except ValidationError as exc:
            console.show_error(exc)
            return
        name = self.vm.name
        self.query_one("#retention-summary", Static).update(Text("computing the dry run…", style="dim"))
        console.call_in_thread(
            lambda: snapshots.prune_plan(console.services, name, policy),
            self.show_plan,
            f"dry run of the prune of {name}",
            on_error=lambda _exc: self._show_plan(),
        )

    def show_plan(self, plan: PurgePlan) -> None:
        self.plan = plan
        self._show_plan()
        if plan.remove:
            self.query_one("#typed", Input).focus()

    def _show_plan(self) -> None:
        fill_plan_table(self.query_one("#retention-list", DataTable), self.plan, self.now)
        self.query_one("#retention-summary", Static).update(plan_summary(self.plan, "Press Preview prune"))
        self._update_ok()

    @on(Input.Changed, "#typed")
    def _update_ok(self) -> None:
        ready = self.plan is not None and bool(self.plan.remove) and not console_of(self.app).read_only
        self.query_one("#ok", Button).disabled = not (ready and self.query_one("#typed", Input).value == self.vm.name)

    @on(Input.Submitted, "#typed")
    @on(Button.Pressed, "#ok")
    def confirm(self) -> None:
        if gating.refused(self.app, BY_NAME["prune"]):
            return
        if self.plan is None or not self.plan.remove:
            self.notify("Preview the prune first: it must remove something.", severity="warning", markup=False)
        elif self.query_one("#typed", Input).value != self.vm.name:
            self.notify(f"Type {text.safe(self.vm.name)} exactly to confirm.", severity="warning", markup=False)
        else:
            self.dismiss(self.plan)

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
