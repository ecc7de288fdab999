"""The main screen: the live VM table, the detail strip, the cluster and snapshot panes, the ``/``
filter and the ``:`` command line.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input

from vmconsole.domain.model import ClusterState
from vmconsole.tui import cmdline, gating, text
from vmconsole.tui.actions import ALL_ACTIONS, BY_NAME
from vmconsole.tui.console import console_of
from vmconsole.tui.filtering import FilterError, parse_filter
from vmconsole.tui.widgets.cluster_pane import ClusterPane
from vmconsole.tui.widgets.command_input import CommandInput
from vmconsole.tui.widgets.detail_strip import DetailStrip
from vmconsole.tui.widgets.filter_input import FilterInput
from vmconsole.tui.widgets.header_bar import HeaderBar
from vmconsole.tui.widgets.snapshot_pane import SnapshotPane
from vmconsole.tui.widgets.vm_table import VmTable

if TYPE_CHECKING:
    from vmconsole.tui.refresh import Overdue

NARROW = 130  # below this width the side panes go under the table (the table needs ~80 columns)
FAILED_ONLY = "status:failed"  # below this width the side panes go under the table (the table needs ~70 columns)


def _bindings() -> list[BindingType]:
    bindings: list[BindingType] = [
        Binding("slash", "filter", "Filter", id="console.filter"),
        Binding("colon", "command", "Command line", show=False, id="console.command"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="console.clear-filter"),
    ]
    for spec in ALL_ACTIONS:
        if spec.name == "detail":
            continue  # enter on the table (DataTable.RowSelected)
        bindings.append(Binding(spec.key, gating.act(spec.name), spec.label, show=spec.show, id=spec.binding_id))
    return bindings


def find_main(app: App[Any]) -> MainScreen | None:
    """The main screen (at the bottom of the stack, under any modal)."""
    return next((s for s in app.screen_stack if isinstance(s, MainScreen)), None)


class MainScreen(Screen[None]):
    HELP = VmTable.HELP

    BINDINGS: ClassVar[list[BindingType]] = _bindings()

    def __init__(self) -> None:
        super().__init__()
        self._now: datetime | None = None
        self._failures_shown = -1  # the failure book's version the detail strip shows

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield VmTable(id="vms")
                yield DetailStrip(id="detail")
            with Vertical(id="side"):
                yield ClusterPane(id="cluster")
                yield SnapshotPane(id="snapshots")
        yield FilterInput(id="filter")
        yield CommandInput(id="command")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        console = console_of(self.app)
        self.query_one("#vms", VmTable).failures = console.failures
        self.query_one(DetailStrip).failures = console.failures
        self.query_one("#vms", VmTable).border_title = "VMs"
        self.query_one("#cluster", ClusterPane).border_title = "Cluster"
        self.query_one(HeaderBar).read_only = console.read_only
        self.query_one("#vms", VmTable).focus()
        self._layout_for(self.size.width)
        if console.state is not None:
            self.show_state(console.state, console.now())
        self.show_refresh(console.last_ok, console.now(), console.stale_reason)

    def on_resize(self, event: events.Resize) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        self.set_class(width < NARROW, "-narrow")

    # ------------------------------------------------------------------------------------ state
    @property
    def table(self) -> VmTable:
        return self.query_one("#vms", VmTable)

    def show_state(self, state: ClusterState, now: datetime) -> None:
        self._now = now
        self.table.show_state(state, now)
        self.query_one(HeaderBar).show_state(state)
        cluster = self.query_one(ClusterPane)
        cluster.show_state(state)
        cluster.border_title = Text.assemble("Cluster ", text.plain(state.cluster_name or ""))
        self._update_title()
        self._show_current()

    def show_refresh(
        self, last_ok: datetime | None, now: datetime, stale: str | None, overdue: Overdue | None = None
    ) -> None:
        header = self.query_one(HeaderBar)
        header.stale_reason = stale
        header.overdue = overdue.describe() if overdue is not None else None
        header.update_age(last_ok, now)

    def show_tasks(self, running: int, activity: dict[str, str] | None = None) -> None:
        """The count of running tasks in the header, and each one's progress on its VM's row."""
        self.query_one(HeaderBar).running_tasks = running
        activity = dict(activity or {})
        self.table.show_activity(activity)
        strip = self.query_one(DetailStrip)
        version = console_of(self.app).failures.version
        if activity != strip.activity or version != self._failures_shown:
            strip.activity = activity
            self._failures_shown = version
            self._show_current()

    def _update_title(self) -> None:
        table = self.table
        total = len(table._vms)
        shown = table.row_count
        title = Text(f"VMs {shown}/{total}" if table.vm_filter.active else f"VMs {total}")
        if table.vm_filter.active:
            title.append(" filter: ", style="dim")
            title.append(table.vm_filter.text, style="bold yellow")
        if table.marked:
            title.append(f" · {len(table.marked)} marked", style="bold cyan")
        table.border_title = title

    def _show_current(self) -> None:
        table = self.table
        vm = table.vm_state(table.current_vm)
        now = self._now or console_of(self.app).now()
        self.query_one(DetailStrip).show_vm(vm, now, len(table.marked))
        self.query_one(SnapshotPane).show_vm(vm, now)

    @on(DataTable.RowHighlighted, "#vms")
    def vm_highlighted(self) -> None:
        self._show_current()

    @on(DataTable.RowSelected, "#vms")
    def vm_selected(self) -> None:
        console_of(self.app).perform("detail", self.table.current_vm)

    @on(SnapshotPane.ActionRequested)
    def snapshot_action(self, event: SnapshotPane.ActionRequested) -> None:
        console_of(self.app).perform(event.action, event.vm, snapshot=event.snapshot)

    @on(ClusterPane.ActionRequested)
    def node_action(self, event: ClusterPane.ActionRequested) -> None:
        console_of(self.app).perform(event.action, node=event.node)

    # ------------------------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return gating.check_action(self.app, action, parameters)

    def on_key(self, event: events.Key) -> None:
        gating.refuse_disabled_key(self, event)

    def action_act(self, name: str) -> None:
        if name == "mark":
            self.toggle_mark()
            return
        console_of(self.app).perform(name, self.table.current_vm if BY_NAME[name].needs_vm else None)

    def toggle_mark(self) -> None:
        table = self.table
        current = table.current_vm
        if current is None:
            return
        table.toggle_mark(current)
        index = table.cursor_row
        if index + 1 < table.row_count:
            table.move_cursor(row=index + 1, animate=False)
        self._update_title()
        self._show_current()

    def action_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.value = self.table.vm_filter.text
        box.add_class("-open")
        box.focus()

    def toggle_failed_only(self) -> None:
        """``!``: only the VMs that failed (their failure kept on the row); again, every VM."""
        failed_only = self.table.vm_filter.text.strip() == FAILED_ONLY
        self.apply_filter("" if failed_only else FAILED_ONLY)

    def action_clear_filter(self) -> None:
        if self.table.vm_filter.active:
            self.apply_filter("")

    def action_command(self) -> None:
        box = self.query_one(CommandInput)
        box.value = ""
        box.add_class("-open")
        box.focus()

    def apply_filter(self, text: str) -> bool:
        try:
            vm_filter = parse_filter(text)
        except FilterError as exc:
            self.notify(str(exc), title="Filter", severity="error", markup=False)
            return False
        self.table.set_filter(vm_filter)
        self._update_title()
        self._show_current()
        return True

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        try:
            self.table.set_filter(parse_filter(event.value))
        except FilterError:
            return  # the input shows it invalid; the last good filter stays
        self._update_title()
        self._show_current()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        if self.apply_filter(event.value):
            self._close_input(self.query_one(FilterInput))

    @on(Input.Submitted, "#command")
    def command_submitted(self, event: Input.Submitted) -> None:
        self._close_input(self.query_one(CommandInput))
        if event.value.strip():
            self.run_command(event.value)

    @on(FilterInput.Closed)
    @on(CommandInput.Closed)
    def input_closed(self, event: FilterInput.Closed | CommandInput.Closed) -> None:
        self._close_input(event.input)

    def _close_input(self, box: Input) -> None:
        box.remove_class("-open")
        self.table.focus()

    def run_command(self, line: str) -> None:
        console = console_of(self.app)
        try:
            command = cmdline.parse_command(line)
        except cmdline.CommandError as exc:
            self.notify(str(exc), title="Command", severity="error", markup=False)
            return
        if command.verb == "filter":
            self.apply_filter(command.rest)
        elif command.verb == "sort":
            column = command.args[0] if command.args else "name"
            try:
                self.table.set_sort(column)
            except ValueError:
                self.notify(f"cannot sort by {column!r}", severity="error", markup=False)
        elif command.verb == "help":
            console.action_help()
        elif command.verb == "quit":
            console.action_quit_console()
        else:
            args = command.args
            spec = BY_NAME[command.verb]
            if command.verb in ("snapshot", "rollback", "snapshot-remove", "snapshot-protect") and args:
                console.perform(command.verb, command.vm or self.table.current_vm, snapshot=args[0])
            elif spec.needs_node:
                console.perform(command.verb, node=args[0] if args else self.query_one(ClusterPane).cursor_node)
            elif command.verb == "move" and args:
                console.perform(command.verb, command.vm or self.table.current_vm, node=args[0])
            else:
                console.perform(
                    command.verb,
                    command.vm or (self.table.current_vm if spec.needs_vm else None),
                    argument=" ".join(args) or None,
                )
