"""``vmconsole history``: the audit trail of operations, oldest first."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from vmconsole.cli import common
from vmconsole.cli.options import Subparsers, verb
from vmconsole.cli.output import emit, safe


def add_parser(subparsers: Subparsers) -> None:
    with verb(
        subparsers, "history", history, help="the audit trail of operations (who, when, what, result)", operands=()
    ) as p:
        p.add_argument("--vm", help="only this VM")
        p.add_argument("--limit", type=int, default=50)


def history(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        records = svc.history()
    if args.vm:
        records = [r for r in records if r.get("vm") == args.vm]
    records = records[-args.limit :]
    emit(args.json, records, lambda: _history_lines(records))
    return 0


def _history_lines(records: list[dict[str, Any]]) -> Iterator[str]:
    for r in records:
        yield (
            f"{safe(r.get('finished', '?'))}  {safe(r.get('who', '?')):<16} {safe(r.get('operation', '?')):<14} "
            f"{safe(r.get('vm') or '-'):<12} {safe(r.get('result', '?')):<9} {_seconds(r.get('seconds')):>7}s  "
            f"{safe(r.get('message', ''))}"
        )


def _seconds(value: Any) -> str:
    """A record's duration; a record written by something else may hold anything there."""
    try:
        return f"{float(value or 0):.1f}"
    except (TypeError, ValueError):
        return safe(value)
