"""``a``: create a VM from a disk image and a domain XML; every field is checked as you type."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Static

from vmconsole.core.vms import CreateSpec, VmOptions
from vmconsole.tui import form_checks, text
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.file_picker import FilePickerScreen
from vmconsole.tui.screens.form_base import FormScreen


class CreateScreen(FormScreen[CreateSpec | None]):
    HELP = """\
## Create a VM

* **Name**: ASCII letters and digits, starting with a letter (it is also the Pacemaker resource id).
* **Image**: a local qcow2 or raw disk image, imported into Ceph (progress with throughput and ETA).
* **XML**: the libvirt domain definition *without* disks: vmconsole adds the RBD disks itself.
* **Data disks**: optional extra images, separated by commas.

**Browse…** opens a file picker. Nothing changes until **Create**; on failure the finished steps
are undone.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, name: str = "", image: str = "", xml: str = "") -> None:
        super().__init__(classes="form-screen")
        self.initial = (name, image, xml)
        self.xml_text: str | None = None

    def compose(self) -> ComposeResult:
        name, image, xml = self.initial
        with Vertical(classes="form", id="create-form"):
            with VerticalScroll(classes="form-body"):
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
                    yield Input(placeholder="optional: /path/a.qcow2, /path/b.raw", id="create-data")
                yield Static("", id="create-data-error", classes="field-error")
                yield Checkbox("Enable in the cluster (add the Pacemaker primitive)", value=True, id="create-enable")
                yield Checkbox("Start it", value=True, id="create-start")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Create", id="ok", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#create-form").border_title = "Create a VM"
        self.query_one("#create-name", Input).focus()
        self.check()

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

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def check(self) -> bool:
        """Check every field; show each field's problem under it; enable Create when all are fine."""
        name = self._value("create-name")
        name_error = form_checks.check_vm_name(name, self._existing()) if name else "give the VM a name"
        self._show("create-name-error", name_error if name else None)
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
        enable = self.query_one("#create-enable", Checkbox).value
        start = self.query_one("#create-start", Checkbox)
        start.disabled = not enable
        ok = not (name_error or image_error or xml_error or data_error)
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

    def _browse(self, widget_id: str, title: str) -> None:
        box = self.query_one(f"#{widget_id}", Input)

        def picked(path: str | None) -> None:
            if path:
                box.value = path
                box.focus()

        self.app.push_screen(FilePickerScreen(title, box.value or None), picked)

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted)
    def submit(self) -> None:
        if not self.check() or self.xml_text is None:
            self.notify("Fix the fields marked in red first.", severity="warning", markup=False)
            return
        enable = self.query_one("#create-enable", Checkbox).value
        options = VmOptions(enable=enable, start=enable and self.query_one("#create-start", Checkbox).value)
        self.dismiss(
            CreateSpec(
                name=self._value("create-name"),
                image=self._value("create-image"),
                xml=self.xml_text,
                data_disks=tuple(self._data_disks()),
                options=options,
            )
        )

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
