"""Clone a VM: a deep copy of its disks, or copy-on-write (linked) clones from a protected snapshot;
and flatten a linked clone.
"""

from __future__ import annotations

import contextlib
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from vmconsole.core.services import Services
from vmconsole.core.steps import enable_steps, require_vm, swap_steps, ungroup
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.core.vms.create import build_final_xml
from vmconsole.core.vms.options import VmOptions, check_metadata, check_options
from vmconsole.domain import domain_xml, naming, validate
from vmconsole.domain.errors import (
    BackendError,
    ConflictError,
    NotFoundError,
    OperationFailed,
    ValidationError,
    VmConsoleError,
)
from vmconsole.domain.settings import VmSettings, user_metadata


@dataclass(frozen=True)
class CloneSpec:
    source: str
    name: str
    xml: str | None = None  # replaces the source's _base_xml
    linked: bool = False  # copy-on-write from a snapshot instead of a deep copy
    snapshot: str | None = None  # for linked clones: the snapshot to clone from (default: a new one)
    force: bool = False
    clear_constraint: bool = False
    clear_pacemaker_meta: bool = False
    clear_pacemaker_params: bool = False
    clear_pacemaker_utilization: bool = False
    options: VmOptions = field(default_factory=VmOptions)


def plan_clone(services: Services, spec: CloneSpec) -> Task:
    src = validate.vm_name(spec.source, field="source")
    dst = validate.vm_name(spec.name, field="name")
    if src == dst:
        raise ValidationError("the clone needs a name different from its source", field="name")
    if not services.vm_exists(src):
        raise NotFoundError(f"no VM named {src!r}", field="source")
    exists = services.vm_exists(dst)
    if exists and not spec.force:
        raise ConflictError(f"a VM named {dst!r} already exists", field="name", hint="use --force to replace it")
    source_meta = services.rbd.metadata(naming.system_image(src))
    base_settings = VmSettings.from_metadata(source_meta)
    base_xml_text = spec.xml if spec.xml is not None else source_meta.get("_base_xml")
    if not base_xml_text:
        raise ValidationError(f"{src} has no _base_xml metadata to build the clone from; give --xml", field="xml")
    base = domain_xml.check_base_xml(base_xml_text)
    base_xml = domain_xml.strip_uuid(etree.tostring(base, encoding="unicode"))
    changes: dict[str, Any] = {
        "remote_node": None,
        "remote_node_address": None,
        "remote_node_port": None,
        "remote_node_timeout": None,
        "crm_config_cmd": (),
        "colocations": (),
    }
    if spec.clear_constraint:
        changes.update(pinned_host=None, preferred_host=None)
    for flag, name in (
        (spec.clear_pacemaker_meta, "pacemaker_meta"),
        (spec.clear_pacemaker_params, "pacemaker_params"),
        (spec.clear_pacemaker_utilization, "pacemaker_utilization"),
    ):
        if flag:
            changes[name] = {}
    merged_options = spec.options
    settings = check_options(services, merged_options, base_settings.with_changes(**changes), services.node_names())
    for name in ("pacemaker_meta", "pacemaker_params", "pacemaker_utilization"):
        # vm_manager merges new key/values into the inherited ones (never removes)
        new = getattr(merged_options, name)
        if new is not None and not getattr(spec, f"clear_{name}"):
            settings = settings.with_changes(**{name: {**getattr(base_settings, name), **getattr(settings, name)}})
    user_meta = user_metadata(source_meta)
    user_meta.update(check_metadata(merged_options.metadata))
    source_images = [i for i in sorted(services.rbd.group_images(src), key=lambda i: naming.disk_order(src, i))]
    data_count = sum(1 for i in source_images if naming.data_index(src, i) is not None)
    new_uuid = domain_xml.new_uuid()
    final_xml = build_final_xml(services, dst, base_xml, new_uuid, data_count, settings.disk_bus or "virtio")
    work = f"vmconsolenew{uuidlib.uuid4().hex[:8]}" if exists else dst

    pairs = []
    for image in source_images:
        if image == naming.system_image(src):
            pairs.append((image, naming.system_image(work)))
        else:
            index = naming.data_index(src, image)
            if index is not None:
                pairs.append((image, naming.data_image(work, index)))
    sizes = {image: services.rbd.image_size(image) for image, _ in pairs}
    total = sum(sizes.values()) or 1
    metadata = {"vm_name": dst, "xml": final_xml, "_base_xml": base_xml, **settings.to_metadata(), **user_meta}
    stale = [k for k in source_meta if k.startswith("_") and k not in metadata and k != "_base_xml"]

    def create_group(ctx: StepContext) -> None:
        ctx.data["group_created"] = work
        ctx.save()
        services.rbd.create_group(work)

    def remove_group(ctx: StepContext) -> None:
        try:
            for image in services.rbd.group_images(work):
                services.rbd.group_remove_image(work, image)
            services.rbd.remove_group(work)
        except NotFoundError:
            pass

    steps = [Step(f"create RBD group {work}", create_group, remove_group, weight=0.2)]
    if spec.linked:
        steps += _linked_clone_steps(services, src, pairs, spec.snapshot)
    else:
        steps.append(_wait_snaptrim_step(services))
        for source_image, target in pairs:
            steps.append(
                _copy_step(services, source_image, target, sizes[source_image], weight=4 * sizes[source_image] / total)
            )

    def configure(ctx: StepContext) -> None:
        for _, target in pairs:
            services.rbd.group_add(work, target)
        system = naming.system_image(work)
        services.rbd.metadata_remove(system, stale)
        services.rbd.metadata_set_many(system, metadata)

    def unconfigure(ctx: StepContext) -> None:
        ungroup(services, work, [target for _, target in pairs])

    steps.append(Step("write the clone's configuration", configure, unconfigure, weight=0.2))
    if exists:
        steps += swap_steps(services, dst, work, data_count)
    if merged_options.enable:
        steps += enable_steps(services, dst, start=merged_options.start)
    args = {"source": src, "name": dst, "linked": spec.linked, "force": spec.force}
    return Task(
        "clone",
        dst,
        args,
        steps,
        locks=[src, dst],
        description=f"{'linked ' if spec.linked else ''}clone {src} to {dst}",
    )


