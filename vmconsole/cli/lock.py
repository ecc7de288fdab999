"""``vmconsole lock ...``: a VM's cluster-wide operation lock, and breaking the lock of a dead holder."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from vmconsole.cli import common
from vmconsole.cli.options import Subparsers, add_verb, noun, verb
from vmconsole.cli.output import emit, safe
from vmconsole.core.recovery import break_lock, lock_status


def add_parser(subparsers: Subparsers) -> None:
    verbs = noun(subparsers, "lock", help="a VM's cluster-wide operation lock: show, break")
    add_verb(verbs, "show", lock_show, help="who holds the lock, since when, alive or not")
    with verb(
        verbs,
        "break",
        lock_break,
        help="break the lock of a dead holder",
        dry_run="show whose lock would be broken, change nothing",
    ) as p:
        p.add_argument("--force", action="store_true", help="also when the holder is on another host")


def lock_show(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        status = lock_status(svc, args.name)
    emit(args.json, status, lambda: _lock_lines(args.name, status))
    return 0


def _lock_lines(name: str, status: dict[str, Any]) -> Iterator[str]:
    if not status["locked"]:
        yield f"{safe(name)} is not locked"
        return
    holder = status["holder"] or {}
    alive = {True: "alive", False: "dead", None: "unknown"}[status["holder_alive"]]
    yield (
        f"{safe(name)} is locked by {safe(holder.get('holder', '?'))} ({safe(holder.get('operation', '?'))}, "
        f"pid {safe(holder.get('pid', '?'))}, {alive}) since {safe(holder.get('since', '?'))}"
    )


def lock_break(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        if args.dry_run:
            # what `lock show` says, and no lock is touched: core decides again (dead holder, same host
            # or --force) when it is done for real
            status = lock_status(svc, args.name)
            if not status["locked"]:
                return common.unchanged(args, f"{args.name} is not locked", vm=args.name, broken=[])
            emit(
                args.json,
                {"dry_run": True, "would_change": True, "vm": args.name, "lock": status},
                lambda: [*_lock_lines(args.name, status), "(dry run: the lock was not broken)"],
            )
            return 0
        broken = break_lock(svc, args.name, force=args.force)
    emit(
        args.json,
        {"vm": args.name, "broken": broken},
        lambda: [f"lock of {safe(args.name)} broken: {safe(', '.join(broken))}"],
        changed=bool(broken),
    )
    return 0
