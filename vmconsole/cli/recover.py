"""``vmconsole recover``: the tasks a killed vmconsole left half done; undo their completed steps, or forget them."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from vmconsole.cli import common
from vmconsole.cli.options import Subparsers, verb
from vmconsole.cli.output import emit, safe
from vmconsole.core.recovery import forget, incomplete_tasks, undo_task
from vmconsole.domain.errors import NotFoundError, ValidationError


def add_parser(subparsers: Subparsers) -> None:
    with verb(
        subparsers,
        "recover",
        recover,
        help="incomplete tasks left by a killed vmconsole: list, undo",
        operands=(),
        dry_run="show the task's journal entry (what it had done), change nothing",
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
        if not args.forget and not args.undo:
            raise ValidationError("say what to do", field="task", hint="--undo (undo its completed steps) or --forget")
        if args.dry_run:
            entry = next((e for e in incomplete_tasks(svc) if e.get("task") == args.task), None)
            if entry is None:
                raise NotFoundError(f"no incomplete task {args.task!r}", field="task")
            action = "forget" if args.forget else "undo"
            emit(
                args.json,
                {"dry_run": True, "would_change": True, "action": action, "entry": entry},
                lambda: [*_incomplete_lines([entry]), f"(dry run: the task would be {action}ed; nothing was changed)"],
            )
            return 0
        if args.forget:
            forget(svc, args.task)
            emit(
                args.json,
                {"task": args.task, "forgotten": True},
                lambda: [f"journal entry {safe(args.task)} dropped"],
                changed=True,
            )
            return 0
        # before anything: undo_task breaks the dead task's locks before its undo runs as a task
        svc.require_writable(f"undoing task {args.task}")
        result = undo_task(svc, args.task)
        emit(args.json, result, lambda: [safe(result["message"])], changed=True)
        return 0


def _incomplete_lines(entries: list[dict[str, Any]]) -> Iterator[str]:
    if not entries:
        yield "no incomplete task"
    for e in entries:
        yield (
            f"{safe(e.get('task'))}  {safe(e.get('operation')):<10} {safe(e.get('vm') or '-'):<12} "
            f"{safe(e.get('state')):<15} by {safe(e.get('holder'))} (pid {safe(e.get('pid'))}"
            f"{', alive' if e.get('alive') else ''}) since {safe(e.get('started'))}; "
            f"done: {safe(', '.join(map(str, e.get('done') or [])) or 'nothing')}"
        )
