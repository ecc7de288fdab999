"""The base of the action screens and modals: compact form widgets, so forms fit 80×24, and a footer
of the modal's own keys (never the keys of the screen underneath).

``PlanningForm``: a form whose submit has the service plan the task while the form stays open: a
refusal (a UUID in use, an unknown resource) goes through the error path and every field stays to be
fixed; a plan dismisses the form with what was asked and the planned task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, RadioButton, RadioSet, Select

from vmconsole.core.services import Services
from vmconsole.core.tasks import Task
from vmconsole.tui.console import console_of

ResultType = TypeVar("ResultType")
SpecType = TypeVar("SpecType")

COMPACT = (Input, Button, Select, Checkbox, RadioSet, RadioButton)


class FormScreen(ModalScreen[ResultType]):
    """A modal whose inputs, buttons, selects and toggles are all compact (one line, no border)."""

    def on_mount(self) -> None:
        for widget in self.query("*"):
            if isinstance(widget, COMPACT):
                widget.compact = True
        if not self.query(Footer):
            self.mount(Footer(compact=True))

    def action_switch(self) -> None:
        """Move the focus to the next enabled button (bound to left/right by the screens that want it)."""
        buttons = [b for b in self.query(Button) if not b.disabled]
        if self.focused in buttons and len(buttons) > 1:
            buttons[(buttons.index(self.focused) + 1) % len(buttons)].focus()  # type: ignore[arg-type]
        elif buttons:
            buttons[0].focus()


class PlanningForm(FormScreen[tuple[SpecType, Task] | None], Generic[SpecType]):
    """A form that dismisses with ``(what was asked, the planned task)``; ``#ok`` is its submit button."""

    planning = False

    def plan_task(self, spec: SpecType, planner: Callable[[Services], Task], what: str) -> None:
        if self.planning:
            return
        self._planning(True)
        console = console_of(self.app)

        def failed(_error: BaseException) -> None:
            self._planning(False)  # the error path says why; the fields stay as typed

        console.call_in_thread(
            lambda: planner(console.services), lambda task: self.dismiss((spec, task)), what, on_error=failed
        )

    def _planning(self, busy: bool) -> None:
        self.planning = busy
        button = self.query_one("#ok", Button)
        if busy:
            self._label = button.label
            button.label = "Planning…"
        else:
            button.label = getattr(self, "_label", button.label)
        button.disabled = busy
