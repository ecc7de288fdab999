"""The live view of one task: its steps, the current one, percent, throughput, ETA, and its log.

The pane polls its ``TaskRecord`` ten times a second and writes the new log lines in one batch, so a
chatty task never floods the UI with one refresh per line; long lines wrap, never cut.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, RichLog, Static

from vmconsole.tui import text
from vmconsole.tui.task_record import TaskRecord, TaskState

STATE_STYLES = {
    TaskState.PLANNING: "bold yellow",
    TaskState.RUNNING: "bold yellow",
    TaskState.DONE: "bold green",
    TaskState.FAILED: "bold white on red",
    TaskState.CANCELLED: "bold white on red",
    TaskState.INCOMPLETE: "bold black on yellow",
}
ENDED_BADLY = (TaskState.FAILED, TaskState.CANCELLED, TaskState.INCOMPLETE)


def steps_text(record: TaskRecord) -> Text:
    out = Text(end="")
    if not record.steps:
        out.append(
            "planning: checking everything before changing anything…" if record.active else "no steps", style="dim"
        )
        return out
    for index, name in enumerate(record.steps):
        if index:
            out.append("\n")
        finished = record.state is TaskState.DONE
        if finished or index < record.step_index:
            mark, style = "✔", "green"
        elif index == record.step_index and record.state in ENDED_BADLY:
            mark, style = ("↺" if record.undoing else "✖"), "bold red"
        elif index == record.step_index and record.active:
            mark, style = "▶", "bold yellow"
        else:
            mark, style = "·", "dim"
        if record.undoing and index < record.step_index and not finished and record.state is not TaskState.INCOMPLETE:
            mark, style = "↺", "yellow"  # undone; an incomplete task kept what its steps made
        out.append(f" {mark} {index + 1}. ", style=style)
        out.append(text.plain(name, style if mark != "·" else "dim"))
    return out


def current_text(record: TaskRecord) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis", end="")
    out.append(f" {record.state.value.upper()} ", style=STATE_STYLES[record.state])
    out.append(f" {record.percent:3.0f}%")
    if record.active and record.steps:
        out.append(f"  step {record.step_index + 1}/{len(record.steps)}")
    if record.active and record.total:
        if record.unit == "bytes":
            out.append(f"  {text.size(record.done)} / {text.size(record.total)}")
        else:
            out.append(f"  {record.done}/{record.total}")
        if record.rate and record.unit == "bytes":
            out.append(f"  {text.rate(record.rate)}", style="cyan")
        if record.eta is not None:
            out.append(f"  ETA {text.duration(record.eta)}", style="cyan")
    if record.state is TaskState.INCOMPLETE:
        out.append("  stopped part-way: not undone", style="bold yellow")
    return out


def result_text(record: TaskRecord) -> Text:
    """The task's result, wrapped (never cut): its message, the commands it names, and the cause."""
    out = Text(end="")
    if record.active or not record.message:
        return out
    style = {TaskState.DONE: "green", TaskState.INCOMPLETE: "yellow"}.get(record.state, "red")
    out.append(text.plain(record.message, style))
    commands = record.commands
    if commands and record.state is not TaskState.DONE:
        out.append("\n")
        out.append(
            "To finish, revert or look further:" if record.state is TaskState.INCOMPLETE else "See:", style="bold"
        )
        for command in commands:
            out.append("\n  ")
            out.append(text.plain(command, "bold cyan"))
    if record.cause:
        out.append("\nCause: ", style="bold red")
        out.append(text.plain(record.cause, "red"))
    return out


class ProgressPane(Vertical):
    HELP = """\
## Progress pane

The task's plan (✔ done, ▶ running, ✖ failed, ↺ undone), the overall percent, throughput and ETA of
copies and imports, its result (in full, with the commands it names and, for a failed start, the
**Cause:** libvirt or QEMU gave) and the task's log. A task keeps running when you leave this view.
A task that **stopped part-way** (INCOMPLETE) kept what its finished steps made on purpose: the
result says what, and the command that finishes or reverts it.
"""

    def __init__(self, record: TaskRecord, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.record = record
        self._version = -1
        self._logged = 0

    def compose(self) -> ComposeResult:
        yield Static(id="progress-title")
        yield Static(id="progress-steps")
        yield ProgressBar(total=100, show_eta=False, id="progress-bar")
        yield Static(id="progress-current")
        yield Static(id="progress-result")
        yield RichLog(max_lines=2000, min_width=20, wrap=True, id="progress-log", auto_scroll=True)

    def on_mount(self) -> None:
        self.sync()
        self.set_interval(0.1, self.sync)

    def sync(self) -> None:
        record = self.record
        if record.version == self._version:
            return
        self._version = record.version
        title = Text(end="")
        title.append(text.plain(record.title, "bold"))
        if record.task_id:
            title.append(f"   task {record.task_id}", style="dim")
        self.query_one("#progress-title", Static).update(title)
        self.query_one("#progress-steps", Static).update(steps_text(record))
        self.query_one(ProgressBar).update(progress=record.percent)
        self.query_one("#progress-current", Static).update(current_text(record))
        result = self.query_one("#progress-result", Static)
        result.update(result_text(record))
        result.display = bool(result_text(record).plain)
        fresh = min(record.log_total - self._logged, len(record.log))
        if fresh > 0:
            log = self.query_one(RichLog)
            for line in record.log[-fresh:]:
                log.write(Text(line))  # already made safe by the record; Text: never markup
        self._logged = record.log_total
