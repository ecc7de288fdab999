"""The ``:`` command line: ``:start web1``, ``:snapshot db1 before-upgrade``, ``:filter status:failed``,
``:move web1 hv2`` (the target node; without it, the node picker), ``:standby hv1`` / ``:online hv1``
(a node; without it, the one under the cluster pane's cursor).

A command runs the same flow as its key (same screens, same confirmations); a VM named on the line
replaces the VM under the cursor.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from vmconsole.tui.actions import ALL_ACTIONS, BY_NAME, FOLLOW_UPS, NODE_ACTIONS

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


def completion_order() -> list[str]:
    """Every verb, in the order completion offers them: the VM actions first (as the table lists
    them: ``start`` and ``stop`` before the node's ``standby``), then the console's, then node
    actions, then the rest and every alias."""
    ordered = [spec.name for spec in ALL_ACTIONS] + list(CONSOLE_VERBS) + [spec.name for spec in NODE_ACTIONS]
    ordered += [spec.name for spec in FOLLOW_UPS] + sorted(BY_NAME) + sorted(ALIASES)
    return list(dict.fromkeys(ordered))


def complete_verb(prefix: str) -> str | None:
    """The verb ``prefix`` completes to (None when it completes to nothing new)."""
    if not prefix:
        return None
    lowered = prefix.lower()
    return next((v for v in completion_order() if v.startswith(lowered) and v != lowered), None)


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
