"""The live table of every VM: one ``DataTable``, one row per VM keyed by its name.

Refreshes are diffed into the table in place rather than rebuilt (a rebuild flickers and loses
the scroll): rows of VMs that are gone are removed, only changed cells are updated, new VMs are
added, all inside one ``batch_update``. After every refresh, filter change and sort the cursor is
put back on *its VM* by row key, because ``DataTable.sort`` keeps the cursor's index, not its row.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from vmconsole.domain.model import ClusterState, VmState
from vmconsole.tui import text
from vmconsole.tui.filtering import SORT_COLUMNS, VmFilter, sort_value
from vmconsole.tui.memory import FailureBook

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("mark", " ", 1),
    ("name", "Name", None),
    ("status", "Status", 12),
    ("node", "Node", 8),
    ("snaps", "Snaps", 5),
    ("latest", "Latest", 6),
    ("size", "Size", 9),
    ("note", "Task / failure", 14),
)
MARK = "●"
RUNNING = "⟳"
FAILED = "✖"


class VmTable(DataTable[Text]):
    """Every VM of the cluster. Keys: arrows, j/k, g/G, Home/End, PgUp/PgDn move, 1-6 sort, space marks."""

    HELP = """\
## VM table

One row per VM, refreshed live. The detail strip below shows the VM under the cursor.

