"""VM lifecycle operations, planned as tasks: create, clone, enable, disable, start, stop, cleanup,
remove, metadata. Each validates everything before it changes anything, then runs as a task whose
completed steps are undone in reverse on failure or cancel.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from vmconsole.backends import qemu_img
from vmconsole.core.services import Services
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.domain import domain_xml, naming, units, validate
from vmconsole.domain.errors import (
    BackendError,
    ConflictError,
    NotFoundError,
    OperationFailed,
    ValidationError,
    VmConsoleError,
)
from vmconsole.domain.model import VmStatus
from vmconsole.domain.primitive_builder import ColocationSpec, PrimitiveSpec, build_enable_fragment
from vmconsole.domain.settings import Colocation, VmSettings, user_metadata
from vmconsole.domain.units import duration_seconds

START_WAIT = 150.0  # the primitive's start op timeout (120 s) plus the scheduler's own delays
SETTLE_MARGIN = 30.0
RESERVED_META = ("target-role", "is-managed")


# ---------------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class VmOptions:
    """The settings shared by create and clone (vm_manager's 'shared block')."""

    pinned_host: str | None = None
    preferred_host: str | None = None
    live_migration: bool | None = None
    migration_user: str | None = None
    stop_timeout: str | int | None = None
    migrate_to_timeout: str | int | None = None
    migration_downtime: str | int | None = None
    priority: str | int | None = None
    pacemaker_meta: Mapping[str, Any] | None = None
    pacemaker_params: Mapping[str, Any] | None = None
    pacemaker_utilization: Mapping[str, Any] | None = None
    crm_config_cmd: Sequence[str] = ()
    metadata: Mapping[str, Any] | None = None
    enable: bool = True
    start: bool = True  # False: --nostart (enabled with target-role Stopped)


@dataclass(frozen=True)
class CreateSpec:
    name: str
    image: str
    xml: str
    data_disks: Sequence[str] = ()
    disk_bus: str = "virtio"
    uuid: str | None = None
    force: bool = False
    options: VmOptions = field(default_factory=VmOptions)


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


# ---------------------------------------------------------------------------------------------- helpers
def _check_options(services: Services, options: VmOptions, base: VmSettings, nodes: list[str]) -> VmSettings:
    """Validate the shared options and merge them over ``base``; nothing is changed on error."""
    changes: dict[str, Any] = {}
    # an empty string clears the setting (update in place); a node name sets it
    if options.pinned_host == "":
        changes["pinned_host"] = None
    elif options.pinned_host is not None:
        changes["pinned_host"] = validate.node_name(options.pinned_host, nodes, field="pinned_host")
        changes["preferred_host"] = None
    if options.preferred_host == "":
        changes["preferred_host"] = None
    elif options.preferred_host is not None:
        changes["preferred_host"] = validate.node_name(options.preferred_host, nodes, field="preferred_host")
        if not options.pinned_host:
            changes["pinned_host"] = None
    if options.live_migration is not None:
        changes["live_migration"] = bool(options.live_migration)
    if options.migration_user is not None:
        if not isinstance(options.migration_user, str) or not units.NAME_PATTERN.fullmatch(options.migration_user):
            raise ValidationError("must be a user name (ASCII letters, digits, '_', '-', '.')", field="migration_user")
        changes["migration_user"] = options.migration_user
    for name in ("stop_timeout", "migrate_to_timeout"):
        value = getattr(options, name)
        if value is not None:
            changes[name] = validate.timeout_seconds(value, name)
    if options.migration_downtime is not None:
        changes["migration_downtime"] = str(validate.count(options.migration_downtime, "migration_downtime"))
    if options.priority is not None:
        text = str(options.priority)
        if isinstance(options.priority, bool) or not text.lstrip("-+").isdigit():
            raise ValidationError(f"must be an integer, got {options.priority!r}", field="priority")
        changes["priority"] = text
    for name in ("pacemaker_meta", "pacemaker_params", "pacemaker_utilization"):
        value = getattr(options, name)
        if value is not None:
            reserved = RESERVED_META if name == "pacemaker_meta" else ()
            changes[name] = validate.pacemaker_options(value, name, reserved=reserved)
    if options.crm_config_cmd:
        if isinstance(options.crm_config_cmd, str):
            raise ValidationError("give a list of commands", field="crm_config_cmd")
        for line in options.crm_config_cmd:
            if not isinstance(line, str) or not line.strip() or "\n" in line:
                raise ValidationError(f"each command is one non-empty line, got {line!r}", field="crm_config_cmd")
        if shutil.which("crm") is None:
            raise ValidationError(
                "extra crm configuration needs crmsh ('crm'), which is not installed here", field="crm_config_cmd"
            )
        changes["crm_config_cmd"] = tuple(options.crm_config_cmd)
    merged = base.with_changes(**changes)
    # the final primitive must be valid too (reserved meta, utilization integers...)
    primitive_spec(services, "probe", merged, start=False, remote_nodes=())
    return merged


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"expected key = value pairs, got {type(metadata).__name__}", field="metadata")
    return {
        validate.metadata_key(k, field="metadata"): validate.metadata_value(v, field=f"metadata.{k}")
        for k, v in metadata.items()
    }


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


