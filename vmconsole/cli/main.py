"""The ``vmconsole`` command: the console by default, ``vmconsole <noun> <verb>`` for scripts."""

from __future__ import annotations

import argparse
import json
import sys

from vmconsole import __version__
from vmconsole.domain.errors import VmConsoleError


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; ``--help`` lists the nouns in the order they are added here."""
    from vmconsole.cli import constraint, history, lab, lock, metadata, node, recover, remote, snapshot, vm

    parser = argparse.ArgumentParser(
        prog="vmconsole",
        description="Operations console for the VMs of a SEAPATH cluster. Without a command it opens "
        "the interactive console; `vmconsole <noun> <verb>` does the same operations from scripts.",
    )
    parser.add_argument("--version", action="version", version=f"vmconsole {__version__}")
    parser.add_argument(
        "--config",
        help="configuration file (default: $VMCONSOLE_CONFIG, "
        "~/.config/vmconsole/config.toml, /etc/vmconsole/config.toml, else the local lab)",
    )
    parser.add_argument("--read-only", action="store_true", help="console: disable every mutating action")
    subparsers = parser.add_subparsers(dest="noun", metavar="COMMAND")
    for noun in (vm, node, metadata, constraint, remote, history, lock, recover, snapshot, lab):
        noun.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    try:
        if handler is None:
            from vmconsole.cli.console import run_console

            return run_console(args)
        return int(handler(args))
    except VmConsoleError as exc:
        if getattr(args, "json", False):
            print(json.dumps(exc.to_dict()))
        print(f"vmconsole: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vmconsole: interrupted", file=sys.stderr)
        return 130
