"""``u``, step 2: what the update changes (the service's plan summary and the XML diff), then confirm.

Nothing has been written yet. When the plan restarts the VM (its definition changed while it runs)
the VM name must be typed to unlock **Apply**; otherwise it is a y/n question, defaulting to No.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Footer, Input, Label, Static

from vmconsole.core.vms import UpdatePlan
from vmconsole.tui import text
from vmconsole.tui.screens.form_base import FormScreen


def summary_text(plan: UpdatePlan) -> Text:
    """The plan's summary without its XML diff (shown below it, coloured) and its warnings (shown
    apart, in yellow, with a ⚠): each line literal."""
    warnings = {f"warning: {w}" for w in plan.warnings}
    lines = [line for line in plan.summary() if line not in warnings]
    block = ["domain XML:", *(f"  {line}" for line in plan.xml_diff)]
    for start in range(len(lines) - len(block) + 1):
        if plan.xml_diff and lines[start : start + len(block)] == block:
            lines = lines[:start] + lines[start + len(block) :]
            break
    out = Text(end="")
    for index, line in enumerate(lines):
        if index:
            out.append("\n")
        if index == 0:
            style = "bold"
        elif index == len(lines) - 1:
            style = "bold red" if plan.restart else "green"
        elif line.startswith("  "):
            style = ""
        else:
            style = "yellow"
        out.append(text.plain(line, style))
    for warning in plan.warnings:
        out.append("\n⚠ ", style="bold yellow")
        out.append(text.plain(warning, "bold yellow"))
    return out


class UpdateDiffScreen(FormScreen[bool]):
    HELP = """\
## Update: review and confirm

The service's plan: the settings that change (before -> after), the domain XML diff (`-` removed,
`+` added, in canonical form), whether the Pacemaker primitive is rewritten and whether the VM is
restarted, and ⚠ what the new XML can do on the host (host devices or paths handed to the guest,
QEMU command-line arguments...). Nothing is written yet. **y** or **Apply** confirms (when the VM is restarted, type its
name first); **escape** or **n** cancels.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel", id="update.cancel"),
        Binding("y", "apply", "Apply", id="update.apply"),
        Binding("left,right", "switch", "Switch button", show=False, id="update.switch"),
    ]

    def __init__(self, plan: UpdatePlan) -> None:
        super().__init__(classes="form-screen")
        self.plan = plan

    def compose(self) -> ComposeResult:
        plan = self.plan
        with Vertical(classes="form fill" + (" danger" if plan.restart else ""), id="update-diff-form"):
            yield Static(summary_text(plan), classes="impact", id="update-summary")
            with VerticalScroll(classes="xml-view", id="update-diff"):
                if plan.xml_diff:
                    yield Static(
                        text.highlighted("\n".join(plan.xml_diff), "diff"),
                        id="update-diff-text",
                    )
                else:
                    yield Static(Text("the domain XML does not change", style="dim"), id="update-diff-text")
            if plan.restart:
                yield Label(
                    Text.assemble(
                        "The VM is restarted. Type ", text.plain(plan.vm, "bold reverse"), " (the VM name) to confirm:"
                    ),
                    classes="typed-label",
                )
                yield Input(placeholder=text.safe(plan.vm), id="typed", select_on_focus=False)
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(
                    "Apply and restart" if plan.restart else "Apply",
                    id="ok",
                    variant="error" if plan.restart else "primary",
                    disabled=plan.restart,
                )
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#update-diff-form").border_title = Text.assemble(
            "Update ", text.plain(self.plan.vm), ": review the changes"
        )
        if self.plan.restart:
            self.query_one("#typed", Input).focus()
        else:
            self.query_one("#cancel", Button).focus()

    @property
    def matches(self) -> bool:
        return not self.plan.restart or self.query_one("#typed", Input).value == self.plan.vm

    @on(Input.Changed, "#typed")
    def typed_changed(self) -> None:
        self.query_one("#ok", Button).disabled = not self.matches

    @on(Input.Submitted, "#typed")
    @on(Button.Pressed, "#ok")
    def confirm(self) -> None:
        if self.matches:
            self.dismiss(True)
        else:
            self.notify(f"Type {text.safe(self.plan.vm)} exactly to confirm.", severity="warning", markup=False)

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.dismiss(False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            return not self.plan.restart  # a restart needs the typed name: y is not enough
        return True

    def action_apply(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