def _all_uuids(services: Services, exclude: set[str]) -> dict[str, str]:
    """UUID -> VM, from every VM's stored xml (header reads only, no image opens)."""
    ids = services.rbd.image_ids()
    found: dict[str, str] = {}
    for vm in services.rbd.group_names():
        if vm in exclude or vm.startswith("vmconsole"):
            continue
        image_id = ids.get(naming.system_image(vm))
        if image_id is None:
            continue
        xml = services.rbd.header_metadata(image_id).get("xml")
        if not xml:
            continue
        try:
            found_uuid = domain_xml.domain_uuid(xml)
        except VmConsoleError:
            continue
        if found_uuid:
            found[found_uuid] = vm
    return found


def _monitors(services: Services) -> list[tuple[str, int]]:
    configured = services.config.ceph.monitors
    if configured:
        result = []
        for item in configured:
            host, _, port = item.rpartition(":")
            result.append((host.strip("[]"), int(port)))
        return result
    return services.rbd.monitors()


def _secret(services: Services) -> str | None:
    with services.libvirt() as lv:
        secret = lv.secret_uuid(services.config.ceph.secret_usage)
    if secret is None:
        raise ValidationError(
            f"libvirt has no ceph secret named {services.config.ceph.secret_usage!r} on this host",
            field="ceph.secret_usage",
            hint="SEAPATH's ansible defines it; the lab defines it at `lab up`",
        )
    return secret


def build_final_xml(services: Services, vm: str, base_xml: str, vm_uuid: str, data_count: int, disk_bus: str) -> str:
    xml = domain_xml.build_domain_xml(
        base_xml,
        name=vm,
        uuid=vm_uuid,
        pool=services.config.ceph.pool,
        namespace=services.config.ceph.namespace,
        system_image=naming.system_image(vm),
        data_images=[naming.data_image(vm, i) for i in range(data_count)],
        disk_bus=disk_bus,
        monitors=_monitors(services),
        auth_user=services.config.ceph.libvirt_user,
        secret_uuid=_secret(services),
    )
    with services.libvirt() as lv:
        lv.validate_domain_xml(xml)
    return xml


def _ungroup(services: Services, group: str, images: Sequence[str]) -> None:
    """Take images out of a group (tolerating those that are not in it, or a missing group)."""
    try:
        members = set(services.rbd.group_images(group))
    except NotFoundError:
        return
    for image in images:
        if image in members:
            services.rbd.group_remove_image(group, image)


def cib_resource_ids(services: Services) -> set[str]:
    """Every resource id of the CIB (primitives, groups, clones...)."""
    from vmconsole.domain import xmlsafe

    cib = xmlsafe.parse(services.pacemaker.cib_xml(), what="CIB")
    return {e.get("id", "") for e in cib.iterfind(".//configuration/resources//*[@id]")}


def _remote_nodes(services: Services) -> list[str]:
    return list(services.crm_mon().remote_nodes)


