"""The ``:`` command line: ``:start web1``, ``:snapshot db1 before-upgrade``, ``:filter status:failed``,
``:move web1 hv2`` (the target node; without it, the node picker), ``:standby hv1`` / ``:online hv1``
(a node; without it, the one under the cluster pane's cursor).

A command runs the same flow as its key (same screens, same confirmations); a VM named on the line
replaces the VM under the cursor.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from vmconsole.tui.actions import BY_NAME

CONSOLE_VERBS: dict[str, str] = {
    "filter": "filter the table (same syntax as /), no argument clears it",
    "sort": "sort by a column: name, status, node, snaps, latest, size (again: reverse)",
    "help": "show the help",
    "quit": "leave the console",
}
ALIASES = {"q": "quit", "f": "filter", "h": "help"}


class CommandError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    verb: str
    vm: str | None
    args: tuple[str, ...]
    rest: str  # the raw text after the verb (for :filter)


def verbs() -> list[str]:
    return sorted({*BY_NAME, *CONSOLE_VERBS})


def parse_command(line: str) -> Command:
    text = line.strip().removeprefix(":").strip()
    if not text:
        raise CommandError("empty command")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise CommandError(f"cannot read the command: {exc}") from exc
    verb = ALIASES.get(words[0].lower(), words[0].lower())
    rest = text[len(words[0]) :].strip()
    if verb in CONSOLE_VERBS:
        return Command(verb, None, tuple(words[1:]), rest)
    spec = BY_NAME.get(verb)
    if spec is None:
        raise CommandError(f"unknown command {words[0]!r}; commands: {', '.join(verbs())}")
    if spec.needs_vm:
        return Command(spec.name, words[1] if len(words) > 1 else None, tuple(words[2:]), rest)
    return Command(spec.name, None, tuple(words[1:]), rest)
