"""The command palette (ctrl+p): every action, for the VM under the cursor, the node actions for each
node (standby for a node that is not in standby, online for one that is not online), plus views and
filters.

Built from the same action table as the key bindings, so palette and keys never disagree; an
action disabled in read-only mode is still listed (marked) and says why when chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from vmconsole.domain.model import NodeStatus
from vmconsole.tui import gating, text
from vmconsole.tui.actions import ALL_ACTIONS, NODE_ACTIONS
from vmconsole.tui.console import console_of
from vmconsole.tui.filtering import SORT_COLUMNS
from vmconsole.tui.screens.main import find_main


@dataclass(frozen=True)
class PaletteCommand:
    text: str
    help: str
    callback: Callable[[], object]


class VmCommandProvider(Provider):
    def commands(self) -> list[PaletteCommand]:
        app = console_of(self.app)
        main = find_main(self.app)
        current = main.table.current_vm if main else None
        out: list[PaletteCommand] = []
        for spec in ALL_ACTIONS:
            if spec.name == "mark":
                continue
            suffix = " (read-only)" if gating.disabled_reason(self.app, spec) else ""
            if spec.needs_vm:
                if current is None:
                    continue
                label = f"{spec.label}: {text.safe(current)}{suffix}"
                out.append(PaletteCommand(label, spec.description, partial(app.perform, spec.name, current)))
            else:
                out.append(
                    PaletteCommand(f"{spec.label}{suffix}", spec.description, partial(app.perform, spec.name, None))
                )
        for node in app.state.nodes if app.state is not None else ():
            for spec in NODE_ACTIONS:
                if (spec.name == "standby" and node.status is NodeStatus.STANDBY) or (
                    spec.name == "online" and node.status is NodeStatus.ONLINE
                ):
                    continue
                suffix = " (read-only)" if gating.disabled_reason(self.app, spec) else ""
                out.append(
                    PaletteCommand(
                        f"{spec.label}: node {text.safe(node.name)}{suffix}",
                        f"{spec.description} (now {node.status.value})",
                        partial(app.perform, spec.name, node=node.name),
                    )
                )
        if main is not None:
            for label, query in (
                ("Filter: failed VMs", "status:failed"),
                ("Filter: stopped VMs", "status:stopped"),
                ("Filter: clear", ""),
            ):
                out.append(
                    PaletteCommand(label, f"/ {query}" if query else "show every VM", partial(main.apply_filter, query))
                )
            for column in SORT_COLUMNS:
                out.append(
                    PaletteCommand(f"Sort by {column}", "again to reverse", partial(main.table.set_sort, column))
                )
            if app.state is not None:
                for vm in app.state.vms:
                    out.append(
                        PaletteCommand(
                            f"Go to VM {text.safe(vm.name)}", f"{vm.status.value}", partial(main.table.move_to, vm.name)
                        )
                    )
        return out

    async def discover(self) -> Hits:
        for command in self.commands():
            yield DiscoveryHit(Content(command.text), command.callback, text=command.text, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands():
            score = matcher.match(command.text)
            if score > 0:
                # never Content.from_markup: VM names are cluster data
                _score, offsets = matcher.fuzzy_search.match(query, command.text)
                display = Content(command.text)
                for offset in offsets:
                    display = display.stylize("bold underline", offset, offset + 1)
                yield Hit(score, display, command.callback, text=command.text, help=command.help)
