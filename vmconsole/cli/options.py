"""The parser's vocabulary, each piece written once: a noun and its verbs, the operands and switches
every command takes (``--json``, ``--dry-run``, ``--yes``), ``key=value`` lists and the VM settings block
that create, clone, update and import share (turned into ``VmOptions``).

A command's options print in the order they are added, so ``verb`` adds them in a fixed order: its
operands, what the command's own body adds, ``--json``, then ``--yes`` and ``--dry-run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias, TypedDict, Unpack

from vmconsole.core import vms
from vmconsole.domain.errors import ValidationError

Handler = Callable[[argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

VALIDATE_PLAN = "validate and print the plan, change nothing"
PRINT_PLAN = "print the plan, change nothing"


def noun(subparsers: Subparsers, name: str, *, help: str) -> Subparsers:
    """A noun of ``vmconsole <noun> <verb>``; it returns the place its verbs are added to."""
    parser = subparsers.add_parser(name, help=help)
    return parser.add_subparsers(dest="verb", required=True, metavar="VERB")


class Switches(TypedDict, total=False):
    """What a command takes besides its own arguments."""

    help: str  # its line under the noun's --help (without one it is not listed there)
    operands: Sequence[str]  # its positional arguments; default: the VM's name
    json: bool  # --json; default: yes
    dry_run: bool | str  # --dry-run; a string is its help
    confirm: bool  # destructive: --yes (skip the typed confirmation) and --dry-run


@contextmanager
def verb(
    verbs: Subparsers, name: str, handler: Handler, **switches: Unpack[Switches]
) -> Iterator[argparse.ArgumentParser]:
    """A command that runs ``handler``; the body of the ``with`` adds the command's own arguments,
    between its operands and its switches."""
    help = switches.get("help")
    parser = verbs.add_parser(name) if help is None else verbs.add_parser(name, help=help)
    for operand in switches.get("operands", ("name",)):
        parser.add_argument(operand)
    yield parser
    if switches.get("json", True):
        parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    dry_run = switches.get("dry_run", False)
    if switches.get("confirm", False):
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts)")
        parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    elif dry_run:
        parser.add_argument("--dry-run", action="store_true", help=dry_run if isinstance(dry_run, str) else None)
    parser.set_defaults(handler=handler)


def add_verb(verbs: Subparsers, name: str, handler: Handler, **switches: Unpack[Switches]) -> None:
    """A command with no argument of its own (see ``verb``)."""
    with verb(verbs, name, handler, **switches):
        pass


class KeyValues(argparse.Action):
    """``key=value`` pairs: repeatable, later keys win, an item without '=' is a usage error."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        current = dict(getattr(namespace, self.dest) or {})
        for item in values:
            key, sep, value = item.partition("=")
            if not sep or not key:
                parser.error(f"{option_string}: expected key=value, got {item!r}")
            current[key] = value
        setattr(namespace, self.dest, current)


def add_vm_settings(parser: argparse.ArgumentParser, *, new_vm: bool = True, replace: bool = True) -> None:
    """The VM settings of create, clone, update and import; ``vm_options`` reads them back.

    ``new_vm``: --disable and --nostart (how a new VM joins the cluster; an update in place has
    `vm disable` and `vm stop` for that). ``replace``: --force (create and clone replace an existing
    VM; import and update do not). A command is never offered an option it would drop."""
    if new_vm:
        parser.add_argument("--disable", action="store_true", help="do not add it to Pacemaker (status Disabled)")
        parser.add_argument("--nostart", action="store_true", help="enable it with target-role Stopped")
    if replace:
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace an existing VM (the old one stays until the new one is fully built)",
        )
    parser.add_argument("--metadata", nargs="+", action=KeyValues, metavar="KEY=VALUE", help="user metadata")
    parser.add_argument("--pinned-host", help="run only on this node ('' clears it, with vm update)")
    parser.add_argument("--preferred-host", help="prefer this node ('' clears it, with vm update)")
    parser.add_argument(
        "--enable-live-migration",
        dest="live_migration",
        action="store_const",
        const=True,
        default=None,
        help="allow live migration",
    )
    parser.add_argument("--disable-live-migration", dest="live_migration", action="store_const", const=False)
    parser.add_argument("--migration-user", help="user for live migration (default root)")
    parser.add_argument("--stop-timeout", help="seconds (default 30)")
    parser.add_argument("--migrate-to-timeout", help="seconds (default 120)")
    parser.add_argument("--migration-downtime", help="milliseconds (default 0)")
    parser.add_argument("--priority", help="Pacemaker priority (default 0)")
    for name in ("meta", "params", "utilization"):
        parser.add_argument(
            f"--pacemaker-{name}", nargs="+", action=KeyValues, metavar="KEY=VALUE", help=f"extra Pacemaker {name}"
        )
    parser.add_argument(
        "--add-crm-config-cmd",
        dest="crm_config_cmd",
        action="append",
        default=[],
        metavar="CMD",
        help="extra `crm configure` command (needs crmsh)",
    )


def vm_options(args: argparse.Namespace) -> vms.VmOptions:
    """The settings ``add_vm_settings`` parsed; --disable and --nostart become enable and start."""
    return vms.VmOptions(
        pinned_host=args.pinned_host,
        preferred_host=args.preferred_host,
        live_migration=args.live_migration,
        migration_user=args.migration_user,
        stop_timeout=args.stop_timeout,
        migrate_to_timeout=args.migrate_to_timeout,
        migration_downtime=args.migration_downtime,
        priority=args.priority,
        pacemaker_meta=args.pacemaker_meta,
        pacemaker_params=args.pacemaker_params,
        pacemaker_utilization=args.pacemaker_utilization,
        crm_config_cmd=args.crm_config_cmd,
        metadata=args.metadata,
        enable=not getattr(args, "disable", False),
        start=not getattr(args, "nostart", False),
    )


def read_xml(path: str) -> str:
    """The libvirt XML file an ``--xml`` option names; missing or unreadable, a ValidationError of ``xml``."""
    try:
        return Path(path).read_text()
    except FileNotFoundError as exc:
        raise ValidationError(f"{path} does not exist", field="xml") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} cannot be read: {exc}", field="xml") from exc
