"""``vmconsole lab ...``: the local throwaway cluster, all under one directory: up, down, status, seed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vmconsole.cli.options import Subparsers, add_verb, verb
from vmconsole.lab.lab import Lab
from vmconsole.lab.paths import ENV_DIR


def add_parser(subparsers: Subparsers) -> None:
    lab = subparsers.add_parser(
        "lab",
        help="the local throwaway cluster (Ceph + libvirt/QEMU + corosync/pacemaker)",
        description="Bring up, inspect and tear down the local lab cluster, all under one directory "
        f"(default /tmp/vmconsole-lab, or ${ENV_DIR}).",
    )
    lab.add_argument("--dir", type=Path, default=None, help="the lab directory")
    verbs = lab.add_subparsers(dest="verb", required=True, metavar="VERB")
    with verb(verbs, "up", lab_up, help="start the lab (a running lab is left as it is)", operands=(), json=False) as p:
        p.add_argument("--seed", action="store_true", help="also create the demo VMs")
    add_verb(
        verbs,
        "down",
        lab_down,
        help="stop everything the lab started and remove its directory",
        operands=(),
        json=False,
    )
    with verb(verbs, "status", lab_status, help="each component: up/down, PID, health", operands=(), json=False) as p:
        p.add_argument("--json", action="store_true", help="machine-readable output")
    add_verb(verbs, "seed", lab_seed, help="create the demo VMs in a running lab", operands=(), json=False)


def _lab(args: argparse.Namespace) -> Lab:
    """The lab of --dir; its progress messages go to stderr."""
    return Lab(args.dir, log=lambda message: print(message, file=sys.stderr, flush=True))


def lab_up(args: argparse.Namespace) -> int:
    lab = _lab(args)
    seconds = lab.up()
    if seconds:
        print(f"lab up in {seconds:.1f} s")
    if args.seed:
        _seed(lab)
    print(f"config: {lab.paths.config_file}")
    return 0


def lab_down(args: argparse.Namespace) -> int:
    seconds = _lab(args).down()
    print(f"lab down in {seconds:.1f} s")
    return 0


def lab_seed(args: argparse.Namespace) -> int:
    _seed(_lab(args))
    return 0


def lab_status(args: argparse.Namespace) -> int:
    """Exit code 0 when every component is up, else 1 (also when there is no lab)."""
    lab = _lab(args)
    statuses = lab.status()
    up = bool(statuses) and all(s.up for s in statuses)
    if args.json:
        print(
            json.dumps(
                {"dir": str(lab.paths.root), "up": up, "components": [s.to_dict() for s in statuses]},
                indent=2,
            )
        )
    elif not statuses:
        print(f"no lab in {lab.paths.root}")
    else:
        for s in statuses:
            pid = str(s.pid) if s.pid else "-"
            print(f"{s.name:<10} {'up' if s.up else 'DOWN':<5} pid {pid:<8} {s.health}")
    return 0 if up else 1


def _seed(lab: Lab) -> None:
    from vmconsole.lab.seed import seed

    for line in seed(lab):
        print(line)
