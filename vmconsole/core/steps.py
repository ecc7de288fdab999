"""The step builders that several operations share: enable a VM (its primitive and constraints in one
CIB transaction), disable it (stop, wait for its disks, delete the primitive, put it back on undo),
and swap a fully built replacement in place of a VM.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.tasks import Step, StepContext
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import ConflictError, NotFoundError
from vmconsole.domain.model import VmStatus
from vmconsole.domain.primitive_builder import ColocationSpec, PrimitiveSpec, build_enable_fragment
from vmconsole.domain.settings import VmSettings
from vmconsole.domain.units import duration_seconds

START_WAIT = 150.0  # the primitive's start op timeout (120 s) plus the scheduler's own delays
SETTLE_MARGIN = 30.0


def require_vm(services: Services, vm: str) -> None:
    validate.vm_name(vm)
    if not services.vm_exists(vm):
        raise NotFoundError(f"no VM named {vm!r}", field="name")


def primitive_spec(
    services: Services, vm: str, settings: VmSettings, *, start: bool, remote_nodes: Sequence[str]
) -> PrimitiveSpec:
    """The primitive vm_manager's ``enable_vm`` would build from these settings."""
    return PrimitiveSpec(
        name=vm,
        xml_dir=services.config.pacemaker.xml_dir,
        stop_timeout=settings.stop_timeout or "30",
        migrate_to_timeout=settings.migrate_to_timeout or "120",
        migration_downtime=settings.migration_downtime or "0",
        migration_user=settings.migration_user or "root",
        live_migration=settings.live_migration,
        priority=settings.priority or "0",
        target_role="Started" if start else "Stopped",
        params=dict(settings.pacemaker_params),
        meta=dict(settings.pacemaker_meta),
        utilization=dict(settings.pacemaker_utilization),
        remote_node=settings.remote_node,
        remote_addr=settings.remote_node_address if settings.remote_node else None,
        remote_port=settings.remote_node_port if settings.remote_node else None,
        remote_connect_timeout=settings.remote_node_timeout if settings.remote_node else None,
        pinned_host=settings.pinned_host,
        preferred_host=settings.preferred_host,
        banned_hosts=tuple(n for n in remote_nodes if n != settings.remote_node),
        colocations=tuple(ColocationSpec(c.resources, c.strong) for c in settings.colocations),
    )


def remote_nodes(services: Services) -> list[str]:
    return list(services.crm_mon().remote_nodes)


def ungroup(services: Services, group: str, images: Sequence[str]) -> None:
    """Take images out of a group (tolerating those that are not in it, or a missing group)."""
    try:
        members = set(services.rbd.group_images(group))
    except NotFoundError:
        return
    for image in images:
        if image in members:
            services.rbd.group_remove_image(group, image)


def enable_steps(services: Services, vm: str, *, start: bool) -> list[Step]:
    """Steps that add the primitive and its constraints in one CIB transaction, then wait."""

    def apply(ctx: StepContext) -> None:
        metadata = services.rbd.metadata(naming.system_image(vm))
        settings = VmSettings.from_metadata(metadata)
        if settings.colocations:
            known = services.pacemaker.resource_ids()
            kept = tuple(c for c in settings.colocations if all(r in known for r in c.resources))
            for dropped in set(settings.colocations) - set(kept):
                ctx.log(f"colocation with {', '.join(dropped.resources)} not applied: no such resource now")
            settings = settings.with_changes(colocations=kept)
        spec = primitive_spec(services, vm, settings, start=start, remote_nodes=remote_nodes(services))
        if vm in services.primitives():
            raise ConflictError(f"{vm} is already enabled (it has a Pacemaker primitive)")
        services.pacemaker.modify(build_enable_fragment(spec))
        ctx.data["enabled"] = True
        for line in settings.crm_config_cmd:
            services.pacemaker.crm_configure(line)
        ctx.log(f"primitive {vm} (ocf:seapath:VirtualDomain) added, target-role {spec.target_role}")

    def unapply(ctx: StepContext) -> None:
        if vm in services.primitives():
            stop_and_delete(services, vm, ctx)

    def wait_started(ctx: StepContext) -> None:
        services.wait_status(vm, {VmStatus.STARTED}, START_WAIT, tick=ctx.check_cancel)
        ctx.log(f"{vm} is Started")

    steps = [Step("add the Pacemaker primitive", apply, unapply)]
    if start:
        steps.append(Step(f"start {vm} and wait for it", wait_started, None, weight=2))
    return steps