* **Status** is coloured; `!` flags a failed flag, `blk` a VM Pacemaker blocks.
* **Snaps** / **Latest**: number of snapshots and the age of the newest one.
* **Task / failure**: `⟳ start 40%` while a task of this console runs on the VM; `✖ start 7m` its last
  failure (of a task, or Pacemaker's while it is not running), kept until a success or a cleanup.
  **!** shows the failed VMs only (again: all); **l** says why (the cause, the QEMU log).
* Move with the arrows, **j**/**k**, **g**/**G** or **Home**/**End** (first, last), **PgUp**/**PgDn**.
* Press **1**-**6** to sort by a column (again to reverse), or click a header.
* **space** marks VMs for a bulk snapshot (**N**).
* **/** filters: `web`, `status:failed`, `node:hv1`, `~^web[12]$` (regex), `!status:started`.
* **M** moves (live-migrates) the VM to another online node; **u** updates it in place (new XML
  and/or settings, with a diff before anything changes).
* **tab** goes to the cluster pane (node standby/online), then to the snapshot pane.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(i + 1), f"sort_by('{column}')", f"Sort by {column}", show=False, id=f"table.sort.{column}")
            for i, column in enumerate(SORT_COLUMNS)
        ),
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("g,home", "first", "First VM", show=False, id="table.first"),
        Binding("G,end", "last", "Last VM", show=False, id="table.last"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.vm_filter = VmFilter()
        self.sort_column = "name"
        self.sort_reverse = False
        self.marked: set[str] = set()
        self._vms: dict[str, VmState] = {}
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._by_display: dict[str, str] = {}
        self._cursor_vm: str | None = None
        self._now: datetime | None = None
        self.activity: dict[str, str] = {}  # VM -> what a task of this console is doing to it now
        self.failures: FailureBook = FailureBook()  # the console's book, set by the main screen
        self._failures_seen = -1
        # name -> (the VmState, its newest snapshot's time, what else the row shows, the row)
        self._row_cache: dict[str, tuple[VmState, datetime | None, tuple[object, ...], tuple[Text, ...]]] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(self._header(key, label), key=key, width=width)

    # ------------------------------------------------------------------------------------ reading
    @property
    def current_vm(self) -> str | None:
        """The name of the VM under the cursor (None when the table is empty)."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value

    def vm_state(self, name: str | None) -> VmState | None:
        return self._vms.get(name) if name else None

    @property
    def visible_names(self) -> list[str]:
        return [row.key.value for row in self.ordered_rows if row.key.value is not None]

    # ------------------------------------------------------------------------------------ writing
    def show_state(self, state: ClusterState, now: datetime) -> None:
        """Diff ``state`` into the table (filtered), then sort and restore the cursor."""
        self._now = now
        self._vms = {vm.name: vm for vm in state.vms}
        self.marked &= set(self._vms)
        for gone in set(self._row_cache) - set(self._vms):
            del self._row_cache[gone]
        self._sync()

    def set_filter(self, vm_filter: VmFilter) -> None:
        self.vm_filter = vm_filter
        self._sync()

    def set_sort(self, column: str, reverse: bool | None = None) -> None:
        if column not in SORT_COLUMNS:
            raise ValueError(column)
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column, self.sort_reverse = column, reverse
        for key, label, _width in COLUMNS:
            self.columns[ColumnKey(key)].label = self._header(key, label)
        self._refresh_header()
        self._apply_sort()

    def toggle_mark(self, name: str) -> None:
        if name in self.marked:
            self.marked.discard(name)
        elif name in self._vms:
            self.marked.add(name)
        self._sync()

    def clear_marks(self) -> None:
        self.marked.clear()
        self._sync()

    def move_to(self, name: str) -> bool:
        """Put the cursor on the VM's row; False when it is not shown (filtered out or gone)."""
        try:
            index = self.get_row_index(name)
        except Exception:
            return False
        self._cursor_vm = name
        self.move_cursor(row=index, animate=False, scroll=True)
        return True

    def action_sort_by(self, column: str) -> None:
        self.set_sort(column)

    def action_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False, scroll=True)

    def action_last(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False, scroll=True)

    def show_activity(self, activity: dict[str, str]) -> None:
        """What this console's tasks are doing to each VM (inline progress on its row), and the
        failures it keeps (redrawn when the book changed: a task failed, a cleanup ran)."""
        if activity != self.activity or self.failures.version != self._failures_seen:
            self.activity = dict(activity)
            self._sync()

    # ------------------------------------------------------------------------------------ internals
    def _header(self, key: str, label: str) -> Text:
        if key == getattr(self, "sort_column", "name"):
            return Text(label + ("▼" if self.sort_reverse else "▲"), style="bold")
        return Text(label)

    def _refresh_header(self) -> None:
        self._clear_caches()
        self.refresh()

    def _row(self, vm: VmState) -> tuple[Text, ...]:
        """The VM's row, built again only when something it shows changed: the VM (an unchanged VM is
        the very same ``VmState`` from one read to the next), its mark, its task, its failure or an
        age it shows. A refresh costs the main thread in proportion to what changed."""
        now = self._now or datetime.now().astimezone()
        cached = self._row_cache.get(vm.name)
        same_vm = cached is not None and cached[0] is vm
        if cached is not None and same_vm:
            latest_created = cached[1]
        else:
            latest = vm.latest_snapshot
            latest_created = latest.created if latest else None
        failure = None if vm.name in self.activity else self.failures.shown(vm)
        key = (
            vm.name in self.marked,
            self.activity.get(vm.name),
            failure,
            text.table_age(latest_created, now),
            text.table_age(failure.when, now) if failure is not None and failure.when is not None else None,
        )
        if cached is not None and same_vm and cached[2] == key:
            return cached[3]
        cells = self._build_row(vm, now)
        self._row_cache[vm.name] = (vm, latest_created, key, cells)
        return cells

    def _build_row(self, vm: VmState, now: datetime) -> tuple[Text, ...]:
        """One row; every cell plain and left as it is in every row (no style that moves a column)."""
        latest = vm.latest_snapshot
        return (
            Text(MARK if vm.name in self.marked else " ", style="bold cyan", end=""),
            text.plain(vm.name),
            text.status_text(vm),
            text.plain(vm.node or "-"),
            Text(str(len(vm.snapshots)), justify="right", end=""),
            Text(text.table_age(latest.created if latest else None, now), justify="right", end=""),
            Text(text.size(vm.total_size) if vm.disks else "-", justify="right", end=""),
            self._note(vm, now),
        )

    def _note(self, vm: VmState, now: datetime) -> Text:
        doing = self.activity.get(vm.name)
        if doing is not None:
            return Text.assemble((f"{RUNNING} ", "bold yellow"), text.plain(doing, "yellow"), end="")
        failure = self.failures.shown(vm)
        if failure is None:
            return Text("", end="")
        age = f" {text.table_age(failure.when, now)}" if failure.when is not None else ""
        return Text.assemble((f"{FAILED} ", "bold red"), text.plain(f"{failure.what}{age}", "red"), end="")

    def _sync(self) -> None:
        keep = self.current_vm or self._cursor_vm
        self._failures_seen = self.failures.version
        failed = self.failures.failed_names(self._vms.values())
        wanted = {
            name: self._row(vm) for name, vm in self._vms.items() if self.vm_filter.match(vm, failed=name in failed)
        }
        existing = set(self._cells)
        gone = existing - set(wanted)
        changed = False
        column_keys = [ColumnKey(key) for key, _label, _width in COLUMNS]
        with self.app.batch_update():
            if gone and len(gone) > 10 and len(gone) > len(existing) // 2:
                self.clear()
                self._cells.clear()
                existing = set()
                changed = True
            else:
                for name in gone:
                    self.remove_row(name)
                    del self._cells[name]
                    changed = True
            for name, cells in wanted.items():
                if name in existing:
                    old = self._cells[name]
                    if old is cells:
                        continue  # the very row shown: nothing to compare
                    for column, before, after in zip(column_keys, old, cells, strict=True):
                        if before != after:
                            self.update_cell(name, column, after)
                            changed = changed or column.value in (self.sort_column, "mark")
                else:
                    self.add_row(*cells, key=name)
                    changed = True
                self._cells[name] = cells
            self._by_display = {cells[1].plain: name for name, cells in self._cells.items()}
            if changed:
                self._apply_sort(restore=False)
            self._restore_cursor(keep)

    def _apply_sort(self, restore: bool = True) -> None:
        keep = self.current_vm if restore else None
        column = self.sort_column

        def key(name_cell: Text) -> object:
            vm = self._vms.get(self._by_display.get(name_cell.plain, ""))
            return sort_value(vm, column) if vm else ()

        if self.row_count:
            self.sort(ColumnKey("name"), key=key, reverse=self.sort_reverse)
        if restore:
            self._restore_cursor(keep)

    def _restore_cursor(self, name: str | None) -> None:
        if name is not None and name in self._cells:
            self.move_to(name)
        elif self.row_count:
            row = min(self.cursor_row, self.row_count - 1)
            self.move_cursor(row=max(row, 0), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        current = self.current_vm
        if current is not None:
            self._cursor_vm = current

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = event.column_key.value
        if column in SORT_COLUMNS:
            self.set_sort(column)
