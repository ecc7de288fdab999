"""``vmconsole constraint ...``: Pacemaker constraints a VM keeps in its metadata."""

from __future__ import annotations

import argparse

from vmconsole.cli import common
from vmconsole.cli.options import Subparsers, noun, verb
from vmconsole.core import vms


def add_parser(subparsers: Subparsers) -> None:
    verbs = noun(subparsers, "constraint", help="Pacemaker constraints kept in the VM's metadata")
    with verb(
        verbs,
        "colocate",
        constraint_colocate,
        help="keep a VM on the same node as other resources",
        dry_run=True,
    ) as p:
        p.add_argument("resources", nargs="+")
        p.add_argument("--strong", action="store_true", help="score INFINITY instead of 700")
    with verb(
        verbs,
        "uncolocate",
        constraint_uncolocate,
        help="stop keeping a VM with these resources (the colocation made by colocate)",
        dry_run=True,
    ) as p:
        p.add_argument("resources", nargs="+")


def constraint_colocate(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_colocate(svc, args.name, args.resources, args.strong))


def constraint_uncolocate(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_uncolocate(svc, args.name, args.resources))
