"""``?``: help for the focused widget: what it shows, and its keys (greyed out with the reason when disabled)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Markdown, Static


@dataclass(frozen=True)
class KeyHelp:
    key: str
    description: str
    enabled: bool
    reason: str | None = None


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, title: str, help_markdown: str, keys: list[KeyHelp]) -> None:
        super().__init__()
        self.title_text = title
        self.help_markdown = help_markdown
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static(Text(f"Help: {self.title_text}", style="bold"), id="help-title")
            with VerticalScroll(id="help-body"):
                yield Markdown(self.help_markdown, id="help-text")
                table: DataTable[Text] = DataTable(id="help-keys", cursor_type="none", show_cursor=False)
                yield table
            yield Static(
                Text("escape closes · ctrl+p lists every command · : opens the command line", style="dim"),
                id="help-footer",
            )

    def on_mount(self) -> None:
        table = self.query_one("#help-keys", DataTable)
        table.add_column("Key", key="key")
        table.add_column("Action", key="action")
        for item in self.keys:
            description = Text(item.description, style="" if item.enabled else "dim")
            if not item.enabled and item.reason:
                description.append(f"  (disabled: {item.reason})", style="dim italic")
            table.add_row(Text(item.key, style="bold cyan" if item.enabled else "dim"), description)