# ---------------------------------------------------------------------------------------------- enable
def _enable_steps(services: Services, vm: str, *, start: bool, settings_from: str = "cluster") -> list[Step]:
    """Steps that add the primitive and its constraints in one CIB transaction, then wait."""

    def apply(ctx: StepContext) -> None:
        metadata = services.rbd.metadata(naming.system_image(vm))
        settings = VmSettings.from_metadata(metadata)
        if settings.colocations:
            known = cib_resource_ids(services)
            kept = tuple(c for c in settings.colocations if all(r in known for r in c.resources))
            for dropped in set(settings.colocations) - set(kept):
                ctx.log(f"colocation with {', '.join(dropped.resources)} not applied: no such resource now")
            settings = settings.with_changes(colocations=kept)
        spec = primitive_spec(services, vm, settings, start=start, remote_nodes=_remote_nodes(services))
        if vm in services.primitives():
            raise ConflictError(f"{vm} is already enabled (it has a Pacemaker primitive)")
        services.pacemaker.modify_configuration(etree.tostring(build_enable_fragment(spec), encoding="unicode"))
        ctx.data["enabled"] = True
        for line in settings.crm_config_cmd:
            services.pacemaker.crm_configure(line)
        ctx.log(f"primitive {vm} (ocf:seapath:VirtualDomain) added, target-role {spec.target_role}")

    def unapply(ctx: StepContext) -> None:
        if vm in services.primitives():
            _stop_and_delete(services, vm, ctx)

    def wait_started(ctx: StepContext) -> None:
        services.wait_status(vm, {VmStatus.STARTED}, START_WAIT, tick=ctx.check_cancel)
        ctx.log(f"{vm} is Started")

    steps = [Step("add the Pacemaker primitive", apply, unapply)]
    if start:
        steps.append(Step(f"start {vm} and wait for it", wait_started, None, weight=2))
    return steps


def _stop_timeout(services: Services, vm: str) -> float:
    primitive = services.primitives().get(vm)
    op = primitive.operation("stop") if primitive else None
    return duration_seconds(op.timeout if op else None, 30.0) + SETTLE_MARGIN


def _stop_and_delete(services: Services, vm: str, ctx: StepContext | None) -> None:
    """Stop the VM through Pacemaker, wait until its disks are released, then delete the primitive."""
    tick = ctx.check_cancel if ctx else None
    status, _ = services.vm_status(vm)
    if status is VmStatus.FAILED:
        services.pacemaker.cleanup(vm)  # this VM only (vm_manager cleaned up every resource)
    services.pacemaker.set_target_role(vm, "Stopped")
    services.wait_status(vm, {VmStatus.STOPPED}, _stop_timeout(services, vm), fail_on=set(), tick=tick)
    services.wait_disks_released(vm, 30.0, tick=tick)
    services.pacemaker.delete_vm(vm)


def _saved_primitive(services: Services, vm: str) -> str:
    """The primitive and its constraints as a <configuration> fragment, to put them back on undo."""
    from vmconsole.domain import xmlsafe

    cib = xmlsafe.parse(services.pacemaker.cib_xml(), what="CIB")
    fragment = etree.Element("configuration")
    resources = etree.SubElement(fragment, "resources")
    constraints = etree.SubElement(fragment, "constraints")
    for primitive in cib.iterfind(".//configuration/resources/primitive"):
        if primitive.get("id") == vm:
            resources.append(primitive)
    for constraint in cib.iterfind(".//configuration/constraints/*"):
        cid = constraint.get("id", "")
        if (
            constraint.get("rsc") == vm
            or constraint.get("with-rsc") == vm
            or cid.startswith((f"colocation-{vm}-with", f"colocation-strong-{vm}-with"))
        ):
            constraints.append(constraint)
    return etree.tostring(fragment, encoding="unicode")


