"""``I``: import a VM defined in this host's libvirt into the cluster (vm_manager's add-to-cluster).

The domain's disks are copied into Ceph (their format read from the domain's ``<driver type>``),
its XML kept without them, and it becomes a cluster VM with the settings of this form (the same as
``vm import``); when it is built, the local definition is removed (the disk files stay).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from vmconsole.core import vms
from vmconsole.core.vms import VmOptions
from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import NodeState
from vmconsole.tui import text
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.create import DISK_BUSES, member_nodes
from vmconsole.tui.screens.form_base import PlanningForm
from vmconsole.tui.widgets.vm_settings import Mode, VmSettingsFields


@dataclass(frozen=True)
class ImportSpec:
    domain: str
    new_name: str | None = None
    disk_bus: str = "virtio"
    options: VmOptions = field(default_factory=VmOptions)


def check_domain(value: str) -> str | None:
    """A libvirt domain name as typed: one line of printable text (libvirt says whether it exists)."""
    if not value:
        return "give the name of a domain defined in this host's libvirt (virsh list --all)"
    if not value.isprintable() or "/" in value:
        return f"{validate.show(value)} is not a libvirt domain name"
    return None


class ImportScreen(PlanningForm[ImportSpec]):
    HELP = """\
## Import a libvirt domain (add-to-cluster)

* **Domain**: a domain defined in *this host's* libvirt (`virsh list --all`), shut off: its disks
  must not change while they are copied. The list under it shows this host's domains that are not
  cluster VMs; **enter** on one fills the field (a running one is shown, not offered).
* **New name**: the cluster VM's name (default: the domain's; letters and digits only).
* **Disk bus** and the settings every VM form shares (enable, start, placement, live migration,
  Pacemaker options, metadata).

**Review the plan…** has the service read the domain and plan the import (the disks it copies, its
warnings); nothing is made before you confirm. When the cluster VM is built, the local libvirt
definition is removed; the local disk files stay where they are.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, domain: str | None = None, *, nodes: Sequence[NodeState] = ()) -> None:
        super().__init__(classes="form-screen")
        words = (domain or "").split()
        self.initial = (words[0] if words else "", words[1] if len(words) > 1 else "")
        self.nodes = member_nodes(nodes)

    def compose(self) -> ComposeResult:
        domain, new_name = self.initial
        with Vertical(classes="form fill", id="import-form"):
            yield from self._body(domain, new_name)
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Review the plan…", id="ok", variant="primary", disabled=True)

    def _body(self, domain: str, new_name: str) -> ComposeResult:
        with VerticalScroll(classes="form-body"):
            yield Static(Text("The libvirt domain", style="bold"), classes="form-section")
            with Horizontal(classes="form-row"):
                yield Label("Domain", classes="form-label")
                yield Input(domain, placeholder="a domain of this host's libvirt, shut off", id="import-domain")
            yield Static("", id="import-domain-error", classes="field-error")
            yield Static(
                text.plain("Reading this host's libvirt domains…"), id="import-domains-note", classes="field-note"
            )
            yield OptionList(id="import-domains")
            with Horizontal(classes="form-row"):
                yield Label("New name", classes="form-label")
                yield Input(new_name, placeholder="default: the domain's name", id="import-name")
            yield Static("", id="import-name-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("Disk bus", classes="form-label")
                yield Select(
                    [(Text(bus + (" (default)" if bus == "virtio" else "")), bus) for bus in DISK_BUSES],
                    value="virtio",
                    allow_blank=False,
                    id="import-bus",
                )
            yield VmSettingsFields(Mode.IMPORT, self.nodes, id="import-settings")

    def on_mount(self) -> None:
        self.query_one("#import-form").border_title = "Import a libvirt domain into the cluster"
        self.query_one("#import-domain", Input).focus()
        self.query_one("#import-domains", OptionList).display = False
        self.check()
        console = console_of(self.app)
        console.call_in_thread(
            lambda: vms.local_domains(console.services),
            self.show_domains,
            "list this host's libvirt domains",
            on_error=lambda error: self._note(f"This host's libvirt domains could not be listed: {error}"),
            quiet=True,
        )

    def _note(self, message: str) -> None:
        self.query_one("#import-domains-note", Static).update(text.plain(message))

    def show_domains(self, domains: list[vms.LocalDomain]) -> None:
        """This host's domains under the field: the shut-off ones can be picked, the others are shown why not."""
        if not domains:
            self._note("This host's libvirt has no domain outside the cluster.")
            return
        picker = self.query_one("#import-domains", OptionList)
        picker.add_options(
            Option(
                text.plain(f"{d.name}  ({d.state})" + ("" if d.importable else ": shut it down to import it")),
                id=d.name,
                disabled=not (d.importable and d.name.isprintable()),  # never a control character in a field
            )
            for d in domains
        )
        picker.display = True
        importable = sum(d.importable for d in domains)
        self._note(f"This host's libvirt: {len(domains)} domain(s) outside the cluster, {importable} shut off.")

    @on(OptionList.OptionSelected, "#import-domains")
    def pick_domain(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.query_one("#import-domain", Input).value = event.option.id
            self.query_one("#import-name", Input).focus()

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def _show(self, widget_id: str, error: str | None) -> None:
        widget = self.query_one(f"#{widget_id}", Static)
        widget.update(text.plain(error or ""))
        widget.display = bool(error)

    @on(Input.Changed, "#import-domain, #import-name")
    @on(VmSettingsFields.Changed)
    def check(self) -> bool:
        domain = self._value("import-domain")
        domain_error = check_domain(domain)
        self._show("import-domain-error", domain_error if domain else None)
        name = self._value("import-name") or domain
        name_error = None
        if name:
            try:
                validate.vm_name(name, field="new_name")
            except ValidationError as exc:
                name_error = exc.message + ("" if self._value("import-name") else " (give a new name)")
            state = console_of(self.app).state
            if name_error is None and state is not None and state.vm(name) is not None:
                name_error = f"a VM named {name} already exists in the cluster"
        self._show("import-name-error", name_error)
        ok = self.query_one(VmSettingsFields).check() and not (domain_error or name_error)
        self.query_one("#ok", Button).disabled = not ok
        return ok

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted)
    def submit(self) -> None:
        if not self.check():
            self.notify("Fix the fields marked in red first.", severity="warning", markup=False)
            return
        try:
            options = self.query_one(VmSettingsFields).options()
        except ValidationError as exc:
            console_of(self.app).show_error(exc)
            return
        spec = ImportSpec(
            domain=self._value("import-domain"),
            new_name=self._value("import-name") or None,
            disk_bus=str(self.query_one("#import-bus", Select).value),
            options=options,
        )
        self.plan_task(
            spec,
            lambda s: vms.plan_import(
                s, spec.domain, new_name=spec.new_name, options=spec.options, disk_bus=spec.disk_bus
            ),
            f"plan the import of {spec.domain}",
        )

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
