"""``T``: the on-call timeline. "What happened in the last hour?" in one view, newest first:
Pacemaker's failures and operations, node membership changes and libvirt events this console saw,
and every vmconsole task on the cluster (who, from which host, with which result).

Filters: VM, node (where it happened, or the host a task ran from), kind, and since (``15m``,
``2h``, ``1d`` or a date). **enter** opens the task (its progress view when this console ran it,
else its history record) or the VM. The cluster's part is read when the view opens (**r** again);
what this console saw lives in its memory (``EventLog``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from vmconsole.core import timeline
from vmconsole.core.timeline import Entry, Timeline, TimelineFilter
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import ClusterState
from vmconsole.tui import text
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.form_base import FormScreen
from vmconsole.tui.task_record import TaskRecord

ALL = "\x00all"
KIND_STYLES = {
    timeline.FAILURE: "bold red",
    timeline.OPERATION: "cyan",
    timeline.NODE: "magenta",
    timeline.LIBVIRT: "blue",
    timeline.TASK: "green",
}
SEVERITY_STYLES = {timeline.ERROR: "red", timeline.WARNING: "yellow", timeline.INFO: ""}
WHAT_WIDTH = 72  # the row shows this much of an entry; the pane below shows all of it


def running_entries(records: list[TaskRecord]) -> list[Entry]:
    """Tasks of this console still running (the cluster's history has them once they end)."""
    return [
        Entry(
            when=record.started,
            kind=timeline.TASK,
            summary=f"{record.operation or record.title} running: {record.title}",
            vm=record.vm,
            result="running",
            task=record.task_id or None,
            action=record.operation or None,
            severity=timeline.INFO,
        )
        for record in records
        if record.active
    ]


def when_text(when: datetime, now: datetime) -> str:
    """The time of the day for today's entries, else the day and time (in UTC, as every stamp here)."""
    when, now = when.astimezone(UTC), now.astimezone(UTC)
    return f"{when:%H:%M:%S}" if when.date() == now.date() else f"{when:%m-%d %H:%M}"


def entry_detail(entry: Entry) -> Text:
    """One entry in full, wrapped, each value literal."""
    rows: list[tuple[str, Text]] = [
        ("When", Text(f"{entry.when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")),
        ("Kind", Text(entry.kind, style=KIND_STYLES.get(entry.kind, ""))),
        ("What", text.plain(entry.summary, SEVERITY_STYLES.get(entry.severity, ""))),
    ]
    for label, raw in (
        ("VM", entry.vm),
        ("Node", entry.node),
        ("Who", entry.user),
        ("From host", entry.host),
        ("Result", entry.result),
        ("Task", entry.task),
        ("Detail", entry.detail),
    ):
        if raw:
            rows.append((label, text.plain(raw)))
    out = Text(end="")
    for index, (label, shown) in enumerate(rows):
        if index:
            out.append("\n")
        out.append(f"{label:<10} ", style="bold")
        out.append(shown)
    return out


class TimelineScreen(FormScreen[None]):
    HELP = """\
## Timeline

What happened, newest first, from every source: Pacemaker's **failure**s and **operation**s
(starts, stops, migrations, failed monitors), **node** membership changes and **libvirt** events
this console saw while it ran, and every vmconsole **task** on the cluster (who ran it, from which
host, the result).

Filter by **VM**, **node** (where it happened, or the host a task ran from), **kind** and **since**
(`15m`, `2h`, `1d`, or a date such as `2026-05-04 10:00`). **enter** opens the task (its progress
view when this console ran it, else its record) or the VM's detail. **r** reads the cluster again.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Back", id="timeline.back"),
        Binding("r", "reload", "Read again", id="timeline.reload"),
        Binding("f", "focus_filters", "Filters", id="timeline.filters"),
    ]

    def __init__(self, vm: str | None = None) -> None:
        super().__init__(classes="form-screen")
        self.initial_vm = vm
        self.loaded: Timeline | None = None
        self.entries: list[Entry] = []  # merged, newest first
        self.shown: list[Entry] = []  # after the filter

    def compose(self) -> ComposeResult:
        state = console_of(self.app).state
        vms = sorted(vm.name for vm in state.vms) if state else []
        if self.initial_vm and self.initial_vm not in vms:
            vms.append(self.initial_vm)
        nodes = [n.name for n in state.nodes] if state else []
        with Vertical(classes="form fill", id="timeline-form"):
            with Horizontal(classes="filters", id="timeline-filters"):
                yield Label("VM", classes="filter-label")
                yield Select(
                    [(Text("all VMs"), ALL), *((text.plain(v), v) for v in vms)],
                    value=self.initial_vm or ALL,
                    allow_blank=False,
                    id="timeline-vm",
                )
                yield Label("Node", classes="filter-label")
                yield Select(
                    [(Text("all nodes"), ALL), *((text.plain(n), n) for n in nodes)],
                    value=ALL,
                    allow_blank=False,
                    id="timeline-node",
                )
                yield Label("Kind", classes="filter-label")
                yield Select(
                    [(Text("all kinds"), ALL), *((Text(k), k) for k in timeline.KINDS)],
                    value=ALL,
                    allow_blank=False,
                    id="timeline-kind",
                )
                yield Label("Since", classes="filter-label")
                yield Input(placeholder="e.g. 1h", id="timeline-since")
            yield Static("", id="timeline-problems", classes="field-error")
            yield DataTable(id="timeline-table", cursor_type="row", zebra_stripes=True)
            yield Static(Text("reading the cluster's history…", style="dim"), id="timeline-detail")
            with Horizontal(classes="form-buttons"):
                yield Button("Back", id="back")
                yield Button("Read again", id="reload")

    def on_mount(self) -> None:
        table: DataTable[Text] = self.query_one("#timeline-table", DataTable)
        table.add_column("When", key="when", width=11)
        table.add_column("Kind", key="kind", width=9)
        table.add_column("VM", key="vm")
        table.add_column("Node / who", key="where")
        table.add_column("What", key="what")
        self.query_one("#timeline-problems", Static).display = False
        self._title()
        table.focus()
        self.action_reload()

    def _title(self) -> None:
        vm = self.vm_filter
        title = Text.assemble("Timeline of ", text.plain(vm)) if vm else Text("Timeline of the cluster")
        title.append(f" ({len(self.shown)} of {len(self.entries)})" if self.entries else "", style="dim")
        self.query_one("#timeline-form").border_title = title

    # ------------------------------------------------------------------------------------ reading
    def action_reload(self) -> None:
        console = console_of(self.app)
        state = console.state or ClusterState(taken_at=console.now())
        try:
            services = console.services
        except Exception as exc:  # an injected state, no cluster: what this console saw only
            self.show_timeline(Timeline((), (f"the cluster's history: {exc}",)))
            return
        console.call_in_thread(
            lambda: timeline.read(services, state),
            self.show_timeline,
            "read the timeline",
            on_error=lambda exc: self.show_timeline(Timeline((), (f"{exc}",))),
            quiet=True,
        )

    def show_timeline(self, loaded: Timeline) -> None:
        console = console_of(self.app)
        self.loaded = loaded
        self.entries = timeline.merge(loaded.entries, console.events.entries, running_entries(console.tasks))
        problems = self.query_one("#timeline-problems", Static)
        problems.update(text.plain("; ".join(f"could not read {p}" for p in loaded.problems)))
        problems.display = bool(loaded.problems)
        self.apply_filter()

    # ------------------------------------------------------------------------------------ filtering
    def _select(self, widget_id: str) -> str | None:
        value = self.query_one(f"#{widget_id}", Select).value
        return None if value in (ALL, Select.BLANK) else str(value)

    @property
    def vm_filter(self) -> str | None:
        try:
            return self._select("timeline-vm")
        except Exception:
            return self.initial_vm

    def current_filter(self) -> TimelineFilter:
        kind = self._select("timeline-kind")
        since_text = self.query_one("#timeline-since", Input).value
        since = timeline.parse_since(since_text, console_of(self.app).now())
        return TimelineFilter(
            vm=self._select("timeline-vm"),
            node=self._select("timeline-node"),
            kinds=frozenset({kind}) if kind else frozenset(timeline.KINDS),
            since=since,
        )

    @on(Select.Changed)
    @on(Input.Changed, "#timeline-since")
    def apply_filter(self) -> None:
        if not self.is_mounted:
            return
        problems = self.query_one("#timeline-since", Input)
        try:
            wanted = self.current_filter()
        except ValidationError as exc:
            problems.tooltip = exc.message
            problems.add_class("-invalid")
            self.query_one("#timeline-detail", Static).update(text.plain(f"since: {exc.message}", "red"))
            return
        problems.remove_class("-invalid")
        self.shown = wanted.apply(self.entries)
        self._fill()
        self._title()

    def _fill(self) -> None:
        table: DataTable[Text] = self.query_one("#timeline-table", DataTable)
        now = console_of(self.app).now()
        with self.app.batch_update():
            table.clear()
            for index, entry in enumerate(self.shown):
                table.add_row(
                    Text(when_text(entry.when, now), style="dim"),
                    Text(entry.kind, style=KIND_STYLES.get(entry.kind, "")),
                    text.plain(entry.vm or "-"),
                    text.plain(entry.who or entry.node or "-"),
                    text.plain(text.shorten(entry.summary, WHAT_WIDTH), SEVERITY_STYLES.get(entry.severity, "")),
                    key=str(index),
                )
        if not self.shown:
            self.query_one("#timeline-detail", Static).update(
                Text("nothing happened that matches the filter" if self.entries else "nothing recorded", style="dim")
            )
        else:
            self._show_detail()

    # ------------------------------------------------------------------------------------ entries
    @property
    def selected(self) -> Entry | None:
        table: DataTable[Text] = self.query_one("#timeline-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        index = int(key or 0)
        return self.shown[index] if 0 <= index < len(self.shown) else None

    @on(DataTable.RowHighlighted, "#timeline-table")
    def _show_detail(self) -> None:
        entry = self.selected
        if entry is not None:
            self.query_one("#timeline-detail", Static).update(entry_detail(entry))

    @on(DataTable.RowSelected, "#timeline-table")
    def open_entry(self) -> None:
        """The task (its progress view when this console ran it) or the VM."""
        entry = self.selected
        if entry is None:
            return
        console = console_of(self.app)
        if entry.task:
            record = next((r for r in console.tasks if r.task_id == entry.task), None)
            if record is not None:
                console.show_task(record)
                return
        if entry.vm and console.state is not None and console.state.vm(entry.vm) is not None and not entry.task:
            console.perform("detail", entry.vm)
            return
        self.app.push_screen(EntryScreen(entry, console.state is not None and entry.vm is not None))

    def action_focus_filters(self) -> None:
        self.query_one("#timeline-vm", Select).focus()

    @on(Button.Pressed, "#reload")
    def reload_pressed(self) -> None:
        self.action_reload()

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.dismiss(None)


class EntryScreen(FormScreen[None]):
    """One timeline entry in full (a task this console did not run: its history record)."""

    HELP = """\
## Timeline entry

Everything recorded about it. **v** opens the VM's detail view when the VM still exists.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Back", id="entry.back"),
        Binding("v", "open_vm", "Open the VM", id="entry.vm"),
    ]

    def __init__(self, entry: Entry, has_vm: bool) -> None:
        super().__init__(classes="form-screen")
        self.entry = entry
        self.has_vm = has_vm

    def compose(self) -> ComposeResult:
        with Vertical(classes="form", id="entry-form"):
            yield Static(entry_detail(self.entry), classes="impact")
            with Horizontal(classes="form-buttons"):
                yield Button("Back", id="back")
                yield Button("Open the VM", id="open-vm", variant="primary", disabled=not self.has_vm)

    def on_mount(self) -> None:
        self.query_one("#entry-form").border_title = Text.assemble(
            text.plain(self.entry.kind), " at ", Text(f"{self.entry.when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
        )
        self.query_one("#back", Button).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.has_vm if action == "open_vm" else True

    def action_open_vm(self) -> None:
        vm = self.entry.vm
        state = console_of(self.app).state
        if vm and state is not None and state.vm(vm) is not None:
            self.dismiss(None)
            console_of(self.app).perform("detail", vm)
        else:
            self.notify(text.safe(f"{vm or 'the VM'} is not in the cluster any more."), severity="warning")

    @on(Button.Pressed, "#open-vm")
    def open_pressed(self) -> None:
        self.action_open_vm()

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.dismiss(None)