def _disable_step(services: Services, vm: str) -> Step:
    def run(ctx: StepContext) -> None:
        if vm not in services.primitives():
            ctx.log(f"{vm} has no Pacemaker primitive")
            return
        status, _ = services.vm_status(vm)
        ctx.data["disabled_saved"] = _saved_primitive(services, vm)
        ctx.data["disabled_was_running"] = status in (VmStatus.STARTED, VmStatus.STARTING)
        ctx.save()
        _stop_and_delete(services, vm, ctx)
        ctx.log(f"{vm} stopped and its primitive removed")

    def undo(ctx: StepContext) -> None:
        saved = ctx.data.get("disabled_saved")
        if saved and vm not in services.primitives():
            services.pacemaker.modify_configuration(saved)
            if ctx.data.get("disabled_was_running"):
                services.pacemaker.set_target_role(vm, "Started")

    return Step(f"stop {vm} and remove its Pacemaker primitive", run, undo, weight=2)


def _require_vm(services: Services, vm: str) -> None:
    validate.vm_name(vm)
    if not services.vm_exists(vm):
        raise NotFoundError(f"no VM named {vm!r}", field="name")


def plan_enable(services: Services, vm: str, *, start: bool = True) -> Task:
    _require_vm(services, vm)
    if vm in services.primitives():
        raise ConflictError(f"{vm} is already enabled", hint=f"`vmconsole vm start {vm}` to start it")
    VmSettings.from_metadata(services.rbd.metadata(naming.system_image(vm)))  # readable settings or error
    return Task(
        "enable",
        vm,
        {"start": start},
        _enable_steps(services, vm, start=start),
        description=f"enable {vm}" + ("" if start else " (not started)"),
    )


def plan_disable(services: Services, vm: str) -> Task:
    _require_vm(services, vm)
    if vm not in services.primitives():
        raise ConflictError(f"{vm} is already disabled (it has no Pacemaker primitive)")
    return Task("disable", vm, {}, [_disable_step(services, vm)], description=f"disable {vm}")


def plan_start(services: Services, vm: str) -> Task:
    _require_vm(services, vm)
    if vm not in services.primitives():
        raise ConflictError(f"{vm} is disabled", hint=f"`vmconsole vm enable {vm}` adds it to the cluster")
    status, _node = services.vm_status(vm)
    if status is VmStatus.FAILED:
        raise ConflictError(f"{vm} is Failed", hint=f"`vmconsole vm cleanup {vm}` clears the failure first")

    def run(ctx: StepContext) -> None:
        ctx.data["previous_role"] = "Stopped"
        services.pacemaker.set_target_role(vm, "Started")
        _, node = services.wait_status(vm, {VmStatus.STARTED}, START_WAIT, tick=ctx.check_cancel)
        ctx.data["_summary"] = f"{vm} Started on {node}"

    def undo(ctx: StepContext) -> None:
        services.pacemaker.set_target_role(vm, "Stopped")

    return Task("start", vm, {}, [Step(f"start {vm}", run, undo)], description=f"start {vm}")


