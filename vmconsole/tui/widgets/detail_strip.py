"""Two lines under the table about the VM under the cursor: where it runs, and its last failure."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widget import Widget

from vmconsole.domain.model import VmState, VmStatus
from vmconsole.tui import text


class DetailStrip(Widget):
    HELP = """\
## Detail strip

The VM under the cursor: status, node, fail count, disks, snapshots, and its last failure (or what
could not be read about it). **enter** opens the full detail view.
"""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.vm: VmState | None = None
        self.now: datetime | None = None
        self.marked = 0

    def show_vm(self, vm: VmState | None, now: datetime, marked: int = 0) -> None:
        self.vm, self.now, self.marked = vm, now, marked
        self.refresh()

    def render(self) -> Text:
        vm = self.vm
        if vm is None:
            return Text("no VM selected", style="dim")
        first = Text(no_wrap=True, overflow="ellipsis", end="")
        first.append(text.plain(vm.name, "bold"))
        first.append("  ")
        first.append(text.status_text(vm))
        if vm.node:
            first.append(" on ")
            first.append(text.plain(vm.node, "bold"))
        if not vm.enabled:
            first.append("  (not in the cluster)", style="dim")
        if vm.fail_count:
            first.append(f"  fail-count {'INFINITY' if vm.fail_count >= 1000000 else vm.fail_count}", style="bold red")
        first.append(f"  {len(vm.disks)} disk{'s' if len(vm.disks) != 1 else ''} {text.size(vm.total_size)}")
        latest = vm.latest_snapshot
        first.append(f"  {len(vm.snapshots)} snap")
        if latest is not None and self.now is not None:
            first.append(f", latest {text.age(latest.created, self.now)} ago")
        if self.marked:
            first.append(f"  [{self.marked} marked]", style="bold cyan")
        second = Text(no_wrap=True, overflow="ellipsis", end="")
        if vm.last_failure is not None:
            failure = vm.last_failure
            style = "red" if vm.failed or vm.status is VmStatus.FAILED else "yellow"
            second.append("last failure: ", style=f"bold {style}")
            second.append(text.plain(failure.summary(), style))
            if failure.when is not None:
                second.append(f"  at {text.stamp(failure.when)}", style="dim")
        elif vm.problems:
            second.append("unreadable: ", style="bold yellow")
            second.append(text.plain("; ".join(vm.problems), "yellow"))
        else:
            second.append("no failure recorded", style="dim")
        return Text("\n", end="").join([first, second])
