"""``Z``: the pacemaker-remote node a VM carries (``vmconsole remote add|remove``): its guest joins
the cluster as a remote node, so Pacemaker can run resources inside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from vmconsole.core import vms
from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import VmState
from vmconsole.tui import readable, text
from vmconsole.tui.screens.form_base import PlanningForm

FIELDS = (
    ("remote_name", "Remote name", "the guest's node name in the cluster"),
    ("remote_address", "Address", "the guest's address (name or IP)"),
    ("remote_port", "Port", "default 3121"),
    ("remote_timeout", "Timeout", "connect timeout, seconds (default Pacemaker's)"),
)


@dataclass(frozen=True)
class RemoteChoice:
    """Add (``name`` given) or remove (``name`` None) the VM's pacemaker-remote node."""

    name: str | None
    address: str | None = None
    port: str | None = None
    timeout: str | None = None


def check_remote(values: dict[str, str]) -> dict[str, str]:
    """Field -> problem, as ``remote add`` reports it (the same validators)."""
    problems: dict[str, str] = {}
    checks: dict[str, Callable[[str], object]] = {
        "remote_name": lambda v: validate.vm_name(v, field="remote_name"),
        "remote_port": lambda v: validate.count(v, "remote_port"),
        "remote_timeout": lambda v: validate.timeout_seconds(v, "remote_timeout"),
    }
    for field, check in checks.items():
        value = values.get(field, "")
        if not value and field != "remote_name":
            continue
        try:
            check(value)
        except ValidationError as exc:
            problems[field] = exc.message
    if not values.get("remote_address"):
        problems["remote_address"] = "give the remote node's address"
    return problems


class RemoteScreen(PlanningForm[RemoteChoice]):
    HELP = """\
## Pacemaker remote

The VM's guest can join the cluster as a *pacemaker-remote* node (it runs `pacemaker-remoted`):
Pacemaker then runs resources inside it. **Add** records the remote node in the VM's metadata and,
when the VM is enabled, sets the primitive's `remote-node`, `remote-addr`, `remote-port` and
`remote-connect-timeout`; **Remove** takes them away. Both show the plan before anything changes.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, vm: VmState) -> None:
        super().__init__(classes="form-screen")
        self.vm = vm

    def compose(self) -> ComposeResult:
        vm = self.vm
        settings = vm.settings
        with Vertical(classes="form", id="remote-form"):
            yield Static(Text.assemble("Pacemaker remote of ", text.where(vm)))
            yield Static(
                Text.assemble("Now: ", readable.remote(settings)),
                classes="form-note",
            )
            initial = {
                "remote_name": settings.get("remote_node") or "",
                "remote_address": settings.get("remote_node_address") or "",
                "remote_port": settings.get("remote_node_port") or "",
                "remote_timeout": settings.get("remote_node_timeout") or "",
            }
            for field, label, placeholder in FIELDS:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(str(initial[field]), placeholder=placeholder, id=f"remote-{field}")
                yield Static("", id=f"remote-{field}-error", classes="field-error")
            if not vm.enabled:
                yield Static(
                    Text("The VM is disabled: the remote node applies when it is enabled.", style="yellow"),
                    classes="form-note",
                )
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Remove", id="remove", variant="warning", disabled=not settings.get("remote_node"))
                yield Button("Add / replace…", id="ok", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#remote-form").border_title = Text.assemble("Pacemaker remote ", text.plain(self.vm.name))
        self.query_one("#remote-remote_name", Input).focus()
        self.check()

    def values(self) -> dict[str, str]:
        return {field: self.query_one(f"#remote-{field}", Input).value.strip() for field, _l, _p in FIELDS}

    @on(Input.Changed)
    def check(self) -> bool:
        values = self.values()
        problems = check_remote(values)
        for field, _label, _placeholder in FIELDS:
            widget = self.query_one(f"#remote-{field}-error", Static)
            shown = (
                problems.get(field)
                if values.get(field) or (field == "remote_address" and values["remote_name"])
                else None
            )
            widget.update(text.plain(shown or ""))
            widget.display = bool(shown)
        self.query_one("#ok", Button).disabled = bool(problems)
        return not problems

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        if not self.check():
            self.notify("Fix the fields marked in red first.", severity="warning", markup=False)
            return
        values = self.values()
        choice = RemoteChoice(
            values["remote_name"],
            values["remote_address"],
            values["remote_port"] or None,
            values["remote_timeout"] or None,
        )
        vm = self.vm.name
        self.plan_task(
            choice,
            lambda s: vms.plan_remote(
                s, vm, remote_name=choice.name, address=choice.address, port=choice.port, timeout=choice.timeout
            ),
            f"plan the pacemaker-remote of {vm}",
        )

    @on(Button.Pressed, "#remove")
    def remove_pressed(self) -> None:
        vm = self.vm.name
        self.plan_task(
            RemoteChoice(None), lambda s: vms.plan_remote(s, vm, remote_name=None), f"plan the removal of {vm}'s remote"
        )

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
