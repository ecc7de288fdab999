"""Where VMs run: move (or live-migrate) one VM, put a node in standby (drain it) or back online, with a
report of where each VM went.
"""

from __future__ import annotations

import time

from lxml import etree

from vmconsole.core.services import Services
from vmconsole.core.steps import START_WAIT, require_vm, stop_timeout
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import ConflictError, VmConsoleError
from vmconsole.domain.model import VmStatus
from vmconsole.domain.primitive import pacemaker_bool
from vmconsole.domain.primitive_builder import build_prefer_location
from vmconsole.domain.settings import VmSettings
from vmconsole.domain.units import duration_seconds


def plan_move(services: Services, vm: str, node: str, *, live_only: bool = False) -> Task:
    """Move a Started VM to ``node``: live when its primitive allows migration, else stop and start.
    ``live_only`` (``vm migrate``): a VM that cannot go live is refused, saying why.

    Only the VM's own preference (``cli-prefer-<vm>``) is written and removed: every ban (the
    observer's, remote nodes', another tool's) and every other constraint stays."""
    require_vm(services, vm)
    state = services.vm(vm)
    mon = services.crm_mon()
    members = [n.name for n in mon.nodes if n.kind == "member"]
    verb = "live-migrate" if live_only else "move"
    validate.node_name(node, members, field="node")
    if node == services.observer():
        raise ConflictError(
            f"cannot {verb} {vm} to {node}: {node} is the cluster's observer, it never runs VMs", field="node"
        )
    target = mon.node(node)
    if target is None or target.status.value != "online":
        where = target.status.value if target else "unknown"
        raise ConflictError(
            f"cannot {verb} {vm} to {node}: node {node} is {where}",
            field="node",
            hint=f"`vmconsole node online {node}` brings it back" if where == "standby" else None,
        )
    if not state.enabled:
        raise ConflictError(
            f"cannot {verb} {vm}: it is disabled, it runs nowhere", hint=f"enable it with --pinned-host {node}"
        )
    if state.status is not VmStatus.STARTED:
        raise ConflictError(f"cannot {verb} {vm}: it is {state.status.value}; only a Started VM can be moved")
    if state.node == node:
        raise ConflictError(f"{vm} already runs on {node}", reason="already_there")
    settings = VmSettings.from_metadata(services.rbd.metadata(naming.system_image(vm)))
    if settings.pinned_host:
        raise ConflictError(
            f"cannot {verb} {vm}: it is pinned to {settings.pinned_host}",
            hint=f"change it with `vmconsole vm update {vm} --pinned-host {node}`",
        )
    primitive = services.primitives().get(vm)
    # Pacemaker migrates live when the primitive says so (the stored setting may differ from it)
    live = pacemaker_bool(primitive.meta.get("allow-migrate") if primitive else None, default=False)
    if live_only and not live:
        raise ConflictError(
            f"cannot live-migrate {vm}: live migration is disabled on it (allow-migrate is not true)",
            hint=f"`vmconsole vm move {vm} {node}` stops it and starts it there; "
            f"`vmconsole vm update {vm} --enable-live-migration` allows live migration",
        )

    def move(ctx: StepContext) -> None:
        ctx.data["from"] = state.node
        ctx.log(f"{'live-migrating' if live else 'moving (stop and start)'} {vm} from {state.node} to {node}")
        services.pacemaker.move(vm, node)
        timeout = START_WAIT + stop_timeout(services, vm) + duration_seconds(settings.migrate_to_timeout, 120.0)
        deadline = time.monotonic() + timeout
        while True:
            status, where = services.vm_status(vm)
            if status is VmStatus.STARTED and where == node:
                # a live migration ends with the stop of the source's half, after the VM shows Started on
                # the target: it has arrived once the cluster has nothing left to do
                services.pacemaker.wait_idle(max(1.0, min(60.0, deadline - time.monotonic())))
                status, where = services.vm_status(vm)
                if status is VmStatus.STARTED and where == node:
                    break
            if status is VmStatus.FAILED:
                raise VmConsoleError(
                    f"{vm} failed while moving to {node}", hint=f"`vmconsole vm diagnose {vm}` shows why"
                )
            if time.monotonic() > deadline:
                raise VmConsoleError(
                    f"{vm} did not arrive on {node} within {timeout:.0f} s (now {status.value} on {where or 'no node'})"
                )
            ctx.check_cancel()
            time.sleep(0.3)

    def unmove(ctx: StepContext) -> None:
        services.pacemaker.clear_move(vm)
        _restore_preference(services, vm, settings)

    def clear(ctx: StepContext) -> None:
        # the VM's own preference only (never `crm_resource --clear`, which drops every ban too): a
        # stored preferred host follows the VM to its new node, else the temporary preference goes
        if settings.preferred_host:
            image = naming.system_image(vm)
            services.rbd.metadata_set_many(image, {"_preferred_host": node})
            _restore_preference(services, vm, settings.with_changes(preferred_host=node))
            ctx.log(f"the preferred host of {vm} is now {node}")
        else:
            services.pacemaker.clear_move(vm)
        ctx.data["_summary"] = f"{vm} moved from {state.node} to {node}" + (" (live)" if live else "")

    return Task(
        "move",
        vm,
        {"node": node, "live": live},
        [
            Step(f"move {vm} to {node} and wait for it", move, unmove, weight=3),
            Step(f"keep or remove the preference cli-prefer-{vm}", clear, None, weight=0.2),
        ],
        description=f"{'live-migrate' if live else 'move'} {vm} to {node}",
    )


