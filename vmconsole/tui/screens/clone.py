"""``C``: clone the VM under the cursor, as a deep copy or a linked (copy-on-write) clone."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Select, Static

from vmconsole.core.vms import CloneSpec, VmOptions
from vmconsole.domain.model import VmState, VmStatus
from vmconsole.tui import form_checks, text
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.file_picker import FilePickerScreen
from vmconsole.tui.screens.form_base import FormScreen
from vmconsole.tui.widgets.snapshot_pane import timeline

NEW_SNAPSHOT = ""


class CloneScreen(FormScreen[CloneSpec | None]):
    HELP = """\
## Clone a VM

* **Deep copy**: every disk is copied (progress with throughput and ETA); the clone is independent.
* **Linked clone**: copy-on-write children of a snapshot of the source; instant and small, but the
  snapshot cannot be removed while the clone exists.
* **XML**: optional, a domain XML replacing the source's (without disks); by default the source's.

The clone gets a new UUID; nothing changes until **Clone**.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, source: VmState, name: str = "") -> None:
        super().__init__(classes="form-screen")
        self.source = source
        self.initial_name = name
        self.xml_text: str | None = None

    def compose(self) -> ComposeResult:
        src = self.source
        # prompts as Text: a snapshot name is cluster data, never markup
        options: list[tuple[Text, str]] = [(Text("a new snapshot, taken now"), NEW_SNAPSHOT)]
        options += [(text.plain(s.name), s.name) for s in reversed(timeline(src.snapshots))]
        with Vertical(classes="form", id="clone-form"):
            with VerticalScroll(classes="form-body"):
                intro = Text.assemble("Source ", text.plain(src.name, "bold"), " (", text.status_text(src))
                if src.node:
                    intro.append(" on ")
                    intro.append(text.plain(src.node, "bold"))
                intro.append(
                    f"), {len(src.disks)} disk{'s' if len(src.disks) != 1 else ''}, {text.size(src.total_size)}"
                )
                yield Static(intro)
                if src.status is VmStatus.STARTED:
                    yield Static(
                        Text("The source is running: it keeps running during the clone.", style="yellow"),
                        classes="form-note",
                    )
                with Horizontal(classes="form-row"):
                    yield Label("New name", classes="form-label")
                    yield Input(self.initial_name, placeholder=f"e.g. {text.safe(src.name)}clone", id="clone-name")
                yield Static("", id="clone-name-error", classes="field-error")
                with Horizontal(classes="form-row"):
                    yield Label("Mode", classes="form-label")
                    with RadioSet(id="clone-mode"):
                        yield RadioButton(f"Deep copy ({text.size(src.total_size)} copied)", value=True, id="mode-deep")
                        yield RadioButton("Linked clone (copy-on-write from a snapshot)", id="mode-linked")
                with Horizontal(classes="form-row"):
                    yield Label("Snapshot", classes="form-label")
                    yield Select(options, value=NEW_SNAPSHOT, allow_blank=False, id="clone-snapshot", disabled=True)
                with Horizontal(classes="form-row"):
                    yield Label("Domain XML", classes="form-label")
                    yield Input(placeholder="optional: the source's XML by default", id="clone-xml")
                    yield Button("Browse…", id="browse-xml")
                yield Static("", id="clone-xml-error", classes="field-error")
                yield Checkbox("Enable in the cluster", value=True, id="clone-enable")
                yield Checkbox("Start it", value=True, id="clone-start")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Clone", id="ok", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#clone-form").border_title = Text.assemble("Clone ", text.plain(self.source.name))
        self.query_one("#clone-name", Input).focus()
        self.check()

    @property
    def linked(self) -> bool:
        return self.query_one("#clone-mode", RadioSet).pressed_index == 1

    @on(Input.Changed)
    @on(Checkbox.Changed)
    @on(RadioSet.Changed)
    def check(self) -> bool:
        state = console_of(self.app).state
        existing = {vm.name for vm in state.vms} if state else set()
        name = self.query_one("#clone-name", Input).value.strip()
        name_error = form_checks.check_vm_name(name, existing) if name else "give the clone a name"
        if not name_error and name == self.source.name:
            name_error = "the clone needs a name different from its source"
        self._show("clone-name-error", name_error if name else None)
        xml = self.query_one("#clone-xml", Input).value.strip()
        self.xml_text, xml_error = form_checks.read_xml(xml) if xml else (None, None)
        self._show("clone-xml-error", xml_error, "valid domain XML (no disks)" if xml else "")
        self.query_one("#clone-snapshot", Select).disabled = not self.linked
        enable = self.query_one("#clone-enable", Checkbox).value
        self.query_one("#clone-start", Checkbox).disabled = not enable
        ok = not (name_error or xml_error)
        self.query_one("#ok", Button).disabled = not ok
        return ok

    def _show(self, widget_id: str, error: str | None, ok: str = "") -> None:
        widget = self.query_one(f"#{widget_id}", Static)
        widget.set_class(error is None, "field-ok")
        widget.set_class(error is not None, "field-error")
        message = error if error is not None else ok
        widget.update(text.plain(message))
        widget.display = bool(message)

    @on(Button.Pressed, "#browse-xml")
    def browse_xml(self) -> None:
        box = self.query_one("#clone-xml", Input)

        def picked(path: str | None) -> None:
            if path:
                box.value = path

        self.app.push_screen(FilePickerScreen("Pick the domain XML", box.value or None), picked)

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted)
    def submit(self) -> None:
        if not self.check():
            self.notify("Fix the fields marked in red first.", severity="warning", markup=False)
            return
        snapshot = self.query_one("#clone-snapshot", Select).value
        enable = self.query_one("#clone-enable", Checkbox).value
        options = VmOptions(enable=enable, start=enable and self.query_one("#clone-start", Checkbox).value)
        self.dismiss(
            CloneSpec(
                source=self.source.name,
                name=self.query_one("#clone-name", Input).value.strip(),
                xml=self.xml_text,
                linked=self.linked,
                snapshot=str(snapshot) if self.linked and snapshot not in (NEW_SNAPSHOT, Select.BLANK) else None,
                options=options,
            )
        )

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
