"""``vmconsole lab up | down | status | seed``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vmconsole.lab.lab import Lab
from vmconsole.lab.paths import ENV_DIR


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = subparsers.add_parser(
        "lab",
        help="the local throwaway cluster (Ceph + libvirt/QEMU + corosync/pacemaker)",
        description="Bring up, inspect and tear down the local lab cluster, all under one directory "
        f"(default /tmp/vmconsole-lab, or ${ENV_DIR}).",
    )
    lab.add_argument("--dir", type=Path, default=None, help="the lab directory")
    verbs = lab.add_subparsers(dest="verb", required=True, metavar="VERB")
    up = verbs.add_parser("up", help="start the lab (a running lab is left as it is)")
    up.add_argument("--seed", action="store_true", help="also create the demo VMs")
    verbs.add_parser("down", help="stop everything the lab started and remove its directory")
    status = verbs.add_parser("status", help="each component: up/down, PID, health")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    verbs.add_parser("seed", help="create the demo VMs in a running lab")
    lab.set_defaults(handler=run)


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    lab = Lab(args.dir, log=_print)
    if args.verb == "up":
        seconds = lab.up()
        if seconds:
            print(f"lab up in {seconds:.1f} s")
        if args.seed:
            _seed(lab)
        print(f"config: {lab.paths.config_file}")
        return 0
    if args.verb == "down":
        seconds = lab.down()
        print(f"lab down in {seconds:.1f} s")
        return 0
    if args.verb == "seed":
        _seed(lab)
        return 0
    statuses = lab.status()
    if args.json:
        print(
            json.dumps(
                {
                    "dir": str(lab.paths.root),
                    "up": bool(statuses) and all(s.up for s in statuses),
                    "components": [s.to_dict() for s in statuses],
                },
                indent=2,
            )
        )
    elif not statuses:
        print(f"no lab in {lab.paths.root}")
    else:
        for s in statuses:
            pid = str(s.pid) if s.pid else "-"
            print(f"{s.name:<10} {'up' if s.up else 'DOWN':<5} pid {pid:<8} {s.health}")
    return 0 if statuses and all(s.up for s in statuses) else 1


def _seed(lab: Lab) -> None:
    from vmconsole.lab.seed import seed

    for line in seed(lab):
        print(line)
