"""Confirmation modal, with a typed-name mode; ``ask`` opens one and runs what follows a yes.

The question always names the VM, its node and what is lost. Focus starts on **Cancel**, so
``enter`` right away answers No. The most destructive actions (remove, rollback, purge, bulk)
additionally need a word typed (the VM name): the confirm button stays disabled until it matches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from vmconsole.tui import text
from vmconsole.tui.screens.form_base import FormScreen


class ConfirmModal(FormScreen[bool]):
    HELP = """\
## Confirmation

Read what will happen. **escape** or **n** cancels (the default: focus is on Cancel). When asked,
type the exact word shown (the VM name, the node name for a node standby, or the count of a bulk
snapshot) before the confirm button unlocks.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel", id="confirm.cancel"),
        Binding("y", "yes", "Yes", id="confirm.yes"),
        Binding("left,right", "switch", "Switch button", show=False),
    ]

    def __init__(
        self,
        title: str | Text,
        body: Text,
        *,
        confirm_label: str = "Confirm",
        danger: bool = True,
        typed: str | None = None,
        typed_what: str = "the VM name",
    ) -> None:
        super().__init__(classes="danger" if danger else "")
        self.title_text = title if isinstance(title, Text) else Text(title)
        self.body = body
        self.confirm_label = confirm_label
        self.danger = danger
        self.typed = typed
        self.typed_what = typed_what

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.title_text, id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static(self.body)
            if self.typed is not None:
                yield Label(
                    Text.assemble("Type ", text.plain(self.typed, "bold reverse"), f" ({self.typed_what}) to confirm:"),
                    id="typed-label",
                )
                yield Input(placeholder=self.typed, id="typed", select_on_focus=False)
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="default")
                yield Button(
                    self.confirm_label,
                    id="confirm",
                    variant="error" if self.danger else "primary",
                    disabled=self.typed is not None,
                )

    def on_mount(self) -> None:
        if self.typed is not None:
            self.query_one("#typed", Input).focus()
        else:
            self.query_one("#cancel", Button).focus()

    @property
    def matches(self) -> bool:
        return self.typed is None or self.query_one("#typed", Input).value == self.typed

    @on(Input.Changed, "#typed")
    def typed_changed(self) -> None:
        self.query_one("#confirm", Button).disabled = not self.matches

    @on(Input.Submitted, "#typed")
    def typed_submitted(self) -> None:
        if self.matches:
            self.dismiss(True)
        else:
            self.notify(f"Type {text.safe(self.typed)} exactly to confirm.", severity="warning", markup=False)

    @on(Button.Pressed, "#confirm")
    def confirm_pressed(self) -> None:
        if self.matches:
            self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.dismiss(False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "yes":
            return self.typed is None
        return True

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


def ask(
    app: App[Any],
    title: str,
    body: Text,
    then: Callable[[], object],
    *,
    label: str = "Confirm",
    typed: str | None = None,
    typed_what: str = "the VM name",
    danger: bool = True,
) -> None:
    """Ask ``title`` with ``body``; ``then`` runs on yes, nothing on no."""

    def answered(yes: bool | None) -> None:
        if yes:
            then()

    app.push_screen(
        ConfirmModal(title, body, confirm_label=label, typed=typed, typed_what=typed_what, danger=danger), answered
    )