def _restore_preference(services: Services, vm: str, settings: VmSettings) -> None:
    if settings.preferred_host:
        fragment = etree.Element("configuration")
        etree.SubElement(fragment, "constraints").append(build_prefer_location(vm, settings.preferred_host))
        services.pacemaker.modify_configuration(etree.tostring(fragment, encoding="unicode"))


def _placement(services: Services) -> dict[str, str | None]:
    state = services.state()
    return {vm.name: vm.node for vm in state.vms if vm.enabled}


def plan_node_standby(services: Services, node: str, standby: bool, *, wait: float = 600) -> Task:
    mon = services.crm_mon()
    validate.node_name(node, [n.name for n in mon.nodes], field="node")
    current = mon.node(node)
    assert current is not None
    if standby and current.status.value == "standby":
        raise ConflictError(f"node {node} is already in standby", reason="already_standby")
    if not standby and current.status.value == "online":
        raise ConflictError(f"node {node} is already online", reason="already_online")
    before = _placement(services)

    def run(ctx: StepContext) -> None:
        services.pacemaker.set_standby(node, standby)
        deadline = time.monotonic() + wait
        services.pacemaker.wait_idle(min(wait, 300))
        while standby and any(where == node for where in _placement(services).values()):
            if time.monotonic() > deadline:
                raise VmConsoleError(f"VMs still run on {node} after {wait:.0f} s")
            ctx.check_cancel()
            time.sleep(0.5)
        after = _placement(services)
        moves = {vm: (before.get(vm), after.get(vm)) for vm in after if before.get(vm) != after.get(vm)}
        ctx.data["moves"] = {vm: {"from": a, "to": b} for vm, (a, b) in moves.items()}
        report = ", ".join(f"{vm}: {a or '-'} -> {b or 'stopped'}" for vm, (a, b) in sorted(moves.items()))
        ctx.data["_summary"] = f"node {node} {'in standby' if standby else 'online'}" + (
            f"; {report}" if report else "; no VM moved"
        )

    def undo(ctx: StepContext) -> None:
        services.pacemaker.set_standby(node, not standby)
        services.pacemaker.wait_idle(min(wait, 300))  # the VMs settle back where they were

    verb = "standby" if standby else "online"
    return Task(
        f"node-{verb}",
        None,
        {"node": node},
        [Step(f"put {node} {verb} and wait", run, undo)],
        locks=[],
        description=f"node {node} {verb}",
    )
