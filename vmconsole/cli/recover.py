"""``vmconsole recover``: the tasks a killed vmconsole left half done; undo their completed steps, or forget them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from vmconsole.cli import common
from vmconsole.cli.options import Subparsers, verb
from vmconsole.cli.output import emit, safe
from vmconsole.core.recovery import forget, incomplete_tasks, undo_task


def add_parser(subparsers: Subparsers) -> None:
    with verb(
        subparsers, "recover", recover, help="incomplete tasks left by a killed vmconsole: list, undo", operands=()
    ) as p:
        p.add_argument("task", nargs="?", help="the task to act on")
        p.add_argument("--undo", action="store_true", help="undo its completed steps")
        p.add_argument("--forget", action="store_true", help="drop the journal entry without acting")


def recover(args: argparse.Namespace) -> int:
    """Without a task, list the incomplete ones; with one, --forget or --undo it (--forget wins)."""
    with common.open_services(args) as svc:
        if args.task is None:
            entries = incomplete_tasks(svc)
            emit(args.json, entries, lambda: _incomplete_lines(entries))
            return 0
        if args.forget:
            forget(svc, args.task)
            print(f"journal entry {args.task} dropped")
            return 0
        if not args.undo:
            print("say what to do: --undo (undo its completed steps) or --forget", file=sys.stderr)
            return 2
        result = undo_task(svc, args.task)
        emit(args.json, result, lambda: [safe(result["message"])])
        return 0


def _incomplete_lines(entries: list[dict[str, Any]]) -> Iterator[str]:
    if not entries:
        yield "no incomplete task"
    for e in entries:
        yield (
            f"{e['task']}  {e['operation']:<10} {safe(e.get('vm') or '-'):<12} {e['state']:<15} "
            f"by {safe(e.get('holder'))} (pid {e.get('pid')}{', alive' if e.get('alive') else ''}) "
            f"since {e.get('started')}; done: {', '.join(e.get('done', [])) or 'nothing'}"
        )
