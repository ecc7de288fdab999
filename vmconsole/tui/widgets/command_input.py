"""The ``:`` command line, with completion of verbs, VM names, nodes and snapshots.

**tab** (or **right**) accepts the completion and nothing else: the focus never leaves the box while
it is open, so no letter typed for the command can reach the VM table as an action key. Leaving the
box any other way (a click elsewhere) closes it.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input

from vmconsole.tui import cmdline
from vmconsole.tui.actions import BY_NAME
from vmconsole.tui.console import console_of

SNAPSHOT_VERBS = ("rollback", "snapshot-remove", "snapshot-protect")


class CommandSuggester(Suggester):
    def __init__(self, box: CommandInput) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.box = box

    async def get_suggestion(self, value: str) -> str | None:
        words = value.split(" ")
        last = words[-1]
        if len(words) == 1:
            match = cmdline.complete_verb(last)
        else:
            if not last:
                return None
            candidates = self.box.candidates(words[0], len(words) - 1, words[1] if len(words) > 2 else None)
            match = next((c for c in candidates if c.startswith(last) and c != last), None)
        return " ".join([*words[:-1], match]) if match else None


class CommandInput(Input):
    HELP = """\
## Command line

`:verb [vm] [argument]`, e.g. `:start web1`, `:snapshot db1 before-upgrade`, `:rollback db1`,
`:move web1 hv2`, `:colocate web1 db1`, `:import legacydom`, `:timeline web1`,
`:filter status:failed`, `:sort status`, `:tasks`, `:history`, `:quit`. Without a VM, the VM under
the cursor. **tab** or **right** accepts the completion shown in grey (verbs first as the table lists
them, then VM names, nodes, snapshots); **escape** closes. Commands run the same screens and
confirmations as their keys.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="command.close"),
        Binding("tab", "complete", "Complete", show=False, id="command.complete"),
    ]

    class Closed(Message):
        def __init__(self, box: Input) -> None:
            super().__init__()
            self.input = box

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder=":start web1   :snapshot db1   :filter status:failed   :help", id=id)
        self.suggester = CommandSuggester(self)

    def candidates(self, verb: str, position: int, vm: str | None) -> list[str]:
        """What the word at ``position`` (1: after the verb) may be, for ``verb``."""
        state = console_of(self.app).state
        if state is None:
            return []
        spec = BY_NAME.get(cmdline.ALIASES.get(verb, verb))
        nodes = [n.name for n in state.nodes]
        if spec is not None and spec.needs_node:
            return nodes if position == 1 else []
        if spec is None or not spec.needs_vm:
            return sorted(vm.name for vm in state.vms) if spec is not None and spec.name == "timeline" else []
        if position == 1:
            return sorted(vm.name for vm in state.vms)
        if spec.name == "move":
            return nodes
        found = state.vm(vm) if vm else None
        if found is not None and spec.name in SNAPSHOT_VERBS:
            return [s.name for s in found.snapshots]
        if spec.name == "colocate":
            return sorted(v.name for v in state.vms if v.enabled and v.name != vm)
        return []

    def vm_names(self) -> list[str]:
        state = console_of(self.app).state
        return sorted(vm.name for vm in state.vms) if state else []

    def action_complete(self) -> None:
        """Accept the completion shown (as **right** does at the end); never move the focus away."""
        self.cursor_position = len(self.value)
        self.action_cursor_right()

    def action_close(self) -> None:
        self.post_message(self.Closed(self))

    def on_blur(self, event: events.Blur) -> None:
        if self.has_class("-open"):
            self.post_message(self.Closed(self))
