"""``C``: clone the VM under the cursor, as a deep copy or a linked (copy-on-write) clone, with every
option of ``vm clone``: the settings are the source's unless changed here (placement, live
migration, Pacemaker options, metadata), force replaces an existing VM of the new name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Select, Static

from vmconsole.core import vms
from vmconsole.core.vms import CloneSpec
from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import NodeState, VmState, VmStatus
from vmconsole.tui import form_checks, text
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.create import member_nodes
from vmconsole.tui.screens.file_picker import FilePickerScreen
from vmconsole.tui.screens.form_base import PlanningForm
from vmconsole.tui.widgets.snapshot_pane import timeline
from vmconsole.tui.widgets.vm_settings import Mode, VmSettingsFields

NEW_SNAPSHOT = ""


class CloneScreen(PlanningForm[CloneSpec]):
    HELP = """\
## Clone a VM

* **Deep copy**: every disk is copied (progress with throughput and ETA); the clone is independent.
* **Linked clone**: copy-on-write children of a snapshot of the source; instant and small, but the
  snapshot cannot be removed while the clone exists.
* **XML**: optional, a domain XML replacing the source's (without disks); by default the source's.
* The settings start as the source's (placement, live migration, Pacemaker meta/params/utilization,
  user metadata): change what the clone should have differently; an edited key=value list replaces
  the source's. Its pacemaker-remote node and colocations are not copied. **Force** replaces an
  existing VM of the new name.

The clone gets a new UUID; **Review the plan…** shows the service's plan and warnings; nothing
changes until you confirm there.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, source: VmState, name: str = "", *, nodes: Sequence[NodeState] = ()) -> None:
        super().__init__(classes="form-screen")
        self.source = source
        self.initial_name = name
        self.nodes = member_nodes(nodes)
        self.xml_text: str | None = None

    def compose(self) -> ComposeResult:
        src = self.source
        # prompts as Text: a snapshot name is cluster data, never markup
        options: list[tuple[Text, str]] = [(Text("a new snapshot, taken now"), NEW_SNAPSHOT)]
        options += [(text.plain(s.name), s.name) for s in reversed(timeline(src.snapshots))]
        with Vertical(classes="form fill", id="clone-form"):
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
                yield VmSettingsFields(Mode.CLONE, self.nodes, src.settings, id="clone-settings")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Review the plan…", id="ok", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#clone-form").border_title = Text.assemble("Clone ", text.plain(self.source.name))
        self.query_one("#clone-name", Input).focus()
        self.check()

    @property
    def linked(self) -> bool:
        return self.query_one("#clone-mode", RadioSet).pressed_index == 1

    @property
    def settings(self) -> VmSettingsFields:
        return self.query_one(VmSettingsFields)

    def _name_error(self, name: str, existing: set[str]) -> str | None:
        if not name:
            return "give the clone a name"
        try:
            validate.vm_name(name)
        except ValidationError as exc:
            return exc.message
        if name == self.source.name:
            return "the clone needs a name different from its source"
        if name in existing and not self.settings.force:
            return f"a VM named {name} already exists (tick Force below to replace it)"
        return None

    @on(Input.Changed, "#clone-name, #clone-xml")
    @on(RadioSet.Changed)
    @on(VmSettingsFields.Changed)
    def check(self) -> bool:
        state = console_of(self.app).state
        existing = {vm.name for vm in state.vms} if state else set()
        name = self.query_one("#clone-name", Input).value.strip()
        name_error = self._name_error(name, existing)
        replacing = name in existing and name_error is None
        self._show(
            "clone-name-error", name_error if name else None, f"replaces the existing {name}" if replacing else ""
        )
        xml = self.query_one("#clone-xml", Input).value.strip()
        self.xml_text, xml_error = form_checks.read_xml(xml) if xml else (None, None)
        self._show("clone-xml-error", xml_error, "valid domain XML (no disks)" if xml else "")
        self.query_one("#clone-snapshot", Select).disabled = not self.linked
        settings_ok = self.settings.check()
        ok = settings_ok and not (name_error or xml_error)
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
        try:
            options = self.settings.options()
        except ValidationError as exc:
            console_of(self.app).show_error(exc)
            return
        spec = CloneSpec(
            source=self.source.name,
            name=self.query_one("#clone-name", Input).value.strip(),
            xml=self.xml_text,
            linked=self.linked,
            snapshot=str(snapshot) if self.linked and snapshot not in (NEW_SNAPSHOT, Select.BLANK) else None,
            force=self.settings.force,
            options=options,
            **self.settings.clears(),
        )
        self.plan_task(spec, lambda s: vms.plan_clone(s, spec), f"plan the clone {spec.name}")

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
