"""The base of the action screens and modals: compact form widgets, so forms fit 80×24."""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, RadioButton, RadioSet, Select

ResultType = TypeVar("ResultType")

COMPACT = (Input, Button, Select, Checkbox, RadioSet, RadioButton)


class FormScreen(ModalScreen[ResultType]):
    """A modal whose inputs, buttons, selects and toggles are all compact (one line, no border)."""

    def on_mount(self) -> None:
        for widget in self.query("*"):
            if isinstance(widget, COMPACT):
                widget.compact = True

    def action_switch(self) -> None:
        """Move the focus to the next enabled button (bound to left/right by the screens that want it)."""
        buttons = [b for b in self.query(Button) if not b.disabled]
        if self.focused in buttons and len(buttons) > 1:
            buttons[(buttons.index(self.focused) + 1) % len(buttons)].focus()  # type: ignore[arg-type]
        elif buttons:
            buttons[0].focus()
