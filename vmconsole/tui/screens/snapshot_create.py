"""``n``: take a snapshot of the VM; the name is checked as you type (``validate.snapshot_name``)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, Static

from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import VmState, VmStatus
from vmconsole.tui import text
from vmconsole.tui.screens.form_base import FormScreen


class SnapshotCreateScreen(FormScreen[tuple[str, bool] | None]):
    HELP = """\
## Take a snapshot

One snapshot of all the VM's disks at the same instant: by default one RBD snapshot of that name on
each disk, which vm_manager can list, purge and roll back (`[snapshots] kind = "group"`: an RBD group
snapshot). With **freeze**, a running guest's filesystems are frozen for that instant (through the
QEMU guest agent) so the snapshot is consistent; it is offered only when the guest has a
qemu-guest-agent channel. Without one the snapshot is crash-consistent, like pulling the plug, and a
running VM with several disks is paused while they are snapshotted (the result says for how long).
The name: ASCII letters, digits and `- _ . :`.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="form.cancel")]

    def __init__(self, vm: VmState, now: datetime, name: str | None = None, *, guest_agent: bool | None = None) -> None:
        super().__init__(classes="form-screen")
        self.vm = vm
        self.default_name = name or validate.default_snapshot_name(now)
        self.guest_agent = guest_agent  # None: the domain XML could not be read

    def compose(self) -> ComposeResult:
        vm = self.vm
        with Vertical(classes="form", id="snapshot-form"):
            intro = Text.assemble("Snapshot of ", text.plain(vm.name, "bold"), " (", text.status_text(vm))
            if vm.node:
                intro.append(" on ")
                intro.append(text.plain(vm.node, "bold"))
            intro.append(
                f"), {len(vm.disks)} disk{'s' if len(vm.disks) != 1 else ''}, "
                f"{text.size(vm.total_size)}; it has {len(vm.snapshots)} snapshot"
                f"{'s' if len(vm.snapshots) != 1 else ''}."
            )
            yield Static(intro)
            with Horizontal(classes="form-row"):
                yield Label("Name", classes="form-label")
                yield Input(self.default_name, id="snap-name")
            yield Static("", id="snap-name-error", classes="field-error")
            running = vm.status is VmStatus.STARTED
            agent = self.guest_agent
            yield Checkbox(
                "Freeze the guest's filesystems (consistent snapshot)",
                value=running and agent is not False,
                id="snap-freeze",
                disabled=not running or agent is False,
            )
            if not running:
                note = "The VM is not running: its disks are snapshotted as they are."
            elif agent is False:
                note = (
                    "The VM is running and has no qemu-guest-agent channel: its filesystems cannot be frozen, the"
                    " snapshot is crash-consistent (like pulling the plug). It keeps running."
                )
            elif agent is None:
                note = "The VM is running: it keeps running. Freezing needs qemu-guest-agent in the guest."
            else:
                note = "The VM is running: it keeps running; its guest agent freezes its filesystems for an instant."
            yield Static(Text(note), classes="form-note")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Take snapshot", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#snapshot-form").border_title = Text.assemble("Snapshot ", text.plain(self.vm.name))
        self.query_one("#snap-name", Input).focus()
        self._check()

    def _check(self) -> str | None:
        value = self.query_one("#snap-name", Input).value
        error = ""
        try:
            validate.snapshot_name(value)
        except ValidationError as exc:
            error = exc.message
        if not error and any(s.name == value for s in self.vm.snapshots):
            error = f"{self.vm.name} already has a snapshot named {value}"
        self.query_one("#snap-name-error", Static).update(text.plain(error))
        self.query_one("#snap-name-error", Static).display = bool(error)
        self.query_one("#ok", Button).disabled = bool(error)
        return None if error else value

    @on(Input.Changed, "#snap-name")
    def name_changed(self) -> None:
        self._check()

    @on(Input.Submitted, "#snap-name")
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        name = self._check()
        if name is not None:
            freeze = self.query_one("#snap-freeze", Checkbox).value
            self.dismiss((name, freeze))

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
