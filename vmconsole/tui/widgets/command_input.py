"""The ``:`` command line, with completion of verbs and VM names."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input

from vmconsole.tui import cmdline
from vmconsole.tui.console import console_of


class CommandSuggester(Suggester):
    def __init__(self, box: CommandInput) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.box = box

    async def get_suggestion(self, value: str) -> str | None:
        words = value.split(" ")
        if len(words) == 1:
            candidates = cmdline.verbs()
        elif len(words) == 2:
            candidates = self.box.vm_names()
        else:
            return None
        last = words[-1]
        if not last:
            return None
        match = next((c for c in candidates if c.startswith(last) and c != last), None)
        return " ".join([*words[:-1], match]) if match else None


class CommandInput(Input):
    HELP = """\
## Command line

`:verb [vm] [argument]`, e.g. `:start web1`, `:snapshot db1 before-upgrade`, `:rollback db1`,
`:filter status:failed`, `:sort status`, `:tasks`, `:history`, `:quit`. Without a VM, the VM under
the cursor. **tab**/**right** accepts the completion. Commands run the same screens and
confirmations as their keys.
"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close", id="command.close")]

    class Closed(Message):
        def __init__(self, box: Input) -> None:
            super().__init__()
            self.input = box

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder=":start web1   :snapshot db1   :filter status:failed   :help", id=id)
        self.suggester = CommandSuggester(self)

    def vm_names(self) -> list[str]:
        state = console_of(self.app).state
        return sorted(vm.name for vm in state.vms) if state else []

    def action_close(self) -> None:
        self.post_message(self.Closed(self))
