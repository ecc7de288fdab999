"""``a``: create a VM from a disk image and a domain XML, with every option of ``vm create``.

Sections: the VM (name, image, XML, data disks, disk bus, UUID), then the settings every VM form
shares (``VmSettingsFields``: in the cluster, placement, live migration, Pacemaker, metadata). Every
field is checked as it is typed; **Review the plan…** has the service plan the creation and shows it
(its steps, its warnings) before anything is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from vmconsole.core import vms
from vmconsole.core.vms import CreateSpec
from vmconsole.domain import domain_xml, validate
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import NodeState
from vmconsole.tui import form_checks, text
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.file_picker import FilePickerScreen
from vmconsole.tui.screens.form_base import PlanningForm
from vmconsole.tui.widgets.vm_settings import Mode, VmSettingsFields

DISK_BUSES = ("virtio", "sata", "scsi", "ide", "usb")


def member_nodes(nodes: Sequence[NodeState]) -> list[str]:
    """The nodes a VM may be placed on: cluster members (a pacemaker-remote node hosts no VM)."""
    return [n.name for n in nodes if n.kind == "member"]


def check_uuid(value: str) -> str | None:
    """The problem with a UUID as ``vm create --uuid`` reports it, or None."""
    try:
        domain_xml.domain_uuid(f"<domain><uuid>{value}</uuid></domain>")
    except ValidationError as exc:
        return exc.message
    return None


class CreateScreen(PlanningForm[CreateSpec]):
    HELP = """\
## Create a VM