def _wait_snaptrim_step(services: Services) -> Step:
    """librbd 16.2's deep_copy can copy zeros while a removed snapshot still waits to be trimmed
    (an object's clone named after the removed snapshot): wait for the OSDs to trim first."""

    def run(ctx: StepContext) -> None:

        deadline = time.monotonic() + 300
        while services.rbd.snaptrim_pending():
            if time.monotonic() > deadline:
                raise OperationFailed(
                    "Ceph is still trimming removed snapshots after 300 s; a copy now could be wrong",
                    hint="retry when `ceph osd dump` shows no removed_snaps_queue",
                )
            ctx.check_cancel()
            time.sleep(0.5)

    return Step("wait for Ceph to finish trimming removed snapshots", run, None, weight=0.1)


def _copy_step(services: Services, source: str, target: str, size: int, weight: float) -> Step:
    def run(ctx: StepContext) -> None:
        ctx.data.setdefault("copied_images", []).append(target)
        ctx.save()
        if not services.rbd.deep_copy(source, target, size, ctx.progress, ctx.cancel.is_set):
            ctx.check_cancel()

    def undo(ctx: StepContext) -> None:
        with contextlib.suppress(NotFoundError):
            services.rbd.remove_image(target)

    return Step(f"copy {source} to {target}", run, undo, weight=weight)


def _linked_clone_steps(services: Services, src: str, pairs: list[tuple[str, str]], snapshot: str | None) -> list[Step]:
    """Copy-on-write clones of each source disk from one protected per-image snapshot."""
    snap = validate.snapshot_name(snapshot) if snapshot else f"vmconsole-base-{uuidlib.uuid4().hex[:8]}"

    def make_base(ctx: StepContext) -> None:
        ctx.data["base_snapshot"] = snap
        ctx.data["base_created"] = []
        for source_image, _ in pairs:
            infos = services.rbd.image_info(source_image)
            names = {s.name: s for s in infos.snapshots if s.namespace == "user"}
            if snap not in names:
                if snapshot:
                    raise NotFoundError(f"snapshot {snap!r} does not exist on {source_image}", field="snapshot")
                services.rbd.image_snap_create(source_image, snap)
                ctx.data["base_created"].append(source_image)
                ctx.save()
            if not (snap in names and names[snap].protected):
                services.rbd.image_snap_protect(source_image, snap, True)

    def drop_base(ctx: StepContext) -> None:
        for source_image in ctx.data.get("base_created", []):
            with contextlib.suppress(VmConsoleError):
                services.rbd.image_snap_remove(source_image, snap)

    def clone(ctx: StepContext) -> None:
        for source_image, target in pairs:
            services.rbd.clone(source_image, snap, target)
            ctx.data.setdefault("cloned", []).append(target)
            ctx.save()

    def unclone(ctx: StepContext) -> None:
        for target in reversed(ctx.data.get("cloned", [])):
            with contextlib.suppress(NotFoundError):
                services.rbd.remove_image(target)

    return [
        Step(f"protect the base snapshot {snap} of {src}", make_base, drop_base, weight=0.3),
        Step("create the copy-on-write clones", clone, unclone, weight=0.5),
    ]


def plan_flatten(services: Services, vm: str) -> Task:
    require_vm(services, vm)
    images = sorted(services.rbd.group_images(vm), key=lambda i: naming.disk_order(vm, i))

    def run(ctx: StepContext) -> None:
        for index, image in enumerate(images):

            def report(done: int, total: int, index: int = index) -> None:
                ctx.progress(index * 1000 + (1000 * done // max(total, 1)), len(images) * 1000, unit="items")

            try:
                services.rbd.flatten(image, report)
            except BackendError as exc:
                if "not cloned" in str(exc).lower() or "invalid argument" in str(exc).lower():
                    continue
                raise

    return Task("flatten", vm, {}, [Step(f"flatten the disks of {vm}", run)], description=f"flatten {vm}")
