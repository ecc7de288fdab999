"""Clone a VM: a deep copy of its disks, or copy-on-write (linked) clones from a protected snapshot;
and flatten a linked clone.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from vmconsole.core.services import Services
from vmconsole.core.snapshots.instant import take_at_one_instant
from vmconsole.core.steps import (
    enable_steps,
    refuse_existing_images,
    refuse_linked_clones,
    refuse_primitive,
    require_vm,
    swap_steps,
    ungroup,
    vm_images,
)
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.core.vms.build import (
    GROUPED,
    IMAGES_MADE,
    NAMES_CHECKED,
    group_step,
    kept_after_failure,
    names_free_check,
    record_image_intent,
    work_images,
)
from vmconsole.core.vms.create import build_final_xml, check_with_libvirt
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
    src = validate.existing_vm_name(spec.source, field="source")
    dst = validate.vm_name(spec.name, field="name")
    if src == dst:
        raise ValidationError("the clone needs a name different from its source", field="name")
    if not services.vm_exists(src):
        raise NotFoundError(f"no VM named {src!r}", field="source")
    exists = services.vm_exists(dst)
    if exists and not spec.force:
        raise ConflictError(
            f"a VM named {dst!r} already exists",
            field="name",
            hint="use --force to replace it",
            reason="already_exists",
        )
    source_meta = services.rbd.metadata(naming.system_image(src))
    base_settings = VmSettings.from_metadata(source_meta)
    base_xml_text = spec.xml if spec.xml is not None else source_meta.get("_base_xml")
    if not base_xml_text:
        raise ValidationError(f"{src} has no _base_xml metadata to build the clone from; give --xml", field="xml")
    base = domain_xml.check_base_xml(base_xml_text)
    base_xml = domain_xml.strip_uuid(etree.tostring(base, encoding="unicode"))
    # a clone inherits what vm_manager's clone inherits (its extra crm lines, its pacemaker-remote
    # node, unknown `_` keys); vmconsole's own colocations name the source VM, so they stay behind
    changes: dict[str, Any] = {"colocations": ()}
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
    if exists:
        refuse_linked_clones(services, vm_images(services, dst), "replacing the VM would delete their base")
    else:
        refuse_existing_images(services, work_images(dst, data_count))
        refuse_primitive(services, dst)
    new_uuid = domain_xml.new_uuid()
    final_xml = build_final_xml(
        services, dst, base_xml, new_uuid, data_count, settings.disk_bus or "virtio", renamed_from=(src,)
    )
    work = naming.temporary_vm("new") if exists else dst

    pairs = []
    for image in source_images:
        if image == naming.system_image(src):
            pairs.append((image, naming.system_image(work)))
        else:
            index = naming.data_index(src, image)
            if index is not None:
                pairs.append((image, naming.data_image(work, index)))
    sizes = {image: services.rbd.image_size(image) for image, _ in pairs}
    inherited = {
        k: v
        for k, v in source_meta.items()
        if k.startswith("_")
        and k not in base_settings.managed_keys()
        and not k.startswith("_vmconsole")
        and k != "_base_xml"
    }
    metadata = {
        "vm_name": dst,
        "xml": final_xml,
        "_base_xml": base_xml,
        **inherited,
        **settings.to_metadata(),
        **user_meta,
    }
    inheritance: list[str] = []
    if settings.remote_node:
        inheritance.append(
            f"the clone inherits {src}'s pacemaker-remote node {settings.remote_node!r}: two enabled VMs cannot"
            f" carry one remote node (`vmconsole remote remove {dst}` or `remote add` with a new name)"
        )
    if settings.crm_config_cmd:
        inheritance.append(
            f"the clone inherits {src}'s extra crm lines, replayed when it is enabled: "
            + "; ".join(settings.crm_config_cmd)
        )
    stale = [k for k in source_meta if k.startswith("_") and k not in metadata and k != "_base_xml"]
    targets = [target for _, target in pairs]
    task_data: dict[str, Any] = {}
    names_free = names_free_check(services, task_data, work, targets, vm=dst, replacing=exists)

    def precheck() -> None:
        names_free()
        if not services.vm_exists(src):
            raise NotFoundError(f"{src} disappeared since the plan", field="source")
        if exists:
            refuse_linked_clones(services, vm_images(services, dst), "replacing the VM would delete their base")
        check_with_libvirt(services, final_xml)

    steps = [group_step(services, work)]
    if spec.linked:
        steps += _linked_clone_steps(services, src, pairs, spec.snapshot)
    else:
        steps.append(_wait_snaptrim_step(services))
        steps.append(_instant_step(services, src, [image for image, _ in pairs]))
        steps.append(_copy_step(services, pairs, sizes))
        steps.append(_drop_instant_step(services, [image for image, _ in pairs], targets))

    def configure(ctx: StepContext) -> None:
        for target in targets:
            services.rbd.group_add(work, target)
            ctx.made(GROUPED, target)
        system = naming.system_image(work)
        services.rbd.metadata_remove(system, stale)
        services.rbd.metadata_set_many(system, metadata)

    def unconfigure(ctx: StepContext) -> None:
        ungroup(services, work, [t for t in targets if t in ctx.data.get(GROUPED, [])])

    steps.append(Step("write the clone's configuration", configure, unconfigure, weight=0.2))
    if exists:
        steps += swap_steps(services, dst, work)
    if merged_options.enable:
        steps += enable_steps(
            services, dst, start=merged_options.start, stop_if_start_fails=True, point_of_no_return=not exists
        )
    args = {"source": src, "name": dst, "linked": spec.linked, "force": spec.force}
    return Task(
        "clone",
        dst,
        args,
        steps,
        locks=[src, dst],
        description=f"{'linked ' if spec.linked else ''}clone {src} to {dst}",
        data=task_data,
        precheck=precheck,
        warnings=(*inheritance, *domain_xml.host_reaching(final_xml)),
        kept=kept_after_failure(dst, "clone"),
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


CLONE_SNAPSHOTS = "clone_snapshots"  # data key: source images that hold this task's instant snapshot


def _instant_step(services: Services, src: str, images: list[str]) -> Step:
    """The copy is of one instant of the source: a temporary snapshot of every disk, taken at once."""

    def take(ctx: StepContext) -> None:
        snap = f"vmconsole-clone-{ctx.task.task_id}"
        ctx.data["clone_snapshot"] = snap
        how = take_at_one_instant(services, src, images, snap, ctx, lambda image: ctx.made(CLONE_SNAPSHOTS, image))
        ctx.log(f"{src} snapshotted at one instant for the copy ({how})")

    def drop(ctx: StepContext) -> None:
        for image in ctx.data.get(CLONE_SNAPSHOTS, []):
            with contextlib.suppress(NotFoundError):
                services.rbd.image_snap_remove(image, ctx.data["clone_snapshot"])

    return Step(f"snapshot {src} at one instant for the copy", take, drop, weight=0.2)


def _drop_instant_step(services: Services, sources: list[str], targets: list[str]) -> Step:
    """The temporary snapshot goes from the source, and from the copies that carried it over."""

    def drop(ctx: StepContext) -> None:
        snap = ctx.data["clone_snapshot"]

        def drop_one(image: str) -> None:
            if any(s.name == snap for s in services.rbd.image_info(image).snapshots if s.namespace == "user"):
                services.rbd.image_snap_remove(image, snap)

        # all at once: each removal waits for a monitor commit, which the monitor batches (bench/run:
        # deep_clone_vs_rbd_deep_cp); every one is tried, the first failure is raised after
        images = list(dict.fromkeys([*targets, *ctx.data.get(CLONE_SNAPSHOTS, [])]))
        with ThreadPoolExecutor(max_workers=max(1, len(images)), thread_name_prefix="unsnap") as pool:
            futures = [pool.submit(drop_one, image) for image in images]
        for future in futures:
            future.result()
        ctx.data[CLONE_SNAPSHOTS] = []
        ctx.save()

    return Step("remove the temporary snapshot", drop, None, weight=0.1)


def _copy_step(services: Services, pairs: list[tuple[str, str]], sizes: dict[str, int]) -> Step:
    """Every disk copied at once from the instant snapshot: the copies overlap their round trips to the
    OSDs (bench/run: deep_clone_vs_rbd_deep_cp). The first failure stops the others; the undo removes
    every target, whole or partial, that the task named free under its lock."""
    total = sum(sizes.values()) or 1

    def run(ctx: StepContext) -> None:
        snap = ctx.data["clone_snapshot"]
        for _, target in pairs:
            record_image_intent(ctx, target)
            ctx.data.setdefault("copied_images", []).append(target)  # the deep copy creates it: its intent
        ctx.save()
        done = dict.fromkeys(sizes, 0)
        lock = threading.Lock()
        failed = threading.Event()

        def copy(source: str, target: str) -> bool:
            def progress(copied: int, _size: int) -> None:
                with lock:
                    done[source] = copied
                    ctx.progress(sum(done.values()), total)

            try:
                return services.rbd.deep_copy(
                    f"{source}@{snap}", target, sizes[source], progress, lambda: ctx.cancel.is_set() or failed.is_set()
                )
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=len(pairs), thread_name_prefix="copy") as pool:
            futures = [(target, pool.submit(copy, source, target)) for source, target in pairs]
        for target, future in futures:  # recorded here, on the task's thread: the journal is written in order
            if future.exception() is None and future.result():
                ctx.made(IMAGES_MADE, target)
        for _, future in futures:
            error = future.exception()
            if error is not None:
                raise error
        ctx.check_cancel()

    def undo(ctx: StepContext) -> None:
        # a copy cut short leaves a partial image under a name this task checked free under its lock
        for _, target in pairs:
            if target in ctx.data.get(IMAGES_MADE, []) or (
                ctx.data.get(NAMES_CHECKED) and target in ctx.data.get("copied_images", [])
            ):
                with contextlib.suppress(NotFoundError):
                    services.rbd.remove_image(target)

    names = ", ".join(f"{source} to {target}" for source, target in pairs)
    return Step(f"copy {names}", run, undo, weight=4)


def _linked_clone_steps(services: Services, src: str, pairs: list[tuple[str, str]], snapshot: str | None) -> list[Step]:
    """Copy-on-write clones of each source disk from one protected per-image snapshot."""
    snap = validate.snapshot_name(snapshot) if snapshot else f"vmconsole-base-{uuidlib.uuid4().hex[:8]}"

    def make_base(ctx: StepContext) -> None:
        ctx.data["base_snapshot"] = snap
        ctx.data.setdefault("base_created", [])
        ctx.data.setdefault("base_protected", [])
        missing = []
        for source_image, _ in pairs:
            names = {s.name for s in services.rbd.image_info(source_image).snapshots if s.namespace == "user"}
            if snap not in names:
                if snapshot:
                    raise NotFoundError(f"snapshot {snap!r} does not exist on {source_image}", field="snapshot")
                missing.append(source_image)
        if missing:
            how = take_at_one_instant(services, src, missing, snap, ctx, lambda image: ctx.made("base_created", image))
            ctx.log(f"base snapshot {snap} of {src} taken at one instant ({how})")
        for source_image, _ in pairs:
            current = next(
                s for s in services.rbd.image_info(source_image).snapshots if s.namespace == "user" and s.name == snap
            )
            if not current.protected:
                services.rbd.image_snap_protect(source_image, snap, True)
                ctx.made("base_protected", source_image)

    def drop_base(ctx: StepContext) -> None:
        created = ctx.data.get("base_created", [])
        for source_image in created:
            with contextlib.suppress(VmConsoleError):
                services.rbd.image_snap_remove(source_image, snap)
        for source_image in ctx.data.get("base_protected", []):
            if source_image not in created:
                with contextlib.suppress(VmConsoleError):
                    services.rbd.image_snap_protect(source_image, snap, False)

    def clone(ctx: StepContext) -> None:
        for source_image, target in pairs:
            record_image_intent(ctx, target)
            services.rbd.clone(source_image, snap, target)
            ctx.made("cloned", target)
            ctx.made(IMAGES_MADE, target)

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
