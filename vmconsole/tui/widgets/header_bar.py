"""The top line: cluster, counts, the ``[RO]`` badge, running tasks and the refresh indicator."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vmconsole.domain.model import ClusterState, VmStatus
from vmconsole.tui import text


class HeaderBar(Widget):
    """Shows ``last refresh N s ago`` while reads succeed, ``STALE: <reason>`` when they do not."""

    HELP = """\
## Header

`[RO]`: read-only mode, every action that changes the cluster is disabled (the reason is shown when
you press its key). The right side says how old the shown data is, or **STALE** and why when the
last read failed or was incomplete (the table keeps the last known data). A read that takes longer
than twice the refresh interval shows at once, in yellow, how long it has waited and for which
backend (**waiting 12s for pacemaker**); the last data stays on screen meanwhile.
"""

    read_only: reactive[bool] = reactive(False)
    running_tasks: reactive[int] = reactive(0)
    stale_reason: reactive[str | None] = reactive(None)
    age_seconds: reactive[float | None] = reactive(None)
    overdue: reactive[str | None] = reactive(None)  # the read in flight is overdue: what it waits on

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: ClusterState | None = None

    def show_state(self, state: ClusterState | None) -> None:
        self.state = state
        self.refresh()

    def update_age(self, last_ok: datetime | None, now: datetime) -> None:
        self.age_seconds = None if last_ok is None else max((now - last_ok).total_seconds(), 0.0)

    def render(self) -> Text:
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        if self.read_only:
            line.append(" [RO] ", style="bold black on yellow")
            line.append(" ")
        line.append("vmconsole", style="bold")
        state = self.state
        if state is not None:
            if state.cluster_name:
                line.append(" ")
                line.append(text.plain(state.cluster_name, "bold cyan"))
            failed = sum(1 for vm in state.vms if vm.status is VmStatus.FAILED or vm.failed)
            line.append(f"  {len(state.vms)} VMs")
            if failed:
                line.append(f" {failed} failed", style="bold red")
        if self.running_tasks:
            line.append(f"  ⟳ {self.running_tasks} task{'s' if self.running_tasks > 1 else ''}", style="bold yellow")
        right = Text(end="")
        if self.overdue is not None:
            right.append(" ⏳ ", style="bold black on yellow")
            right.append(text.plain(" " + self.overdue + " ", "bold yellow"))
            if self.stale_reason is None and self.age_seconds is not None:
                right.append(f" (data {text.seconds_short(self.age_seconds)} old)", style="yellow")
        if self.stale_reason is not None:
            right.append(" STALE: ", style="bold white on red")
            right.append(text.plain(" " + text.shorten(self.stale_reason, 200) + " ", "bold red"))
            if self.age_seconds is not None:
                right.append(f" (data {text.seconds_short(self.age_seconds)} old)", style="red")
        elif self.overdue is not None:
            pass
        elif self.age_seconds is not None:
            right.append("● ", style="green")
            right.append(f"refreshed {text.seconds_short(self.age_seconds)} ago", style="dim")
        else:
            right.append("reading the cluster…", style="dim")
        width = self.size.width or 80
        # the stale/age indicator and the [RO] badge always stay visible: the middle gives way
        if right.cell_len > width - 16:
            right.truncate(max(width - 16, 8), overflow="ellipsis")
        room = max(width - right.cell_len - 1, 0)
        line.truncate(room, overflow="ellipsis")
        line.append(" " * max(width - line.cell_len - right.cell_len, 1))
        line.append(right)
        return line
