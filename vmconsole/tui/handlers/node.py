"""Handlers of placement: move a VM to another node, drain a node (standby) or bring it back
online. Each calls its ``vmconsole.core.placement`` function through the module, when it runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from rich.text import Text
from textual.app import App

from vmconsole.core import placement
from vmconsole.domain.model import ClusterState, NodeState, NodeStatus, VmState, VmStatus
from vmconsole.tui import text
from vmconsole.tui.console import Console, console_of
from vmconsole.tui.handlers.base import ConfirmTask, Request, confirm_task
from vmconsole.tui.screens.node_pick import NodePickScreen
from vmconsole.tui.task_record import TaskRecord, TaskState


class Move(NamedTuple):
    vm: VmState
    target: str


def _move_body(console: Console, move: Move) -> Text:
    vm, target = move
    body = Text.assemble("Move ", text.where(vm), "\n  from ", text.plain(vm.node or "-", "bold"))
    body.append("\n  to   ")
    body.append(text.plain(target, "bold"))
    body.append("?\n\n")
    if vm.settings.get("live_migration"):
        body.append("Live migration is on: the VM keeps running while it moves.")
    else:
        body.append(
            "Live migration is off: the VM is stopped on its node and started again on the new one;"
            " its services are down meanwhile.",
            style="yellow",
        )
    if vm.settings.get("preferred_host"):
        body.append("\nIts preferred host becomes ")
        body.append(text.plain(target, "bold"))
        body.append(".")
    return body


MOVE = ConfirmTask[Move](
    title=lambda move: f"Move {text.safe(move.vm.name)}",
    body=_move_body,
    confirm="Move",
    task=lambda move: f"move {move.vm.name} {move.vm.node or '-'} → {move.target}",
    vm=lambda move: move.vm.name,
    plan=lambda services, move: placement.plan_move(services, move.vm.name, move.target),
    danger=False,
)


def report_moves(app: App[Any], record: TaskRecord) -> None:
    """After a node standby/online: where each VM went, in the task's log and a notification."""
    if record.state is not TaskState.DONE or record.result is None:
        return
    moves = record.result.data.get("moves") or {}
    now = console_of(app).now()
    if not moves:
        record.add_log(now, "no VM moved")
        return
    lines = [
        f"{vm}: {where.get('from') or '-'} → {where.get('to') or 'stopped'}"
        for vm, where in sorted(moves.items())
        if isinstance(where, Mapping)
    ]
    record.add_log(now, "where each VM went:")
    for line in lines:
        record.add_log(now, f"  {line}")
    app.notify(
        "\n".join(text.safe(line) for line in lines),
        title=text.safe(f"{record.title}: where the VMs went"),
        timeout=15,
        markup=False,
    )


def _hosted(state: ClusterState | None, node: str) -> list[VmState]:
    return sorted((vm for vm in state.vms if vm.node == node), key=lambda vm: vm.name) if state else []


def _other_online(state: ClusterState | None, node: str) -> list[str]:
    """The other member nodes that could take a drained node's VMs."""
    if state is None:
        return []
    return [n.name for n in state.nodes if n.kind == "member" and n.status is NodeStatus.ONLINE and n.name != node]


def _standby_body(console: Console, node: NodeState) -> Text:
    hosted = _hosted(console.state, node.name)
    others = _other_online(console.state, node.name)
    body = Text.assemble("Put node ", text.plain(node.name, "bold"), " in standby (drain it)?\n\n")
    count = len(hosted)
    if hosted and not others:
        body.append(
            f"No other node is online: the {count} VM{'s' if count != 1 else ''} it hosts will STOP"
            " (they cannot move anywhere) and stay stopped until a node can take them:\n",
            style="bold red",
        )
    elif hosted:
        body.append(
            f"Pacemaker moves the {count} VM{'s' if count != 1 else ''} it hosts to "
            + ", ".join(others)
            + " (live-migrated where allowed, otherwise stopped and started again):\n"
        )
    else:
        body.append("It hosts no VM now.\n")
    for vm in hosted:
        body.append("  • ")
        body.append(text.where(vm))
        body.append("\n")
    if others:
        body.append("\nA VM that can run nowhere else (pinned, colocated) is stopped.")
    body.append(" The node takes no VM until it is brought online again (O).")
    return body


STANDBY = ConfirmTask[NodeState](
    title=lambda node: f"Standby {text.safe(node.name)}",
    body=_standby_body,
    confirm="Standby (drain)",
    task=lambda node: f"standby {node.name}",
    vm=lambda node: None,
    plan=lambda services, node: placement.plan_node_standby(services, node.name, True),
    typed=lambda node: node.name,
    typed_what="the node name",
    on_finish=report_moves,
)

ONLINE = ConfirmTask[NodeState](
    title=lambda node: f"Online {text.safe(node.name)}",
    body=lambda console, node: Text.assemble(
        "Bring node ",
        text.plain(node.name, "bold"),
        " (",
        text.plain(node.status.value),
        ") back online?\n\n",
        "It can host VMs again: Pacemaker may move VMs to it (preferred hosts, location constraints).",
    ),
    confirm="Online",
    task=lambda node: f"online {node.name}",
    vm=lambda node: None,
    plan=lambda services, node: placement.plan_node_standby(services, node.name, False),
    danger=False,
    on_finish=report_moves,
)


def move(request: Request) -> None:
    """Move the VM to ``request.target``, or to the node picked in the node picker."""
    vm, app, state = request.vm, request.app, request.console.state
    name, node = vm.name, request.target
    if vm.status is not VmStatus.STARTED:
        app.notify(
            text.safe(f"{name} is {vm.status.value}: only a Started VM can be moved."),
            title="Move",
            severity="warning",
            markup=False,
        )
        return
    candidates = [
        n
        for n in (state.nodes if state is not None else ())
        if n.kind == "member" and n.status is NodeStatus.ONLINE and n.name != vm.node
    ]
    if not candidates:
        app.notify(
            text.safe(f"No other online node to move {name} to."), title="Move", severity="warning", markup=False
        )
        return
    if node is not None:
        if not any(n.name == node for n in candidates):
            choices = ", ".join(n.name for n in candidates)
            app.notify(
                text.safe(f"{node} is not another online node for {name}; choose one of: {choices}"),
                title="Move",
                severity="warning",
                markup=False,
            )
            return
        confirm_task(app, MOVE, Move(vm, node))
        return

    def picked(target: str | None) -> None:
        if target is not None:
            confirm_task(app, MOVE, Move(vm, target))

    app.push_screen(NodePickScreen(vm, candidates, state.vms if state is not None else ()), picked)


def standby(request: Request) -> None:
    node = request.node
    if node.status is NodeStatus.STANDBY:
        request.app.notify(text.safe(f"Node {node.name} is already in standby."), severity="warning", markup=False)
        return
    confirm_task(request.app, STANDBY, node)


def online(request: Request) -> None:
    node = request.node
    if node.status is NodeStatus.ONLINE:
        request.app.notify(text.safe(f"Node {node.name} is already online."), severity="warning", markup=False)
        return
    confirm_task(request.app, ONLINE, node)
