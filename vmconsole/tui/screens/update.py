"""``u``: update a VM in place (same name, same UUID): a new domain XML and/or any of its settings.

The form only gathers what the operator wants to change; **Review changes** has the service plan
the update (``update_plan``, in a worker: it validates everything) and the next screen shows the
plan's summary and the XML diff before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from vmconsole.core import vms
from vmconsole.core.vms import UpdatePlan, VmOptions
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import NodeState, VmState
from vmconsole.tui import form_checks, text
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.create import member_nodes
from vmconsole.tui.screens.file_picker import FilePickerScreen
from vmconsole.tui.screens.form_base import FormScreen
from vmconsole.tui.widgets.vm_settings import Mode, VmSettingsFields


class UpdateScreen(FormScreen[UpdatePlan | None]):
    HELP = """\
## Update a VM in place

Give a new **domain XML** (without disks: vmconsole adds the RBD disks and keeps the UUID) and/or
change any setting `vm update` takes: placement (pinned and preferred host: pick **not set** to
clear one), live migration and its user, timeout and downtime, stop timeout, priority, Pacemaker
meta/params/utilization (the list shown is the current one: edit it, or empty it to clear it),
extra constraints, and user metadata to set or remove. Fields left as they are keep the value.

**Review changes** has the service plan the update: the next screen shows what changes (settings,
the XML diff, warnings about what the new XML can do on the host) and whether the VM must be
restarted; nothing is written before you confirm there.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, vm: VmState, nodes: Sequence[NodeState] = ()) -> None:
        super().__init__(classes="form-screen")
        self.vm = vm
        self.nodes = member_nodes(nodes)
        self.xml_text: str | None = None
        self.planning = False

    def compose(self) -> ComposeResult:
        vm = self.vm
        with Vertical(classes="form fill", id="update-form"):
            with VerticalScroll(classes="form-body"):
                intro = Text.assemble("Update ", text.plain(vm.name, "bold"), " (", text.status_text(vm))
                if vm.node:
                    intro.append(" on ")
                    intro.append(text.plain(vm.node, "bold"))
                intro.append(") in place: same name, same UUID.")
                yield Static(intro)
                with Horizontal(classes="form-row"):
                    yield Label("Domain XML", classes="form-label")
                    yield Input(placeholder="unchanged; or a new XML (no disks)", id="update-xml")
                    yield Button("Browse…", id="browse-xml")
                yield Static("", id="update-xml-error", classes="field-error")
                yield VmSettingsFields(Mode.UPDATE, self.nodes, vm.settings, id="update-settings")
                yield Static("", id="update-status", classes="form-note")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Review changes…", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#update-form").border_title = Text.assemble("Update ", text.plain(self.vm.name))
        self.query_one("#update-status", Static).display = False
        self.query_one("#update-xml-error", Static).display = False
        self.query_one("#update-xml", Input).focus()

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    @on(Input.Changed, "#update-xml")
    def check_xml(self) -> bool:
        path = self._value("update-xml")
        error: str | None = None
        self.xml_text = None
        if path:
            self.xml_text, error = form_checks.read_xml(path)
        widget = self.query_one("#update-xml-error", Static)
        widget.set_class(error is None, "field-ok")
        widget.set_class(error is not None, "field-error")
        widget.update(text.plain(error if error is not None else ("valid domain XML (no disks)" if path else "")))
        widget.display = bool(path)
        return error is None

    @on(Button.Pressed, "#browse-xml")
    def browse_xml(self) -> None:
        box = self.query_one("#update-xml", Input)

        def picked(path: str | None) -> None:
            if path:
                box.value = path
                box.focus()

        self.app.push_screen(FilePickerScreen("Pick the new domain XML", box.value or None), picked)

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted)
    def review(self) -> None:
        if self.planning:
            return
        if not self.check_xml():
            self.notify("Fix the domain XML first (or clear the field).", severity="warning", markup=False)
            return
        fields = self.query_one(VmSettingsFields)
        if not fields.check():
            self.notify("Fix the fields marked in red first.", severity="warning", markup=False)
            return
        try:
            options = fields.options()
        except ValidationError as exc:
            console_of(self.app).show_error(exc)
            return
        remove = fields.remove_metadata()
        xml = self.xml_text
        if xml is None and options == VmOptions() and not remove:
            self.notify("Nothing given: pick a new domain XML and/or change a setting.", markup=False)
            return
        vm = self.vm.name
        self._busy(True)
        console = console_of(self.app)
        console.call_in_thread(
            lambda: vms.update_plan(console.services, vm, xml=xml, options=options, remove_metadata=remove),
            self.planned,
            f"plan the update of {vm}",
            on_error=lambda _exc: self._busy(False),
        )

    def _busy(self, busy: bool) -> None:
        self.planning = busy
        status = self.query_one("#update-status", Static)
        status.update(Text("planning the update: checking everything…", style="dim"))
        status.display = busy
        self.query_one("#ok", Button).disabled = busy

    def planned(self, plan: UpdatePlan) -> None:
        self._busy(False)
        if not plan.changed:
            self.notify("\n".join(text.safe(line) for line in plan.summary()), title="Update", timeout=8, markup=False)
            return
        self.dismiss(plan)

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