* **Name**: ASCII letters and digits, starting with a letter (it is also the Pacemaker resource id).
* **Image**: a local qcow2 or raw disk image, imported into Ceph (progress with throughput and ETA).
* **XML**: the libvirt domain definition *without* disks: vmconsole adds the RBD disks itself.
* **Data disks**: optional extra images, separated by commas (`data_<vm>_0`, `_1`…).
* **Disk bus** and **UUID** (default: the XML's, else a new one).
* Then the settings every VM form shares: enable and start, **force** (replace an existing VM of
  this name: built aside, then swapped in), placement, live migration, Pacemaker options and user
  metadata. Each field says what it is when left empty.

**Browse…** opens a file picker. **Review the plan…** has the service check everything and plan the
creation (a refusal is shown and the form stays), then shows the plan, its steps and its warnings;
nothing is made before you confirm there. On failure the finished steps are undone.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, name: str = "", image: str = "", xml: str = "", *, nodes: Sequence[NodeState] = ()) -> None:
        super().__init__(classes="form-screen")
        self.initial = (name, image, xml)
        self.nodes = member_nodes(nodes)
        self.xml_text: str | None = None

    def compose(self) -> ComposeResult:
        name, image, xml = self.initial
        with Vertical(classes="form fill", id="create-form"):
            yield from self._body(name, image, xml)
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Review the plan…", id="ok", variant="primary", disabled=True)

    def _body(self, name: str, image: str, xml: str) -> ComposeResult:
        with VerticalScroll(classes="form-body", id="create-body"):
            yield Static(Text("The VM", style="bold"), classes="form-section")
            with Horizontal(classes="form-row"):
                yield Label("Name", classes="form-label")
                yield Input(name, placeholder="e.g. web3", id="create-name")
            yield Static("", id="create-name-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("Image", classes="form-label")
                yield Input(image, placeholder="/var/lib/images/debian.qcow2", id="create-image")
                yield Button("Browse…", id="browse-image")
            yield Static("", id="create-image-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("Domain XML", classes="form-label")
                yield Input(xml, placeholder="/etc/vmconsole/web.xml", id="create-xml")
                yield Button("Browse…", id="browse-xml")
            yield Static("", id="create-xml-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("Data disks", classes="form-label")
                yield Input(placeholder="none; or /path/a.qcow2, /path/b.raw", id="create-data")
                yield Button("Add…", id="browse-data")
            yield Static("", id="create-data-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("Disk bus", classes="form-label")
                yield Select(
                    [(Text(bus + (" (default)" if bus == "virtio" else "")), bus) for bus in DISK_BUSES],
                    value="virtio",
                    allow_blank=False,
                    id="create-bus",
                )
            with Horizontal(classes="form-row"):
                yield Label("UUID", classes="form-label")
                yield Input(placeholder="default: the XML's, else a new one", id="create-uuid")
            yield Static("", id="create-uuid-error", classes="field-error")
            yield VmSettingsFields(Mode.CREATE, self.nodes, id="create-settings")

    def on_mount(self) -> None:
        self.query_one("#create-form").border_title = "Create a VM"
        self.query_one("#create-name", Input).focus()
        self.check()

    @property
    def settings(self) -> VmSettingsFields:
        return self.query_one(VmSettingsFields)

    def _existing(self) -> set[str]:
        state = console_of(self.app).state
        return {vm.name for vm in state.vms} if state else set()

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def _show(self, widget_id: str, error: str | None, ok: str = "") -> None:
        widget = self.query_one(f"#{widget_id}", Static)
        widget.set_class(error is None, "field-ok")
        widget.set_class(error is not None, "field-error")
        message = error if error is not None else ok
        widget.update(text.plain(message))
        widget.display = bool(message)

    def _name_error(self, name: str) -> str | None:
        if not name:
            return "give the VM a name"
        try:
            validate.vm_name(name)
        except ValidationError as exc:
            return exc.message
        if name in self._existing() and not self.settings.force:
            return f"a VM named {name} already exists (tick Force below to replace it)"
        return None

    @on(Input.Changed, "#create-name, #create-image, #create-xml, #create-data, #create-uuid")
    @on(VmSettingsFields.Changed)
    def check(self) -> bool:
        """Check every field; show each field's problem under it; enable the button when all are fine."""
        name = self._value("create-name")
        name_error = self._name_error(name)
        replacing = name in self._existing() and self.settings.force and name_error is None
        self._show(
            "create-name-error", name_error if name else None, f"replaces the existing {name}" if replacing else ""
        )
        image = self._value("create-image")
        image_error = form_checks.check_file(image, "disk image") if image else "give a disk image"
        self._show("create-image-error", image_error if image else None, "found" if image else "")
        xml = self._value("create-xml")
        self.xml_text, xml_error = form_checks.read_xml(xml) if xml else (None, "give a domain XML file")
        self._show("create-xml-error", xml_error if xml else None, "valid domain XML (no disks)" if xml else "")
        data_error = None
        for path in self._data_disks():
            data_error = data_error or form_checks.check_file(path, "data disk")
        self._show("create-data-error", data_error)
        uuid = self._value("create-uuid")
        uuid_error = check_uuid(uuid) if uuid else None
        self._show("create-uuid-error", uuid_error)
        settings_ok = self.settings.check()
        ok = settings_ok and not (name_error or image_error or xml_error or data_error or uuid_error)
        self.query_one("#ok", Button).disabled = not ok
        return ok

    def _data_disks(self) -> list[str]:
        return [p.strip() for p in self._value("create-data").split(",") if p.strip()]

    @on(Button.Pressed, "#browse-image")
    def browse_image(self) -> None:
        self._browse("create-image", "Pick the disk image")

    @on(Button.Pressed, "#browse-xml")
    def browse_xml(self) -> None:
        self._browse("create-xml", "Pick the domain XML")

    @on(Button.Pressed, "#browse-data")
    def browse_data(self) -> None:
        self._browse("create-data", "Add a data disk image", append=True)

    def _browse(self, widget_id: str, title: str, *, append: bool = False) -> None:
        box = self.query_one(f"#{widget_id}", Input)

        def picked(path: str | None) -> None:
            if path:
                box.value = ", ".join([*self._data_disks(), path]) if append else path
                box.focus()

        disks = self._data_disks()
        start = (disks[-1] if disks else None) if append else (box.value or None)
        self.app.push_screen(FilePickerScreen(title, start), picked)

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted)
    def submit(self) -> None:
        if not self.check() or self.xml_text is None:
            self.notify("Fix the fields marked in red first.", severity="warning", markup=False)
            return
        try:
            options = self.settings.options()
        except ValidationError as exc:
            console_of(self.app).show_error(exc)
            return
        spec = CreateSpec(
            name=self._value("create-name"),
            image=self._value("create-image"),
            xml=self.xml_text,
            data_disks=tuple(self._data_disks()),
            disk_bus=str(self.query_one("#create-bus", Select).value),
            uuid=self._value("create-uuid") or None,
            force=self.settings.force,
            options=options,
        )
        self.plan_task(spec, lambda s: vms.plan_create(s, spec), f"plan the creation of {spec.name}")

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