def plan_stop(services: Services, vm: str, *, force: bool = False) -> Task:
    _require_vm(services, vm)
    if vm not in services.primitives():
        raise ConflictError(f"{vm} is disabled: it is not running under the cluster")

    def run(ctx: StepContext) -> None:
        services.pacemaker.set_target_role(vm, "Stopped")
        try:
            services.wait_status(
                vm, {VmStatus.STOPPED}, _stop_timeout(services, vm), fail_on=set(), tick=ctx.check_cancel
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
    _require_vm(services, vm)
    if vm not in services.primitives():
        raise ConflictError(f"{vm} is disabled: there is no Pacemaker failure to clean up")

    def run(ctx: StepContext) -> None:
        services.pacemaker.cleanup(vm)
        ctx.data["_summary"] = f"failures of {vm} cleared; Pacemaker re-probes it"

    return Task("cleanup", vm, {}, [Step(f"clear the failures of {vm}", run)], description=f"cleanup {vm}")


# ---------------------------------------------------------------------------------------------- remove
def _remove_disks_steps(services: Services, group: str, images: list[str]) -> list[Step]:
    def run(ctx: StepContext) -> None:
        # group snapshots first: an image leaving the group keeps its .group.* snapshots otherwise
        if services.rbd.group_exists(group):
            for snapshot in services.rbd.group_snapshots(group):
                services.rbd.group_snap_remove(group, snapshot)
        for index, image in enumerate(images):
            ctx.progress(index, len(images), image, unit="items")
            if services.rbd.group_exists(group) and image in services.rbd.group_images(group):
                services.rbd.group_remove_image(group, image)
            with contextlib.suppress(NotFoundError):
                services.rbd.remove_image(image)
        services.rbd.remove_group(group)
        services.rbd.remove_object(naming.snapshot_records_object(group))

    return [Step(f"delete the disks and group of {group}", run, None, weight=2)]


def plan_remove(services: Services, vm: str) -> Task:
    _require_vm(services, vm)
    images = sorted({*services.rbd.group_images(vm), naming.system_image(vm)}, key=lambda i: naming.disk_order(vm, i))
    images = [i for i in images if services.rbd.image_exists(i)]
    for image in images:
        children = services.rbd.children(image)
        if children:
            raise ConflictError(
                f"{image} has linked clones: {', '.join(children)}", hint="flatten or remove those clones first"
            )
    steps = []
    if vm in services.primitives():
        steps.append(_disable_step(services, vm))
    steps += _remove_disks_steps(services, vm, images)
    return Task("remove", vm, {"images": images}, steps, description=f"remove {vm} and its disks")


# ---------------------------------------------------------------------------------------------- create
def _import_step(services: Services, source: qemu_img.ImageFile, image: str, weight: float) -> Step:
    def run(ctx: StepContext) -> None:
        services.rbd.create_image(image, source.virtual_size)
        ctx.data.setdefault("created_images", []).append(image)
        ctx.save()
        qemu_img.import_to_rbd(source, services.config.ceph, image, ctx.progress, ctx.cancel.is_set)

    def undo(ctx: StepContext) -> None:
        with contextlib.suppress(NotFoundError):
            services.rbd.remove_image(image)

    return Step(f"import {source.path} into {image}", run, undo, weight=weight)


def plan_create(services: Services, spec: CreateSpec) -> Task:
    vm = validate.vm_name(spec.name)
    options = spec.options
    # --- everything is checked before anything changes
    base = domain_xml.check_base_xml(spec.xml)
    base_xml = etree.tostring(base, encoding="unicode")
    disk_bus = spec.disk_bus or "virtio"
    domain_xml.device_name(disk_bus, 0)
    system = qemu_img.inspect(spec.image, field="image")
    if isinstance(spec.data_disks, str):
        raise ValidationError("give a list of image files", field="data_disks")
    data = [qemu_img.inspect(path, field=f"data_disks[{i}]") for i, path in enumerate(spec.data_disks)]
    nodes = services.node_names()
    settings = _check_options(services, options, VmSettings(disk_bus=disk_bus), nodes)
    settings = settings.with_changes(disk_bus=disk_bus, additional_disks=len(data))
    user_metadata = _check_metadata(options.metadata)
    exists = services.vm_exists(vm)
    if exists and not spec.force:
        raise ConflictError(
            f"a VM named {vm!r} already exists",
            field="name",
            hint="use --force to replace it (the old VM stays until the new one is built)",
        )
    vm_uuid = spec.uuid or domain_xml.domain_uuid(base_xml) or domain_xml.new_uuid()
    vm_uuid = domain_xml.domain_uuid(f"<domain><uuid>{vm_uuid}</uuid></domain>") or vm_uuid
    # the UUID check comes after --force is accounted for: the VM it replaces does not count
    owners = _all_uuids(services, exclude={vm} if spec.force else set())
    if vm_uuid in owners:
        raise ConflictError(f"UUID {vm_uuid} is already used by VM {owners[vm_uuid]!r}", field="uuid")
    final_xml = build_final_xml(services, vm, domain_xml.strip_uuid(base_xml), vm_uuid, len(data), disk_bus)
    metadata = {"vm_name": vm, "xml": final_xml, "_base_xml": base_xml, **settings.to_metadata(), **user_metadata}

    # --- the plan: build under a temporary name when replacing, swap at the end
    work = f"vmconsolenew{uuidlib.uuid4().hex[:8]}" if exists else vm
    images = [naming.system_image(work)] + [naming.data_image(work, i) for i in range(len(data))]
    total = system.virtual_size + sum(d.virtual_size for d in data)

    def create_group(ctx: StepContext) -> None:
        ctx.data["group_created"] = work
        ctx.save()
        services.rbd.create_group(work)

    def remove_group(ctx: StepContext) -> None:
        for image in images:
            with contextlib.suppress(VmConsoleError):
                services.rbd.group_remove_image(work, image)
        with contextlib.suppress(NotFoundError):
            services.rbd.remove_group(work)

    steps = [Step(f"create RBD group {work}", create_group, remove_group, weight=0.2)]
    steps.append(_import_step(services, system, images[0], weight=4 * system.virtual_size / total))
    for index, disk in enumerate(data):
        steps.append(_import_step(services, disk, images[index + 1], weight=4 * disk.virtual_size / total))

    def configure(ctx: StepContext) -> None:
        for image in images:
            services.rbd.group_add(work, image)
        services.rbd.metadata_set_many(images[0], metadata)

    def unconfigure(ctx: StepContext) -> None:
        _ungroup(services, work, images)

    steps.append(Step("write the VM's configuration (image metadata)", configure, unconfigure, weight=0.2))
    if exists:
        steps += _swap_steps(services, vm, work, len(data))
    if options.enable:
        steps += _enable_steps(services, vm, start=options.start)
    args = {
        "name": vm,
        "image": spec.image,
        "data_disks": list(spec.data_disks),
        "disk_bus": disk_bus,
        "uuid": vm_uuid,
        "force": spec.force,
        "enable": options.enable,
        "start": options.start,
    }
    return Task(
        "create",
        vm,
        args,
        steps,
        locks=[vm],
        description=f"create {vm} from {spec.image}" + (" (replacing the existing VM)" if exists else ""),
    )


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


def _swap_steps(services: Services, vm: str, work: str, data_count: int) -> list[Step]:
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
        _disable_step(services, vm)
        if vm in services.primitives()
        else Step(f"check {vm} is not running", lambda ctx: None)
    )
    steps.append(Step(f"swap the new {vm} in place of the old one", swap, unswap, weight=0.3))
    steps.append(Step("delete the old VM's disks", delete_old, None, weight=0.5))
    return steps


