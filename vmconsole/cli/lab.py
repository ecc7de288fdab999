"""``vmconsole lab ...``: the local throwaway cluster, all under one directory: up, down, status, seed,
and for a multi-node lab crash, rejoin and exec (run a command inside a node)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from vmconsole.cli.options import Subparsers, add_verb, verb
from vmconsole.lab.lab import Lab, LabError
from vmconsole.lab.paths import ENV_DIR

MAX_NODES = 3


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
        p.add_argument(
            "--nodes",
            type=int,
            choices=range(1, MAX_NODES + 1),
            default=1,
            metavar="N",
            help="nodes, 1 to 3 (default 1: the single-node lab on loopback); 2 or 3 make the multi-node lab,"
            " each node in its own namespaces",
        )
        p.add_argument("--observer", action="store_true", help="the last node is an observer (no libvirt, no VM)")
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
    add_verb(
        verbs,
        "crash",
        lab_crash,
        help="kill a node of a multi-node lab hard (QEMUs, libvirtd, pacemaker, corosync)",
        operands=("node",),
        json=False,
    )
    add_verb(verbs, "rejoin", lab_rejoin, help="start a crashed or fenced node again", operands=("node",), json=False)
    with verb(
        verbs,
        "exec",
        lab_exec,
        help="run a command inside a node (vmconsole there reaches the node's pacemaker and libvirt)",
        operands=("node",),
        json=False,
    ) as p:
        p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")


def _lab(args: argparse.Namespace) -> Lab:
    """The lab of --dir; its progress messages go to stderr."""
    return Lab(args.dir, log=lambda message: print(message, file=sys.stderr, flush=True))


def lab_up(args: argparse.Namespace) -> int:
    lab = _lab(args)
    seconds = lab.up(nodes=args.nodes, observer=args.observer)
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


def lab_crash(args: argparse.Namespace) -> int:
    seconds = _lab(args).crash(args.node)
    print(f"node {args.node} crashed in {seconds:.2f} s")
    return 0


def lab_rejoin(args: argparse.Namespace) -> int:
    seconds = _lab(args).rejoin(args.node)
    print(f"node {args.node} online again in {seconds:.1f} s")
    return 0


def lab_exec(args: argparse.Namespace) -> int:
    """Replace this process with the command, inside the node, with the lab's configuration."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("vmconsole lab exec: give a command: lab exec NODE -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    lab = Lab(args.dir)
    argv = lab.node_argv(args.node, command, cwd=os.getcwd())
    sys.stdout.flush()
    os.execvpe(argv[0], argv, {**os.environ, **lab.node_env()})


def lab_seed(args: argparse.Namespace) -> int:
    _seed(_lab(args))
    return 0


def lab_status(args: argparse.Namespace) -> int:
    """Exit code 0 when every component is up, else 1 (also when there is no lab)."""
    lab = _lab(args)
    statuses = lab.status()
    up = bool(statuses) and all(s.up for s in statuses)
    nodes = lab.node_status()
    if args.json:
        report: dict[str, object] = {
            "dir": str(lab.paths.root),
            "up": up,
            "components": [s.to_dict() for s in statuses],
        }
        if nodes:
            report["nodes"] = [n.to_dict() for n in nodes]
        print(json.dumps(report, indent=2))
    elif not statuses:
        print(f"no lab in {lab.paths.root}")
    else:
        for s in statuses:
            pid = str(s.pid) if s.pid else "-"
            line = f"{s.name:<10} {'up' if s.up else 'DOWN':<5} pid {pid:<8} {s.health}"
            if nodes and s.name in {n.name for n in nodes}:
                line += "  (" + ", ".join(s.detail) + ")"
            print(line)
    return 0 if up else 1


def _seed(lab: Lab) -> None:
    node = lab.seed_node()
    if node is not None:
        # a multi-node lab's pacemaker and libvirt are reached from inside a node only
        command = [sys.executable, "-m", "vmconsole", "lab", "--dir", str(lab.paths.root), "seed"]
        result = lab.run_on(node, command, timeout=600)
        print(result.stdout, end="")
        print(result.stderr, end="", file=sys.stderr)
        if result.returncode != 0:
            raise LabError(f"seeding the demo VMs on {node} failed")
        return
    from vmconsole.lab.seed import seed

    for line in seed(lab):
        print(line)
