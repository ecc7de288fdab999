"""The ``/`` filter box: applied as you type, invalid filters (a bad regex) shown in red."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.validation import ValidationResult, Validator
from textual.widgets import Input

from vmconsole.tui.filtering import FilterError, parse_filter


class FilterSyntax(Validator):
    def validate(self, value: str) -> ValidationResult:
        try:
            parse_filter(value)
        except FilterError as exc:
            return self.failure(str(exc))
        return self.success()


class FilterInput(Input):
    HELP = """\
## Filter

Terms separated by spaces, all must match: `web` (name contains), `status:failed`, `node:hv1`,
`~^web[12]$` (regular expression), `!status:started` (negation). **enter** keeps the filter,
**escape** closes the box (the filter stays; **escape** again on the table clears it).
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="filter.close"),
        # tab stays in the box: a letter typed next must never reach the VM table as an action key
        Binding("tab", "stay", "Stay", show=False, id="filter.stay"),
    ]

    class Closed(Message):
        def __init__(self, box: Input) -> None:
            super().__init__()
            self.input = box

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            placeholder="filter: web  status:failed  node:hv1  ~regex  !negation",
            id=id,
            validators=[FilterSyntax()],
            validate_on=["changed", "submitted"],
        )

    def action_close(self) -> None:
        self.post_message(self.Closed(self))

    def action_stay(self) -> None:
        """Nothing: the focus stays here until enter or escape."""

    def on_blur(self, event: events.Blur) -> None:
        if self.has_class("-open"):
            self.post_message(self.Closed(self))
