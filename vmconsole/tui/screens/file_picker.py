"""Pick a local file (a disk image, a domain XML) from a directory tree.

Local file names are shown literally: markup in a name (``[red]x``) is text, and control characters
(an ESC in a name) are shown escaped as ``\\xNN``, as everything the console shows from outside.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text, TextType
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DirectoryTree, Input, Static

from vmconsole.tui import text
from vmconsole.tui.screens.form_base import FormScreen


class SafeDirectoryTree(DirectoryTree):
    """A directory tree whose labels are literal text with control characters escaped."""

    def process_label(self, label: TextType) -> Text:
        # the base class parses a str label as markup and keeps control characters
        return text.plain(label.plain if isinstance(label, Text) else label)


def shown_path(path: Path | str) -> Text:
    return text.plain(str(path), "dim")


class FilePickerScreen(FormScreen[str | None]):
    HELP = """\
## Pick a file

Move in the tree with the arrows, **enter** opens a directory or picks a file. You can also type a
path in the box and press **enter**. Names are shown literally (control characters as `\\xNN`).
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="picker.cancel")]

    def __init__(self, title: str, start: str | None = None) -> None:
        super().__init__(classes="form-screen")
        self.title_text = title
        path = Path(start).expanduser() if start else Path.cwd()
        while not path.is_dir() and path != path.parent:
            path = path.parent
        self.start = path if path.is_dir() else Path("/")

    def compose(self) -> ComposeResult:
        with Vertical(classes="form fill", id="picker-form"):
            yield Static(shown_path(self.start), id="picker-root")
            yield SafeDirectoryTree(self.start, id="picker-tree")
            yield Input(self._editable(self.start), id="picker-path")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Up", id="up")
                yield Button("Pick", id="ok", variant="primary")

    @staticmethod
    def _editable(directory: Path) -> str:
        """The path for the box: an input must never hold control characters (it would send them)."""
        value = str(directory) + "/"
        return value if value.isprintable() else ""

    def on_mount(self) -> None:
        self.query_one("#picker-form").border_title = self.title_text
        self.query_one(DirectoryTree).focus()

    @on(DirectoryTree.FileSelected)
    def file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path))

    @on(DirectoryTree.DirectorySelected)
    def directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        self.query_one("#picker-path", Input).value = self._editable(event.path)

    def _go(self, directory: Path) -> None:
        self.query_one(DirectoryTree).path = directory
        self.query_one("#picker-root", Static).update(shown_path(directory))

    @on(Button.Pressed, "#up")
    def up(self) -> None:
        self._go(Path(self.query_one(DirectoryTree).path).parent)

    @on(Input.Submitted, "#picker-path")
    @on(Button.Pressed, "#ok")
    def pick(self) -> None:
        value = self.query_one("#picker-path", Input).value.strip()
        path = Path(value).expanduser()
        if path.is_file():
            self.dismiss(str(path))
        elif path.is_dir():
            self._go(path)
        else:
            self.notify(text.safe(f"{value} is not a file"), severity="warning", markup=False)

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
