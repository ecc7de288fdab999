"""Every console action's handler, named in one table: ``HANDLERS[name]`` for each action of
``vmconsole.tui.actions``. ``perform`` is the one way in (keys, the palette and the ``:`` line):
it refuses a disabled action, resolves the VM or node from the last cluster state, then calls the
handler, which calls its core service.
"""

from __future__ import annotations

from typing import Any

from textual.app import App

from vmconsole.tui import gating, text
from vmconsole.tui.actions import BY_NAME
from vmconsole.tui.console import console_of
from vmconsole.tui.handlers import constraints, node, snapshot, views, vm
from vmconsole.tui.handlers.base import Handler, Request

HANDLERS: dict[str, Handler] = {
    # VM actions (VM_ACTIONS): on the VM under the cursor
    "detail": views.detail,
    "log": views.log,
    "start": vm.start,
    "stop": vm.stop,
    "enable": vm.enable,
    "disable": vm.disable,
    "cleanup": vm.cleanup,
    "remove": vm.remove,
    "snapshot": snapshot.create,
    "rollback": snapshot.rollback,
    "purge": snapshot.purge,
    "clone": vm.clone,
    "flatten": vm.flatten,
    "move": node.move,
    "update": vm.update,
    "metadata": views.metadata,
    "config": views.config,
    "colocate": constraints.colocate,
    "remote": constraints.remote,
    "retention": snapshot.retention,
    "lock": views.lock,
    "console": vm.serial_console,
    "mark": views.mark,
    # console actions (GLOBAL_ACTIONS)
    "create": vm.create,
    "import": vm.import_vm,
    "bulk-snapshot": snapshot.bulk,
    "tasks": views.tasks,
    "timeline": views.timeline,
    "failed": views.failed,
    "prune": snapshot.prune,
    "history": views.history,
    "recover": views.recover,
    "refresh": views.refresh,
    # node actions (NODE_ACTIONS): on the node under the cluster pane's cursor
    "standby": node.standby,
    "online": node.online,
    # the snapshot pane's row actions (SNAPSHOT_REMOVE, SNAPSHOT_PROTECT)
    "snapshot-remove": snapshot.remove,
    "snapshot-protect": snapshot.protect,
    # offered on a finished task (FOLLOW_UPS)
    "rollback-undo": snapshot.rollback_undo,
    "force-stop": vm.force_stop,
}


def perform(
    app: App[Any],
    action: str,
    vm_name: str | None = None,
    *,
    snapshot_name: str | None = None,
    node_name: str | None = None,
    argument: str | None = None,
) -> None:
    """Run one action by name (or alias). ``node_name`` is a node action's node, or a move's target."""
    spec = BY_NAME.get(action)
    if spec is None:
        app.notify(text.safe(f"unknown action {action!r}"), severity="error", markup=False)
        return
    if gating.refused(app, spec):
        return
    handler = HANDLERS[spec.name]
    state = console_of(app).state
    if spec.needs_node:
        node_state = state.node(node_name) if state is not None and node_name else None
        if node_name is None:
            app.notify("No node selected (tab to the cluster pane).", severity="warning", markup=False)
        elif node_state is None:
            app.notify(
                text.safe(f"No node named {node_name!r} in the last cluster state."), severity="error", markup=False
            )
        else:
            handler(Request(app, node_state=node_state))
        return
    if not spec.needs_vm:
        handler(Request(app, argument=argument))
        return
    if vm_name is None:
        app.notify("No VM selected.", severity="warning", markup=False)
        return
    vm_state = state.vm(vm_name) if state is not None and vm_name else None
    if vm_state is None:
        app.notify(text.safe(f"No VM named {vm_name!r} in the last cluster state."), severity="error", markup=False)
        return
    handler(Request(app, vm_state=vm_state, snapshot=snapshot_name, target=node_name, argument=argument))
