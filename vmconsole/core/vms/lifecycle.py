"""A VM's life in the cluster: enable, disable, start, stop, cleanup, remove, and its console."""

from __future__ import annotations

import contextlib
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.steps import (
    START_WAIT,
    disable_step,
    enable_steps,
    refuse_linked_clones,
    require_vm,
    stop_timeout,
    vm_images,
)
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.domain import naming
from vmconsole.domain.errors import ConflictError, NotFoundError, VmConsoleError
from vmconsole.domain.model import VmStatus
from vmconsole.domain.settings import VmSettings


def plan_enable(services: Services, vm: str, *, start: bool = True) -> Task:
    require_vm(services, vm)
    if vm in services.primitives():
        raise ConflictError(
            f"{vm} is already enabled", hint=f"`vmconsole vm start {vm}` to start it", reason="already_enabled"
        )
    VmSettings.from_metadata(services.rbd.metadata(naming.system_image(vm)))  # readable settings or error
    return Task(
        "enable",
        vm,
        {"start": start},
        enable_steps(services, vm, start=start),
        description=f"enable {vm}" + ("" if start else " (not started)"),
    )


def plan_disable(services: Services, vm: str) -> Task:
    require_vm(services, vm)
    if vm not in services.primitives():
        raise ConflictError(f"{vm} is already disabled (it has no Pacemaker primitive)", reason="already_disabled")
    return Task("disable", vm, {}, [disable_step(services, vm)], description=f"disable {vm}")


def plan_start(services: Services, vm: str) -> Task:
    require_vm(services, vm)
    if vm not in services.primitives():
        raise ConflictError(f"{vm} is disabled", hint=f"`vmconsole vm enable {vm}` adds it to the cluster")
    status, node = services.vm_status(vm)
    if status is VmStatus.FAILED:
        raise ConflictError(f"{vm} is Failed", hint=f"`vmconsole vm cleanup {vm}` clears the failure first")
    if status is VmStatus.STARTED:
        raise ConflictError(f"{vm} is already Started on {node}: nothing to do", reason="already_started")

    def run(ctx: StepContext) -> None:
        ctx.data["previous_role"] = "Stopped"
        services.pacemaker.set_target_role(vm, "Started")
        _, node = services.wait_status(vm, {VmStatus.STARTED}, START_WAIT, tick=ctx.check_cancel)
        ctx.data["_summary"] = f"{vm} Started on {node}"

    def undo(ctx: StepContext) -> None:
        services.pacemaker.set_target_role(vm, "Stopped")

    return Task("start", vm, {}, [Step(f"start {vm}", run, undo)], description=f"start {vm}")


def plan_stop(services: Services, vm: str, *, force: bool = False) -> Task:
    require_vm(services, vm)
    if vm not in services.primitives():
        raise ConflictError(f"{vm} is disabled: it is not running under the cluster")
    status, _node = services.vm_status(vm)
    if status is VmStatus.STOPPED and not force:
        raise ConflictError(f"{vm} is already Stopped: nothing to do", reason="already_stopped")

    def run(ctx: StepContext) -> None:
        services.pacemaker.set_target_role(vm, "Stopped")
        try:
            services.wait_status(
                vm, {VmStatus.STOPPED}, stop_timeout(services, vm), fail_on=set(), tick=ctx.check_cancel
            )
        except VmConsoleError:
            if not force:
                raise
            ctx.log("normal stop did not finish: forcing")
            services.pacemaker.force_stop(vm)
            services.pacemaker.cleanup(vm)
            services.wait_status(vm, {VmStatus.STOPPED}, 60, fail_on=set(), tick=ctx.check_cancel)
        ctx.data["_summary"] = f"{vm} Stopped"

    def undo(ctx: StepContext) -> None:
        services.pacemaker.set_target_role(vm, "Started")

    return Task("stop", vm, {"force": force}, [Step(f"stop {vm}", run, undo)], description=f"stop {vm}")


def plan_cleanup(services: Services, vm: str) -> Task:
    require_vm(services, vm)
    if vm not in services.primitives():
        raise ConflictError(f"{vm} is disabled: there is no Pacemaker failure to clean up")

    def run(ctx: StepContext) -> None:
        services.pacemaker.cleanup(vm)
        ctx.data["_summary"] = f"failures of {vm} cleared; Pacemaker re-probes it"

    return Task("cleanup", vm, {}, [Step(f"clear the failures of {vm}", run)], description=f"cleanup {vm}")


def _remove_disks_steps(services: Services, group: str, images: list[str]) -> list[Step]:
    def check(ctx: StepContext) -> None:
        # everything is checked before anything is destroyed: clones made since the plan, and any
        # client (a QEMU the cluster does not know, a mapping) still using a disk
        current = vm_images(services, group)
        refuse_linked_clones(services, current, f"removing {group} would delete their base")
        users = services.disk_users(current)
        if users:
            held = "; ".join(f"{image} by {', '.join(clients)}" for image, clients in sorted(users.items()))
            raise ConflictError(
                f"{group}'s disks are in use: {held}", hint="stop what uses them (a QEMU outside the cluster?) first"
            )

    def run(ctx: StepContext) -> None:
        current = vm_images(services, group)
        # group snapshots first: an image leaving the group keeps its .group.* snapshots otherwise
        if services.rbd.group_exists(group):
            for snapshot in services.rbd.group_snapshots(group):
                services.rbd.group_snap_remove(group, snapshot)
        for index, image in enumerate(current):
            ctx.progress(index, len(current), image, unit="items")
            if services.rbd.group_exists(group) and image in services.rbd.group_images(group):
                services.rbd.group_remove_image(group, image)
            with contextlib.suppress(NotFoundError):
                services.rbd.remove_image(image)
        if services.rbd.group_exists(group):
            services.rbd.remove_group(group)
        # vmconsole's own records of the VM go with it: a new VM of the same name starts clean
        services.rbd.remove_object(naming.snapshot_records_object(group))
        services.rbd.omap_remove(naming.POLICY_OBJECT, [group])

    return [
        Step(f"check that nothing else uses the disks of {group}", check, None, weight=0.1),
        Step(f"delete the disks and group of {group}", run, None, weight=2, point_of_no_return=True),
    ]


def plan_remove(services: Services, vm: str) -> Task:
    require_vm(services, vm)
    images = vm_images(services, vm)
    refuse_linked_clones(services, images, f"removing {vm} would delete their base")
    steps = []
    if vm in services.primitives():
        steps.append(disable_step(services, vm))
    steps += _remove_disks_steps(services, vm, images)

    def precheck() -> None:
        require_vm(services, vm)
        refuse_linked_clones(services, vm_images(services, vm), f"removing {vm} would delete their base")

    def kept(data: dict[str, Any]) -> str:
        return (
            f"{vm} is disabled and may be partly deleted; finish with `vmconsole vm remove {vm}` once the cause is"
            " fixed"
        )

    return Task(
        "remove",
        vm,
        {"images": images},
        steps,
        description=f"remove {vm} and its disks",
        precheck=precheck,
        kept=kept,
    )


def console_argv(services: Services, vm: str) -> list[str]:
    """The argv that opens the VM's serial console on whichever node runs it."""
    state = services.vm(vm)
    if state.status is not VmStatus.STARTED or not state.node:
        raise ConflictError(f"{vm} is {state.status.value}: it has no console now")
    return ["virsh", "-c", services.node_libvirt_uri(state.node, interactive=True), "console", vm]
