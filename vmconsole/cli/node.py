"""``vmconsole node ...``: the cluster's nodes, and draining one for maintenance."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from vmconsole.cli import common
from vmconsole.cli.options import Subparsers, add_verb, noun
from vmconsole.cli.output import emit, safe
from vmconsole.core.placement import plan_node_standby
from vmconsole.domain.model import ClusterState


def add_parser(subparsers: Subparsers) -> None:
    verbs = noun(subparsers, "node", help="cluster nodes: list, standby (drain), online")
    add_verb(verbs, "list", node_list, help="nodes with their status and VMs", operands=())
    add_verb(verbs, "standby", node_standby, help="drain a node for maintenance", operands=("node",), confirm=True)
    add_verb(verbs, "online", node_online, help="bring it back", operands=("node",), dry_run=True)


def node_list(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        state = svc.state()
    hosting: dict[str, list[str]] = {}
    for vm in state.vms:
        if vm.node:
            hosting.setdefault(vm.node, []).append(vm.name)
    nodes = [
        {"name": n.name, "status": n.status.value, "dc": n.is_dc, "kind": n.kind, "vms": hosting.get(n.name, [])}
        for n in state.nodes
    ]
    emit(args.json, nodes, lambda: _node_lines(state, hosting))
    return 0


def _node_lines(state: ClusterState, hosting: dict[str, list[str]]) -> Iterator[str]:
    for n in state.nodes:
        yield (
            f"{safe(n.name):<16} {safe(n.status.value):<12} {'DC ' if n.is_dc else '   '}{safe(n.kind):<8} "
            f"{safe(', '.join(hosting.get(n.name, [])) or '-')}"
        )
    yield f"quorum: {state.quorum}, ceph: {safe(state.ceph.status if state.ceph else 'unknown')}"


def node_standby(args: argparse.Namespace) -> int:
    return common.plan_and_run(
        args,
        lambda svc: plan_node_standby(svc, args.node, standby=True),
        confirm_with=args.node,
        warning=f"Every VM on {args.node} will be moved away (or stopped).",
    )


def node_online(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: plan_node_standby(svc, args.node, standby=False))