def stop_timeout(services: Services, vm: str) -> float:
    primitive = services.primitives().get(vm)
    op = primitive.operation("stop") if primitive else None
    return duration_seconds(op.timeout if op else None, 30.0) + SETTLE_MARGIN


def stop_and_delete(services: Services, vm: str, ctx: StepContext | None) -> None:
    """Stop the VM through Pacemaker, wait until its disks are released, then delete the primitive."""
    tick = ctx.check_cancel if ctx else None
    status, _ = services.vm_status(vm)
    if status is VmStatus.FAILED:
        services.pacemaker.cleanup(vm)  # this VM only (vm_manager cleaned up every resource)
    services.pacemaker.set_target_role(vm, "Stopped")
    services.wait_status(vm, {VmStatus.STOPPED}, stop_timeout(services, vm), fail_on=set(), tick=tick)
    services.wait_disks_released(vm, 30.0, tick=tick)
    services.pacemaker.delete_vm(vm)


def disable_step(services: Services, vm: str) -> Step:
    def run(ctx: StepContext) -> None:
        if vm not in services.primitives():
            ctx.log(f"{vm} has no Pacemaker primitive")
            return
        status, _ = services.vm_status(vm)
        ctx.data["disabled_saved"] = services.pacemaker.vm_fragment(vm)
        ctx.data["disabled_was_running"] = status in (VmStatus.STARTED, VmStatus.STARTING)
        ctx.save()
        stop_and_delete(services, vm, ctx)
        ctx.log(f"{vm} stopped and its primitive removed")

    def undo(ctx: StepContext) -> None:
        saved = ctx.data.get("disabled_saved")
        if saved and vm not in services.primitives():
            services.pacemaker.modify_configuration(saved)
            if ctx.data.get("disabled_was_running"):
                services.pacemaker.set_target_role(vm, "Started")

    return Step(f"stop {vm} and remove its Pacemaker primitive", run, undo, weight=2)


def rename_vm(services: Services, source: str, target: str) -> None:
    """Rename a VM's group and images (system_<source> -> system_<target>, data disks alike)."""
    for image in services.rbd.group_images(source):
        if image == naming.system_image(source):
            services.rbd.rename_image(image, naming.system_image(target))
        else:
            index = naming.data_index(source, image)
            if index is not None:
                services.rbd.rename_image(image, naming.data_image(target, index))
    services.rbd.rename_group(source, target)


def undo_swap(services: Services, vm: str, data: dict[str, Any]) -> None:
    if data.get("swap_new_in"):
        rename_vm(services, vm, data["swap_work"])
        data["swap_new_in"] = False
    if data.get("swap_old_moved"):
        rename_vm(services, data["swap_old"], vm)
        data["swap_old_moved"] = False


def swap_steps(services: Services, vm: str, work: str, data_count: int) -> list[Step]:
    """Replace VM ``vm`` by the fully built ``work``: disable the old one, rename it aside, rename
    the new one in, then delete the old one. Until the last step, undo puts everything back."""
    old = f"vmconsoleold{uuidlib.uuid4().hex[:8]}"

    def swap(ctx: StepContext) -> None:
        ctx.data["swap_old"] = old
        ctx.data["swap_work"] = work
        ctx.save()
        rename_vm(services, vm, old)
        ctx.data["swap_old_moved"] = True
        ctx.save()
        rename_vm(services, work, vm)
        ctx.data["swap_new_in"] = True
        ctx.save()

    def unswap(ctx: StepContext) -> None:
        undo_swap(services, vm, ctx.data)

    def delete_old(ctx: StepContext) -> None:
        images = services.rbd.group_images(old)
        for image in images:
            services.rbd.group_remove_image(old, image)
            services.rbd.remove_image(image)
        services.rbd.remove_group(old)

    steps = []
    steps.append(
        disable_step(services, vm)
        if vm in services.primitives()
        else Step(f"check {vm} is not running", lambda ctx: None)
    )
    steps.append(Step(f"swap the new {vm} in place of the old one", swap, unswap, weight=0.3))
    steps.append(Step("delete the old VM's disks", delete_old, None, weight=0.5))
    return steps
