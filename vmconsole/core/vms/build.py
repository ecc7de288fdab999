"""What create, clone and import share to build a VM: its RBD group, its configuration, the checks
repeated under the lock, and what the operator reads when the built VM is kept after a failure.

Names are recorded as they come into being (``StepContext.made``); an undo removes recorded names
only. The names a build is about to make are recorded as intents too, after the plan checked them
free under the lock, so that ``recover`` can remove what a killed process made between the create
and its record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.steps import refuse_existing_group, refuse_existing_images, refuse_primitive, ungroup
from vmconsole.core.tasks import Step, StepContext
from vmconsole.domain import naming
from vmconsole.domain.errors import NotFoundError, VmConsoleError

# data keys of what a build made (read by recovery too)
GROUPS_MADE = "groups_made"
IMAGES_MADE = "created_images"
IMAGES_INTENDED = "intended_images"
GROUPED = "grouped_images"
NAMES_CHECKED = "names_checked_free"


def work_images(work: str, data_count: int) -> list[str]:
    return [naming.system_image(work)] + [naming.data_image(work, i) for i in range(data_count)]


def names_free_check(
    services: Services, data: dict[str, Any], work: str, images: Sequence[str], *, vm: str, replacing: bool
) -> Callable[[], None]:
    """The check a build repeats under its lock: the group, images and primitive it will make are
    still free (another host, vm_manager or an orphan image may have taken a name since the plan)."""

    def check() -> None:
        refuse_existing_group(services, work)
        refuse_existing_images(services, images)
        if not replacing:
            refuse_existing_group(services, vm)
            refuse_primitive(services, vm)
        data[NAMES_CHECKED] = True

    return check


def group_step(services: Services, work: str) -> Step:
    def create(ctx: StepContext) -> None:
        ctx.data["group_created"] = work  # the intent: recover removes it only once checked free and empty
        ctx.save()
        services.rbd.create_group(work)
        ctx.made(GROUPS_MADE, work)
        if not naming.is_temporary(work):
            forget_removed_vm(services, ctx, work)

    def remove(ctx: StepContext) -> None:
        if work not in ctx.data.get(GROUPS_MADE, []):
            return
        made = set(ctx.data.get(IMAGES_MADE, []))
        with contextlib.suppress(NotFoundError):
            for image in services.rbd.group_images(work):
                if image in made:
                    services.rbd.group_remove_image(work, image)
            services.rbd.remove_group(work)

    return Step(f"create RBD group {work}", create, remove, weight=0.2)


def forget_removed_vm(services: Services, ctx: StepContext, vm: str) -> None:
    """vmconsole's records of an earlier VM of this name (removed by another tool, which does not know
    them): snapshot records and a retention policy would otherwise describe the new VM's snapshots."""
    records = naming.snapshot_records_object(vm)
    stale = sorted(services.rbd.omap_get(records))
    if stale:
        services.rbd.omap_remove(records, stale)
    policy = services.rbd.omap_get(naming.POLICY_OBJECT, prefix=vm)
    if vm in policy:
        services.rbd.omap_remove(naming.POLICY_OBJECT, [vm])
    if stale or vm in policy:
        ctx.log(f"records of an earlier VM named {vm} (removed by another tool) forgotten")


def record_image_intent(ctx: StepContext, image: str) -> None:
    ctx.data.setdefault(IMAGES_INTENDED, []).append(image)
    ctx.save()


def remove_made_image(services: Services, ctx: StepContext, image: str) -> None:
    """Remove an image only when this task recorded that it made it."""
    if image in ctx.data.get(IMAGES_MADE, []):
        with contextlib.suppress(NotFoundError):
            services.rbd.remove_image(image)


def configure_step(services: Services, work: str, images: Sequence[str], metadata: dict[str, str]) -> Step:
    def configure(ctx: StepContext) -> None:
        for image in images:
            services.rbd.group_add(work, image)
            ctx.made(GROUPED, image)
        services.rbd.metadata_set_many(images[0], metadata)

    def unconfigure(ctx: StepContext) -> None:
        ungroup(services, work, [i for i in images if i in ctx.data.get(GROUPED, [])])

    return Step("write the VM's configuration (image metadata)", configure, unconfigure, weight=0.2)


def kept_after_failure(vm: str, operation: str) -> Callable[[dict[str, Any]], str]:
    """What the operator reads when the VM was built but a later step failed: it is kept, as it is."""

    def describe(data: dict[str, Any]) -> str:
        if data.get("enabled"):
            state = "enabled and left stopped"
            retry = f"fix the cause, then `vmconsole vm cleanup {vm}` and `vmconsole vm start {vm}`"
        else:
            state = "not enabled"
            retry = f"`vmconsole vm enable {vm}` when the cause is fixed"
        return (
            f"the {operation} built {vm} and kept it ({state}): {retry}; "
            f"`vmconsole vm diagnose {vm}` shows why, `vmconsole vm remove {vm}` removes it"
        )

    return describe


def swallow(action: Callable[[], object]) -> None:
    """Run a clean-up whose failure must not hide the error being reported."""
    with contextlib.suppress(VmConsoleError):
        action()
