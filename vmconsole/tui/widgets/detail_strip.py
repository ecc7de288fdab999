"""Two lines under the table about the VM under the cursor: where it runs (and what a task of this
console is doing to it), and its last failure with its cause."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widget import Widget

from vmconsole.domain.model import VmState, VmStatus
from vmconsole.tui import text
from vmconsole.tui.memory import FailureBook


class DetailStrip(Widget):
    HELP = """\
## Detail strip

The VM under the cursor: status, node, fail count, disks, snapshots, the task of this console
running on it, and its last failure with its **Cause** when known (or what could not be read about
it). **enter** opens the full detail view, **l** the diagnosis.
"""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.vm: VmState | None = None
        self.now: datetime | None = None
        self.marked = 0
        self.activity: dict[str, str] = {}  # VM -> what a task of this console does to it now
        self.failures = FailureBook()  # the console's book, set by the main screen

    def show_vm(self, vm: VmState | None, now: datetime, marked: int = 0) -> None:
        self.vm, self.now, self.marked = vm, now, marked
        self.refresh(layout=True)  # a failure with its cause may take a third line

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
        doing = self.activity.get(vm.name)
        if doing is not None:
            first.append(f"  ⟳ {doing}", style="bold yellow")
        # the failure wraps onto a third line rather than lose its cause
        second = Text(end="")
        kept = self.failures.shown(vm)
        failure = vm.last_failure
        if kept is not None or failure is not None:
            style = "red" if vm.failed or vm.status is VmStatus.FAILED or kept is not None else "yellow"
            second.append("last failure: ", style=f"bold {style}")
            if kept is not None and kept.cause:
                second.append("Cause: ", style=f"bold {style}")
                second.append(text.plain(kept.cause, style))
            elif kept is not None:
                second.append(text.plain(kept.message, style))
            elif failure is not None:
                second.append(text.plain(failure.summary(), style))
            when = kept.when if kept is not None else failure.when if failure is not None else None
            if when is not None:
                second.append(f"  at {text.stamp(when)}", style="dim")
        elif vm.problems:
            second.append("unreadable: ", style="bold yellow")
            second.append(text.plain("; ".join(vm.problems), "yellow"))
        else:
            second.append("no failure recorded", style="dim")
        return Text("\n", end="").join([first, second])
