"""``vmconsole metadata ...``: a VM's user metadata, the ``key = value`` pairs kept with its disks."""

from __future__ import annotations

import argparse

from vmconsole.cli import common
from vmconsole.cli.options import KeyValues, Subparsers, add_verb, noun, verb
from vmconsole.cli.output import emit, safe
from vmconsole.core import vms


def add_parser(subparsers: Subparsers) -> None:
    verbs = noun(subparsers, "metadata", help="a VM's user metadata")
    add_verb(verbs, "list", metadata_list, help="keys and values")
    add_verb(verbs, "get", metadata_get, help="one value", operands=("name", "key"))
    with verb(verbs, "set", metadata_set, help="set KEY=VALUE pairs", dry_run=True) as p:
        p.add_argument("pairs", nargs="+", action=KeyValues, metavar="KEY=VALUE")
    with verb(verbs, "remove", metadata_remove, help="remove keys", dry_run=True) as p:
        p.add_argument("keys", nargs="+")


def metadata_list(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        values = vms.metadata_list(svc, args.name)
    emit(
        args.json,
        values,
        lambda: (f"{safe(key)} = {safe(value)}" for key, value in sorted(values.items())),
        changed=None,  # the user's own keys: "changed" could be one of them
    )
    return 0


def metadata_get(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        value = vms.metadata_get(svc, args.name, args.key)
    emit(args.json, {"key": args.key, "value": value}, lambda: [safe(value)])
    return 0


def metadata_set(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_metadata_set(svc, args.name, args.pairs))


def metadata_remove(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_metadata_set(svc, args.name, {}, remove=args.keys))
