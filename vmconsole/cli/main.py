"""The ``vmconsole`` command: the console by default, ``vmconsole <noun> <verb>`` for scripts."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from vmconsole import __version__
from vmconsole.cli.output import safe
from vmconsole.domain.errors import Cancelled, OperationIncomplete, ReadOnlyError, VmConsoleError

USAGE_ERROR = 2  # argparse's own code: bad input, nothing changed
LAB_CHANGES = ("up", "down", "seed", "crash", "rejoin", "exec")  # the lab's commands that change it

EXIT_CODES = """\
exit codes: 0 ok, 1 not confirmed, 2 bad input (nothing changed), 3 not found, 4 conflict with the
cluster's state (the JSON error's "reason" tells "already_*", the state asked for holds already, from
a real conflict), 5 locked by another operator, 6 a backend refused, 7 a backend timed out, 8 the
operation failed and was undone, 9 lab error, 10 `vm list` on a partial state, 11 the operation
stopped part-way (the message says what was kept and the command that finishes or reverts it),
12 refused by a read-only session, 78 configuration error, 130 cancelled, 141 what read the output went
away (`| head`).
With --json, stdout carries exactly one JSON document, also for "nothing to change" and for every
error; --read-only may be given anywhere on the command line."""


class UsageError(Exception):
    """A command line argparse refused (raised instead of exiting, so --json can answer in JSON)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are raised (its subparsers are of the same class), and which
    takes no abbreviation: ``vm update --disable`` must not be read as ``--disable-live-migration``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; ``--help`` lists the nouns in the order they are added here."""
    from vmconsole.cli import constraint, history, lab, lock, metadata, node, recover, remote, snapshot, vm

    parser = Parser(
        prog="vmconsole",
        description="Operations console for the VMs of a SEAPATH cluster. Without a command it opens "
        "the interactive console; `vmconsole <noun> <verb>` does the same operations from scripts.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vmconsole {__version__}")
    parser.add_argument(
        "--config",
        help="configuration file (default: $VMCONSOLE_CONFIG, ~/.config/vmconsole/config.toml, "
        "/etc/vmconsole/config.toml, else SEAPATH's defaults; the local lab only when named here)",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="refuse every change (exit 12); the console disables its mutating actions. Anywhere on the line",
    )
    subparsers = parser.add_subparsers(dest="noun", metavar="COMMAND")
    for noun in (vm, node, metadata, constraint, remote, history, lock, recover, snapshot, lab):
        noun.add_parser(subparsers)
    return parser


def split_read_only(argv: list[str]) -> tuple[list[str], bool]:
    """``--read-only`` is taken anywhere before a ``--`` (after the noun and verb too)."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:end] if a != "--read-only"]
    return head + argv[end:], len(head) != end


def _wants_json(argv: list[str]) -> bool:
    end = argv.index("--") if "--" in argv else len(argv)
    return "--json" in argv[:end]


def error_document(exc: VmConsoleError) -> dict[str, object]:
    """A failure as the one JSON document of a --json command: nothing changed unless the message says so."""
    # a task that stopped part-way kept what it had made (the message says what): that is a change
    return {**exc.to_dict(), "ok": False, "changed": isinstance(exc, OperationIncomplete), "exit_code": exc.exit_code}


def settle() -> None:
    """Once the command's modules are imported: their objects, which live as long as the process, are
    moved out of the collector's sight, so that its full passes (one in a 500-VM read, 20-50 ms holding
    the interpreter) walk only what the command itself made."""
    gc.freeze()


def leave(code: int) -> NoReturn:
    """End the process as soon as its answer is out: stdout and stderr flushed, then at once. The command
    is finished by then (its writes are synchronous, its cluster connection shut); tearing the interpreter
    down object by object would add 0.08 s after a 500-VM read, and idle worker threads nothing."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def run() -> NoReturn:
    """The ``vmconsole`` command."""
    try:
        code = main(on_ready=settle)
    except BrokenPipeError:
        code = 141  # what reads the output went away (`| head`): no traceback, a shell's SIGPIPE code
    leave(code)


def main(argv: list[str] | None = None, *, on_ready: Callable[[], None] | None = None) -> int:
    """The command line ``argv``, run; its exit code. ``on_ready`` runs once every module the command
    needs is imported (the parser imports them all)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, read_only = split_read_only(argv)
    as_json = _wants_json(argv)
    parser = build_parser()
    if on_ready is not None:
        on_ready()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {safe(exc.message)}", file=sys.stderr)
        if as_json:
            doc = {
                "error": "UsageError",
                "message": exc.message,
                "field": None,
                "hint": f"`{exc.parser.prog} --help`",
                "reason": "usage",
                "ok": False,
                "changed": False,
                "exit_code": USAGE_ERROR,
            }
            print(json.dumps(doc))
        return USAGE_ERROR
    args.read_only = bool(getattr(args, "read_only", False)) or read_only
    handler = getattr(args, "handler", None)
    try:
        if args.read_only and args.noun == "lab" and args.verb in LAB_CHANGES:
            # the lab's commands do not go through core's services: refused here
            raise ReadOnlyError(f"lab {args.verb} refused: this session is read-only (--read-only)")
        if handler is None:
            from vmconsole.cli.console import run_console

            return run_console(args)
        return int(handler(args))
    except VmConsoleError as exc:
        if getattr(args, "json", False):
            print(json.dumps(error_document(exc)))
        print(f"vmconsole: error: {safe(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vmconsole: interrupted", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps(error_document(Cancelled("interrupted"))))
        return 130
