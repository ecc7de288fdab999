"""The snapshots of the VM under the cursor, on a timeline: oldest first, then ``NOW``."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from vmconsole.domain.model import Snapshot, VmState
from vmconsole.tui import gating, text

NOW_KEY = "\x00now"


def timeline(snapshots: tuple[Snapshot, ...]) -> list[Snapshot]:
    """Snapshots by creation time, oldest first (undated ones first, by name)."""
    return sorted(snapshots, key=lambda s: (s.created is not None, s.created.timestamp() if s.created else 0, s.name))


def snapshot_flags(snap: Snapshot) -> Text:
    """Flags after the name: only what differs from a plain group snapshot."""
    flags = Text(end="")
    if snap.kind != "group":
        flags.append(f" {snap.kind}", style="dim")
    if snap.protected:
        flags.append(" protected", style="bold cyan")
    if snap.missing_on:
        flags.append(" partial", style="bold yellow")
    return flags


class SnapshotPane(DataTable[Text]):
    HELP = """\
## Snapshot pane

The snapshots of the VM under the cursor in the VM table, oldest first; **NOW** is the VM's current
state. On a snapshot row: **R** guided rollback to it, **delete** removes it, **p** protects or
unprotects it, **n** takes a new snapshot.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", gating.act("rollback"), "Rollback to", id="snap.rollback"),
        Binding("delete", gating.act("snapshot-remove"), "Remove snap", id="snap.remove"),
        Binding("p", gating.act("snapshot-protect"), "Protect", id="snap.protect"),
    ]

    class ActionRequested(Message):
        def __init__(self, action: str, vm: str, snapshot: str | None) -> None:
            super().__init__()
            self.action = action
            self.vm = vm
            self.snapshot = snapshot

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", show_cursor=True)
        self.vm: VmState | None = None
        self._signature: tuple[object, ...] = ()

    def on_mount(self) -> None:
        self.add_column("Snapshot", key="name")
        self.add_column("Created", key="created", width=11)
        self.add_column("Age", key="age", width=4)
        self.border_title = "Snapshots"

    @property
    def current_snapshot(self) -> Snapshot | None:
        if self.vm is None or not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None
        return next((s for s in self.vm.snapshots if s.name == key), None)

    def show_vm(self, vm: VmState | None, now: datetime) -> None:
        ages = tuple(text.age(s.created, now) for s in vm.snapshots) if vm else ()
        signature = (vm.name, vm.snapshots, ages) if vm else ()
        if signature == self._signature:
            return
        previous = self.vm.name if self.vm else None
        keep = self.current_snapshot.name if self.current_snapshot else None
        self._signature = signature
        self.vm = vm
        self.border_title = Text.assemble("Snapshots of ", text.plain(vm.name)) if vm else "Snapshots"
        with self.app.batch_update():
            self.clear()
            if vm is None:
                return
            for snap in timeline(vm.snapshots):
                label = Text(end="")
                label.append("○ ", style="cyan")
                label.append(text.plain(snap.name, "bold"))
                label.append(snapshot_flags(snap))
                self.add_row(
                    label,
                    Text(snap.created.strftime("%m-%d %H:%M") if snap.created else "-", end=""),
                    Text(text.age(snap.created, now), justify="right", end=""),
                    key=snap.name,
                )
            self.add_row(
                Text("● NOW", style="bold green", end=""), Text("current", style="green", end=""), Text(""), key=NOW_KEY
            )
            target = keep if (keep and previous == vm.name) else NOW_KEY
            try:
                self.move_cursor(row=self.get_row_index(target), animate=False)
            except Exception:
                self.move_cursor(row=self.row_count - 1, animate=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Read-only: greyed out (and the key falls through to nothing: the screen's bindings for
        # these keys are mutating too). Otherwise always consumed here, so ``delete`` on the NOW
        # row can never reach the VM table's "remove VM" binding.
        return gating.check_action(self.app, action, parameters)

    def action_act(self, action: str) -> None:
        if self.vm is None:
            return
        snap = self.current_snapshot
        if snap is None and action != "snapshot":
            self.notify("Select a snapshot row first (NOW is the current state).", severity="warning", markup=False)
            return
        self.post_message(self.ActionRequested(action, self.vm.name, snap.name if snap else None))