# ---------------------------------------------------------------------------------------------- clone
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
    settings = _check_options(services, merged_options, base_settings.with_changes(**changes), services.node_names())
    for name in ("pacemaker_meta", "pacemaker_params", "pacemaker_utilization"):
        # vm_manager merges new key/values into the inherited ones (never removes)
        new = getattr(merged_options, name)
        if new is not None and not getattr(spec, f"clear_{name}"):
            settings = settings.with_changes(**{name: {**getattr(base_settings, name), **getattr(settings, name)}})
    user_meta = user_metadata(source_meta)
    user_meta.update(_check_metadata(merged_options.metadata))
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
        _ungroup(services, work, [target for _, target in pairs])

    steps.append(Step("write the clone's configuration", configure, unconfigure, weight=0.2))
    if exists:
        steps += _swap_steps(services, dst, work, data_count)
    if merged_options.enable:
        steps += _enable_steps(services, dst, start=merged_options.start)
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
        import time

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
        _deep_copy_with_progress(services, source, target, size, ctx)

    def undo(ctx: StepContext) -> None:
        with contextlib.suppress(NotFoundError):
            services.rbd.remove_image(target)

    return Step(f"copy {source} to {target}", run, undo, weight=weight)


def _deep_copy_with_progress(services: Services, source: str, target: str, size: int, ctx: StepContext) -> None:
    """``rbd deep cp``: librbd's deep copy (data and snapshots) with its progress on stderr."""
    import os
    import select
    import subprocess

    from vmconsole.backends.proc import die_with_parent

    ceph = services.config.ceph
    location = f"{ceph.pool}/{ceph.namespace}/" if ceph.namespace else f"{ceph.pool}/"
    argv = ["rbd", "-c", ceph.conf, "--id", ceph.client_id, "deep", "cp", location + source, location + target]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent
    )
    assert proc.stderr is not None
    tail = b""
    errors = b""
    try:
        while True:
            if ctx.cancel.is_set():
                proc.kill()
                proc.wait()
                ctx.check_cancel()
            ready, _, _ = select.select([proc.stderr], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:  # rbd exited and closed its stderr
                break
            errors = (errors + chunk)[-4096:]
            tail = (tail + chunk)[-200:]
            found = re.findall(rb"(\d+)% complete", tail)
            if found:
                ctx.progress(size * int(found[-1]) // 100, size)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if proc.returncode != 0:
        lines = [
            line
            for line in errors.decode(errors="replace").replace("\r", "\n").splitlines()
            if line.strip() and "complete" not in line
        ]
        raise BackendError("ceph", f"copy of {source} failed: {lines[-1] if lines else proc.returncode}")
    ctx.progress(size, size)


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
    _require_vm(services, vm)
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


# ---------------------------------------------------------------------------------------------- metadata
def metadata_list(services: Services, vm: str) -> dict[str, str]:
    _require_vm(services, vm)
    metadata = services.rbd.metadata(naming.system_image(vm))
    return user_metadata(metadata)


def domain_config(services: Services, vm: str) -> tuple[str, str]:
    """The VM's ``_base_xml`` (as given by its creator) and ``xml`` (what the agent starts)."""
    _require_vm(services, vm)
    metadata = services.rbd.metadata(naming.system_image(vm))
    return metadata.get("_base_xml", ""), metadata.get("xml", "")


def metadata_get(services: Services, vm: str, key: str) -> str:
    _require_vm(services, vm)
    if not isinstance(key, str) or not key:
        raise ValidationError("give a metadata key", field="key")
    value = services.rbd.metadata_get(naming.system_image(vm), key)
    if value is None:
        raise NotFoundError(f"{vm} has no metadata {key!r}", field="key")
    return value


def plan_metadata_set(services: Services, vm: str, values: Mapping[str, Any], remove: Sequence[str] = ()) -> Task:
    _require_vm(services, vm)
    checked = _check_metadata(values)
    removing = [validate.metadata_key(k, field="remove") for k in remove]
    image = naming.system_image(vm)
    before = services.rbd.metadata(image)

    def run(ctx: StepContext) -> None:
        services.rbd.metadata_set_many(image, checked)
        services.rbd.metadata_remove(image, removing)

    def undo(ctx: StepContext) -> None:
        restore = {k: before[k] for k in [*checked, *removing] if k in before}
        services.rbd.metadata_set_many(image, restore)
        services.rbd.metadata_remove(image, [k for k in checked if k not in before])

    return Task(
        "metadata-set",
        vm,
        {"set": sorted(checked), "remove": removing},
        [Step(f"write metadata of {vm}", run, undo)],
        description=f"set metadata of {vm}",
    )


def colocation_settings(services: Services, vm: str, resources: Sequence[str], strong: bool) -> VmSettings:
    _require_vm(services, vm)
    if not resources or isinstance(resources, str):
        raise ValidationError("name at least one resource to colocate with", field="resources")
    for resource in resources:
        if not isinstance(resource, str) or not units.NAME_PATTERN.fullmatch(resource):
            raise ValidationError(f"{resource!r} is not a resource name", field="resources")
    known = cib_resource_ids(services)
    unknown = [r for r in resources if r not in known]
    if unknown:
        raise ValidationError(
            f"no Pacemaker resource named {', '.join(unknown)}",
            field="resources",
            hint="a VM must be enabled to be colocated with",
        )
    settings = VmSettings.from_metadata(services.rbd.metadata(naming.system_image(vm)))
    colocation = Colocation(tuple(resources), strong)
    return settings.with_changes(
        colocations=(*[c for c in settings.colocations if c.resources != colocation.resources], colocation)
    )


def plan_colocate(services: Services, vm: str, resources: Sequence[str], strong: bool = False) -> Task:
    """Persist the colocation in the VM's metadata (so enable re-applies it) and add it to the CIB."""
    settings = colocation_settings(services, vm, resources, strong)
    image = naming.system_image(vm)
    before = services.rbd.metadata(image)

    def persist(ctx: StepContext) -> None:
        services.rbd.metadata_set_many(image, settings.to_metadata())

    def unpersist(ctx: StepContext) -> None:
        from vmconsole.domain.settings import COLOCATIONS_KEY

        if COLOCATIONS_KEY in before:
            services.rbd.metadata_set_many(image, {COLOCATIONS_KEY: before[COLOCATIONS_KEY]})
        else:
            services.rbd.metadata_remove(image, [COLOCATIONS_KEY])

    def apply(ctx: StepContext) -> None:
        if vm not in services.primitives():
            ctx.log(f"{vm} is disabled: the colocation applies when it is enabled")
            return
        from vmconsole.domain.primitive_builder import build_colocation

        fragment = etree.Element("configuration")
        etree.SubElement(fragment, "constraints").append(build_colocation(vm, tuple(resources), strong))
        services.pacemaker.modify_configuration(etree.tostring(fragment, encoding="unicode"))

    return Task(
        "colocate",
        vm,
        {"resources": list(resources), "strong": strong},
        [
            Step("record the colocation in the VM's metadata", persist, unpersist),
            Step("add the colocation constraint", apply),
        ],
        description=f"colocate {vm}",
    )


def plan_remote(
    services: Services,
    vm: str,
    *,
    remote_name: str | None,
    address: str | None = None,
    port: str | int | None = None,
    timeout: str | int | None = None,
) -> Task:
    """Add (remote_name given) or remove (None) the pacemaker-remote node carried by a VM."""
    _require_vm(services, vm)
    settings = VmSettings.from_metadata(services.rbd.metadata(naming.system_image(vm)))
    image = naming.system_image(vm)
    keys = ["_remote_node", "_remote_node_address", "_remote_node_port", "_remote_node_timeout"]
    if remote_name is not None:
        validate.vm_name(remote_name, field="remote_name")
        if not address or not isinstance(address, str):
            raise ValidationError("give the remote node's address", field="remote_address")
        new = settings.with_changes(
            remote_node=remote_name,
            remote_node_address=address,
            remote_node_port=str(validate.count(port, "remote_port")) if port is not None else None,
            remote_node_timeout=validate.timeout_seconds(timeout, "remote_timeout") if timeout is not None else None,
        )
        primitive_spec(services, vm, new, start=False, remote_nodes=())  # validates the meta values
    else:
        if settings.remote_node is None:
            raise ConflictError(f"{vm} carries no pacemaker-remote node")
        new = settings.with_changes(
            remote_node=None, remote_node_address=None, remote_node_port=None, remote_node_timeout=None
        )
    before = {k: v for k, v in services.rbd.metadata(image).items() if k in keys}
    meta = {
        "remote-node": new.remote_node,
        "remote-addr": new.remote_node_address,
        "remote-port": new.remote_node_port,
        "remote-connect-timeout": new.remote_node_timeout,
    }

    def write(ctx: StepContext) -> None:
        values = {k: v for k, v in new.to_metadata().items() if k in keys}
        services.rbd.metadata_remove(image, [k for k in keys if k not in values])
        services.rbd.metadata_set_many(image, values)

    def restore(ctx: StepContext) -> None:
        services.rbd.metadata_remove(image, keys)
        services.rbd.metadata_set_many(image, before)

    def apply(ctx: StepContext) -> None:
        if vm not in services.primitives():
            ctx.log(f"{vm} is disabled: the remote node applies when it is enabled")
            return
        for name, value in meta.items():
            if value is None:
                services.pacemaker.delete_meta(vm, name)
            else:
                services.pacemaker.set_meta(vm, name, value)

    verb = "add" if remote_name else "remove"
    return Task(
        f"remote-{verb}",
        vm,
        {"remote_name": remote_name, "address": address},
        [
            Step("record the remote node in the VM's metadata", write, restore),
            Step("update the primitive's meta attributes", apply),
        ],
        description=f"{verb} pacemaker-remote of {vm}",
    )


__all__ = [
    "CloneSpec",
    "CreateSpec",
    "VmOptions",
    "metadata_get",
    "metadata_list",
    "plan_cleanup",
    "plan_clone",
    "plan_colocate",
    "plan_create",
    "plan_disable",
    "plan_enable",
    "plan_flatten",
    "plan_metadata_set",
    "plan_remote",
    "plan_remove",
    "plan_start",
    "plan_stop",
]
