"""``?``: help for the focused widget: what it shows, and every key it answers (greyed out with the
reason when disabled), grouped; one scrollable page, by keyboard too (arrows, j/k, PgUp/PgDn, g/G)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# binding id prefix -> the heading its keys are listed under, in this order
GROUPS: dict[str, str] = {
    "": "This view",
    "table": "Moving and sorting",
    "vm": "On the VM under the cursor",
    "snap": "On the snapshot under the cursor",
    "node": "On the node under the cursor",
    "console": "Console",
}


def group_of(binding_id: str | None) -> str:
    prefix = (binding_id or "").split(".", 1)[0]
    return GROUPS.get(prefix, GROUPS[""])


@dataclass(frozen=True)
class KeyHelp:
    key: str
    description: str
    enabled: bool
    reason: str | None = None
    group: str = GROUPS[""]


def keys_table(keys: list[KeyHelp]) -> Table:
    """Every key, under its group's heading (the groups in ``GROUPS`` order)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column()
    order = list(GROUPS.values())
    groups = sorted({k.group for k in keys}, key=lambda g: order.index(g) if g in order else len(order))
    for index, group in enumerate(groups):
        if index:
            table.add_row(Text(""), Text(""))
        table.add_row(Text(group, style="bold underline"), Text(""))
        for item in (k for k in keys if k.group == group):
            description = Text(item.description, style="" if item.enabled else "dim")
            if not item.enabled and item.reason:
                description.append(f"  (disabled: {item.reason})", style="dim italic")
            table.add_row(Text(item.key, style="bold cyan" if item.enabled else "dim"), description)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close", id="help.close"),
        Binding("j", "scroll('down')", "Scroll down", show=False, id="help.down"),
        Binding("k", "scroll('up')", "Scroll up", show=False, id="help.up"),
        Binding("g", "scroll('home')", "Top", show=False, id="help.top"),
        Binding("G", "scroll('end')", "Bottom", show=False, id="help.bottom"),
    ]

    def __init__(self, title: str, help_markdown: str, keys: list[KeyHelp]) -> None:
        super().__init__()
        self.title_text = title
        self.help_markdown = help_markdown
        self.keys = keys

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown  # markdown-it: loaded when help opens, not at the start

        with Vertical(id="help-dialog"):
            yield Static(Text(f"Help: {self.title_text}", style="bold"), id="help-title")
            with VerticalScroll(id="help-body"):
                yield Markdown(self.help_markdown, id="help-text")
                yield Static(keys_table(self.keys), id="help-keys")
            yield Static(
                Text(
                    "↑↓ j k PgUp PgDn g G scroll · escape closes · ctrl+p lists every command",
                    style="dim",
                ),
                id="help-footer",
            )

    def on_mount(self) -> None:
        self.query_one("#help-body", VerticalScroll).focus()

    def action_scroll(self, where: str) -> None:
        body = self.query_one("#help-body", VerticalScroll)
        {"down": body.scroll_down, "up": body.scroll_up, "home": body.scroll_home, "end": body.scroll_end}[where]()
