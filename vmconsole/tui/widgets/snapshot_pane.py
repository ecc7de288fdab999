"""The snapshots of the VM under the cursor, as a tree on a timeline: oldest first, down to ``NOW``;
under a snapshot, the VMs linked-cloned from it; the safety snapshot of the last rollback (where
``rollback --undo`` returns) marked; protection shown.

What the state does not carry (linked clones, the last rollback) is read once per VM and snapshot set,
in a worker (``ops.read_snapshot_extras``); the tree is drawn at once and completed when it arrives.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from vmconsole.domain.model import Snapshot, VmState
from vmconsole.tui import gating, ops, text
from vmconsole.tui.console import console_of

NOW_KEY = "\x00now"
CHILD_PREFIX = "\x00child:"
WIDE = 56  # from this width the pane shows the creation time besides the age


def timeline(snapshots: tuple[Snapshot, ...]) -> list[Snapshot]:
    """Snapshots by creation time, oldest first (undated ones first, by name)."""
    return sorted(snapshots, key=lambda s: (s.created is not None, s.created.timestamp() if s.created else 0, s.name))


def snapshot_flags(snap: Snapshot, *, safety: bool = False) -> Text:
    """Flags after the name: only what differs from a plain group snapshot."""
    flags = Text(end="")
    if snap.kind == "group":  # the default kind goes unsaid; the one vm_manager cannot use is marked
        flags.append(f" {snap.kind}", style="dim")
    if snap.protected:
        flags.append(" protected", style="bold cyan")
    if snap.missing_on:
        flags.append(" partial", style="bold yellow")
    if safety:
        flags.append(" ↺ undo point", style="bold yellow")
    return flags


class SnapshotPane(DataTable[Text]):
    HELP = """\
## Snapshot pane

The snapshots of the VM under the cursor, as a tree from the oldest down to **NOW** (the VM's
current state). Under a snapshot: the VMs linked-cloned from it (`⧉`); **protected** ones cannot be
removed; **↺ undo point** is the safety snapshot of the last rollback (where "undo rollback" goes
back to). The highlighted snapshot is described in full on the pane's bottom edge.

On a snapshot row: **R** guided rollback to it, **delete** removes it, **p** protects or unprotects
it. **j**/**k** move.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", gating.act("rollback"), "Rollback to", id="snap.rollback"),
        Binding("delete", gating.act("snapshot-remove"), "Remove snap", id="snap.remove"),
        Binding("p", gating.act("snapshot-protect"), "Protect", id="snap.protect"),
        Binding("j", "cursor_down", "Down", show=False, id="snap.down"),
        Binding("k", "cursor_up", "Up", show=False, id="snap.up"),
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
        self._now: datetime | None = None
        self.extras: dict[str, ops.SnapshotExtras] = {}  # VM -> its clones and undo point
        self._extras_for: dict[str, tuple[str, ...]] = {}  # VM -> the snapshot names its extras were read for

    def on_mount(self) -> None:
        self.add_column("Snapshot", key="name")
        self.add_column("Taken", key="taken")
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
        self._now = now
        ages = tuple(text.age(s.created, now) for s in vm.snapshots) if vm else ()
        extras = self.extras.get(vm.name) if vm else None
        signature = (vm.name, vm.snapshots, ages, extras, self.size.width >= WIDE) if vm else ()
        if signature == self._signature:
            return
        previous = self.vm.name if self.vm else None
        keep = self._cursor_key()
        self._signature = signature
        self.vm = vm
        self.border_title = Text.assemble("Snapshots of ", text.plain(vm.name)) if vm else "Snapshots"
        with self.app.batch_update():
            self.clear()
            if vm is None:
                self.border_subtitle = ""
                return
            self._rows(vm, now, extras)
            target = keep if (keep and previous == vm.name) else NOW_KEY
            try:
                self.move_cursor(row=self.get_row_index(target), animate=False)
            except Exception:
                self.move_cursor(row=self.row_count - 1, animate=False)
        self._describe()
        self._want_extras(vm)

    def _cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    def _rows(self, vm: VmState, now: datetime, extras: ops.SnapshotExtras | None) -> None:
        wide = self.size.width >= WIDE
        for snap in timeline(vm.snapshots):
            label = Text(end="", no_wrap=True, overflow="ellipsis")
            label.append("├─○ ", style="cyan")
            label.append(text.plain(snap.name, "bold"))
            label.append(snapshot_flags(snap, safety=extras is not None and extras.last_safety == snap.name))
            taken = text.age(snap.created, now)
            if wide and snap.created is not None:
                taken = f"{snap.created:%m-%d %H:%M} {taken:>3}"
            self.add_row(label, Text(taken, justify="right", end=""), key=snap.name)
            for child in extras.clones.get(snap.name, ()) if extras else ():
                line = Text("│   └─⧉ ", style="cyan", end="")
                line.append(text.plain(child, "magenta"))
                line.append(" linked clone", style="dim")
                self.add_row(line, Text(""), key=f"{CHILD_PREFIX}{snap.name}:{child}")
        self.add_row(Text("└─● NOW", style="bold green", end=""), Text("current", style="green", end=""), key=NOW_KEY)

    def _want_extras(self, vm: VmState) -> None:
        """Read the clones and the undo point of the VM, once per set of snapshots."""
        names = tuple(sorted(s.name for s in vm.snapshots))
        if not names or self._extras_for.get(vm.name) == names:
            return
        self._extras_for[vm.name] = names
        console = console_of(self.app)
        try:
            services = console.services
        except Exception:
            return  # an injected state: nothing more to read
        name = vm.name

        def read() -> ops.SnapshotExtras:
            return ops.read_snapshot_extras(services, name)

        def got(extras: ops.SnapshotExtras) -> None:
            self.extras[name] = extras
            if self.vm is not None and self.vm.name == name and self._now is not None:
                self.show_vm(self.vm, self._now)

        console.call_in_thread(read, got, f"read the snapshot tree of {name}", quiet=True)

    def on_resize(self, event: events.Resize) -> None:
        if self.vm is not None and self._now is not None:
            self._signature = ()
            self.show_vm(self.vm, self._now)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._describe()

    def _describe(self) -> None:
        """The highlighted row in full on the bottom edge: a long name never hides in a narrow pane."""
        snap = self.current_snapshot
        key = self._cursor_key() or ""
        if snap is not None:
            line = Text.assemble(text.plain(snap.name, "bold"), f" · {text.stamp(snap.created)}")
            if snap.protected:
                line.append(" · protected")
            line.append(f" · {len(snap.disks)} disk{'s' if len(snap.disks) != 1 else ''}")
            self.border_subtitle = line
        elif key.startswith(CHILD_PREFIX):
            parent, _sep, child = key.removeprefix(CHILD_PREFIX).partition(":")
            self.border_subtitle = Text.assemble(
                text.plain(child, "bold"), " is a linked clone of ", text.plain(parent, "bold")
            )
        else:
            self.border_subtitle = "NOW: the VM's current state" if self.vm else ""

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
