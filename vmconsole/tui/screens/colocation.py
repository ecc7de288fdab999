"""``W``: keep a VM on the same node as other Pacemaker resources (``vmconsole constraint colocate``).

The colocation is kept in the VM's metadata (so enabling the VM again re-applies it) and added to the
CIB at once when the VM is enabled. A strong one (score INFINITY) never lets the VM run elsewhere; the
default (700) only prefers it. A colocation with the same resources replaces the previous one.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, Static

from vmconsole.core import vms
from vmconsole.domain import units, validate
from vmconsole.domain.model import VmState
from vmconsole.tui import readable, text
from vmconsole.tui.screens.form_base import PlanningForm


def check_resources(value: str) -> tuple[list[str], str | None]:
    """The resources typed (space-separated) and the problem, as ``constraint colocate`` reports it."""
    resources = value.split()
    if not resources:
        return [], "name at least one resource to colocate with"
    for resource in resources:
        if not units.NAME_PATTERN.fullmatch(resource):
            return resources, f"{validate.show(resource)} is not a resource name"
    return resources, None


class ColocationScreen(PlanningForm[tuple[list[str], bool | None]]):
    HELP = """\
## Colocation

Keep the VM on the same node as other Pacemaker resources (VMs or not), space-separated. **Strong**
(score INFINITY): it never runs anywhere else, and stops when they cannot be hosted; otherwise
(score 700) it only prefers their node. The colocation is kept in the VM's metadata, so it comes
back when the VM is enabled again. A colocation with the same resources replaces the previous one.

**Remove** forgets the colocation with exactly the resources typed (or the VM's only one when the field
is empty): out of the VM's metadata and the CIB.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, vm: VmState, candidates: list[str], preset: str = "") -> None:
        super().__init__(classes="form-screen")
        self.vm = vm
        self.candidates = candidates  # enabled resources to suggest (other VMs)
        self.preset = preset

    def compose(self) -> ComposeResult:
        vm = self.vm
        current = vm.settings.get("colocations") or []
        with Vertical(classes="form", id="colocation-form"):
            yield Static(Text.assemble("Colocation of ", text.where(vm)))
            yield Static(
                Text.assemble(
                    "Now: ",
                    Text(readable.colocations(current), style="") if current else Text("none", style="dim"),
                ),
                classes="form-note",
            )
            with Horizontal(classes="form-row"):
                yield Label("With", classes="form-label")
                yield Input(self.preset, placeholder="resources, space-separated", id="colocate-resources")
            yield Static("", id="colocate-error", classes="field-error")
            if self.candidates:
                yield Static(
                    Text.assemble(("enabled VMs: ", "dim"), text.plain(" ".join(self.candidates), "dim")),
                    classes="form-note",
                )
            yield Checkbox(
                "Strong: score INFINITY, never elsewhere (else 700: a preference)",
                value=False,
                id="colocate-strong",
            )
            if not vm.enabled:
                yield Static(
                    Text("The VM is disabled: the colocation is kept and applies when it is enabled.", style="yellow"),
                    classes="form-note",
                )
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                if current:
                    yield Button("Remove…", id="remove", variant="warning")
                yield Button("Review…", id="ok", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#colocation-form").border_title = Text.assemble("Colocate ", text.plain(self.vm.name))
        self.query_one("#colocate-resources", Input).focus()
        self.check()

    @on(Input.Changed, "#colocate-resources")
    def check(self) -> bool:
        raw = self.query_one("#colocate-resources", Input).value
        resources, error = check_resources(raw)
        if error is None and self.vm.name in resources:
            error = "a VM cannot be colocated with itself"
        widget = self.query_one("#colocate-error", Static)
        widget.update(text.plain(error if raw.strip() else "") if error else "")
        widget.display = bool(error and raw.strip())
        self.query_one("#ok", Button).disabled = error is not None
        return error is None

    @on(Input.Submitted, "#colocate-resources")
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        if not self.check():
            return
        resources, _error = check_resources(self.query_one("#colocate-resources", Input).value)
        strong = self.query_one("#colocate-strong", Checkbox).value
        vm = self.vm.name
        self.plan_task(
            (resources, strong), lambda s: vms.plan_colocate(s, vm, resources, strong), f"plan the colocation of {vm}"
        )

    @on(Button.Pressed, "#remove")
    def remove_colocation(self) -> None:
        raw = self.query_one("#colocate-resources", Input).value
        resources, error = check_resources(raw)
        current = self.vm.settings.get("colocations") or []
        if not raw.strip() and len(current) == 1:
            resources, error = [str(r) for r in current[0].get("resources", [])], None
        if error is not None:
            widget = self.query_one("#colocate-error", Static)
            widget.update(text.plain("type the resources of the colocation to remove"))
            widget.display = True
            return
        vm = self.vm.name
        self.plan_task(
            (resources, None), lambda s: vms.plan_uncolocate(s, vm, resources), f"plan removing {vm}'s colocation"
        )

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
