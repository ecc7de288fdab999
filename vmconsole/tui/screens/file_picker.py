"""Pick a local file (a disk image, a domain XML) from a directory tree."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DirectoryTree, Input, Static

from vmconsole.tui.screens.form_base import FormScreen


class FilePickerScreen(FormScreen[str | None]):
    HELP = """\
## Pick a file

Move in the tree with the arrows, **enter** opens a directory or picks a file. You can also type a
path in the box and press **enter**.
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
            yield Static(Text(str(self.start), style="dim"), id="picker-root")
            yield DirectoryTree(self.start, id="picker-tree")
            yield Input(str(self.start) + "/", id="picker-path")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Up", id="up")
                yield Button("Pick", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#picker-form").border_title = self.title_text
        self.query_one(DirectoryTree).focus()

    @on(DirectoryTree.FileSelected)
    def file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path))

    @on(DirectoryTree.DirectorySelected)
    def directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        self.query_one("#picker-path", Input).value = str(event.path) + "/"

    @on(Button.Pressed, "#up")
    def up(self) -> None:
        tree = self.query_one(DirectoryTree)
        parent = Path(tree.path).parent
        tree.path = parent
        self.query_one("#picker-root", Static).update(Text(str(parent), style="dim"))

    @on(Input.Submitted, "#picker-path")
    @on(Button.Pressed, "#ok")
    def pick(self) -> None:
        value = self.query_one("#picker-path", Input).value.strip()
        path = Path(value).expanduser()
        if path.is_file():
            self.dismiss(str(path))
        elif path.is_dir():
            self.query_one(DirectoryTree).path = path
            self.query_one("#picker-root", Static).update(Text(str(path), style="dim"))
        else:
            self.notify(f"{value} is not a file", severity="warning", markup=False)

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)
