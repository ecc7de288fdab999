"""``vmconsole remote ...``: the pacemaker-remote node a VM carries (the VM's guest joins the cluster)."""

from __future__ import annotations

import argparse

from vmconsole.cli import common
from vmconsole.cli.options import Subparsers, add_verb, noun, verb
from vmconsole.core import vms


def add_parser(subparsers: Subparsers) -> None:
    verbs = noun(subparsers, "remote", help="the pacemaker-remote node a VM carries")
    with verb(verbs, "add", remote_add, dry_run=True) as p:
        p.add_argument("--remote-name", required=True)
        p.add_argument("--remote-address", required=True)
        p.add_argument("--remote-port")
        p.add_argument("--remote-timeout")
    add_verb(verbs, "remove", remote_remove, dry_run=True)


def remote_add(args: argparse.Namespace) -> int:
    return common.plan_and_run(
        args,
        lambda svc: vms.plan_remote(
            svc,
            args.name,
            remote_name=args.remote_name,
            address=args.remote_address,
            port=args.remote_port,
            timeout=args.remote_timeout,
        ),
    )


def remote_remove(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_remote(svc, args.name, remote_name=None))
