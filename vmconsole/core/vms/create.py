"""Create a VM from disk images and a domain XML (``--force`` builds a replacement aside and swaps it
in), and import a VM of this host's libvirt into the cluster (add-to-cluster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

from vmconsole.backends import qemu_img
from vmconsole.core.services import Services
from vmconsole.core.steps import (
    enable_steps,
    refuse_existing_images,
    refuse_linked_clones,
    refuse_primitive,
    swap_steps,
    vm_images,
)
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.core.vms.build import (
    IMAGES_MADE,
    configure_step,
    group_step,
    kept_after_failure,
    names_free_check,
    record_image_intent,
    remove_made_image,
    work_images,
)
from vmconsole.core.vms.options import VmOptions, check_metadata, check_options
from vmconsole.domain import domain_xml, naming, validate
from vmconsole.domain.errors import ConflictError, NotFoundError, ValidationError, VmConsoleError
from vmconsole.domain.settings import VmSettings


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
    # what each image file is (image, then the data disks), when the caller knows it; else its header says
    formats: tuple[str | None, ...] = ()


def _all_uuids(services: Services, exclude: set[str]) -> dict[str, str]:
    """UUID -> VM, from every VM's stored xml (header reads only, no image opens)."""
    ids = services.rbd.image_ids()
    found: dict[str, str] = {}
    for vm in services.rbd.group_names():
        if vm in exclude or naming.is_temporary(vm):
            continue
        image_id = ids.get(naming.system_image(vm))
        if image_id is None:
            continue
        try:
            xml = services.rbd.header_metadata(image_id).get("xml")
        except NotFoundError:
            continue  # removed since the listing (another operator's remove): it holds no UUID now
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


def build_final_xml(
    services: Services,
    vm: str,
    base_xml: str,
    vm_uuid: str,
    data_count: int,
    disk_bus: str,
    *,
    renamed_from: tuple[str, ...] = (),
) -> str:
    """The domain XML the agent starts: base + name, UUID, RBD disks; per-VM host paths (logs,
    sockets, NVRAM) that named another VM (``renamed_from``, and the base's own ``<name>``) name this one.

    Checked against libvirt's schema here (no domain is defined: a plan or a dry run changes
    nothing); ``check_with_libvirt`` has libvirt check the devices too, at run time.
    """
    for old in {*renamed_from, domain_xml.domain_name(base_xml) or ""}:
        base_xml = domain_xml.rename_vm_paths(base_xml, old, vm)
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
        lv.check_schema(xml)
    return xml


def check_with_libvirt(services: Services, xml: str) -> None:
    """libvirt's full check of a definition (devices included), under a throwaway name: it defines
    the domain for an instant, which is why it runs with the task, never at plan time."""
    with services.libvirt() as lv:
        lv.validate_domain_xml(xml)


def _import_step(services: Services, source: qemu_img.ImageFile, image: str, weight: float) -> Step:
    def run(ctx: StepContext) -> None:
        record_image_intent(ctx, image)
        services.rbd.create_image(image, source.virtual_size)
        ctx.made(IMAGES_MADE, image)
        qemu_img.import_to_rbd(source, services.config.ceph, image, ctx.progress, ctx.cancel.is_set)

    def undo(ctx: StepContext) -> None:
        remove_made_image(services, ctx, image)

    return Step(f"import {source.path} into {image}", run, undo, weight=weight)


def plan_create(services: Services, spec: CreateSpec) -> Task:
    vm = validate.vm_name(spec.name)
    options = spec.options
    # --- everything is checked before anything changes
    base = domain_xml.check_base_xml(spec.xml)
    base_xml = etree.tostring(base, encoding="unicode")
    disk_bus = spec.disk_bus or "virtio"
    domain_xml.device_name(disk_bus, 0)
    if isinstance(spec.data_disks, str):
        raise ValidationError("give a list of image files", field="data_disks")
    formats = list(spec.formats) + [None] * (1 + len(spec.data_disks) - len(spec.formats))
    system = qemu_img.inspect(spec.image, field="image", image_format=formats[0])
    data = [
        qemu_img.inspect(path, field=f"data_disks[{i}]", image_format=formats[i + 1])
        for i, path in enumerate(spec.data_disks)
    ]
    nodes = services.node_names()
    settings = check_options(services, options, VmSettings(disk_bus=disk_bus), nodes)
    settings = settings.with_changes(disk_bus=disk_bus, additional_disks=len(data))
    user_metadata = check_metadata(options.metadata)
    exists = services.vm_exists(vm)
    if exists and not spec.force:
        raise ConflictError(
            f"a VM named {vm!r} already exists",
            field="name",
            hint="use --force to replace it (the old VM stays until the new one is built)",
            reason="already_exists",
        )
    if exists:
        refuse_linked_clones(services, vm_images(services, vm), "replacing the VM would delete their base")
    else:
        refuse_existing_images(services, work_images(vm, len(data)))
        refuse_primitive(services, vm)
    vm_uuid = spec.uuid or domain_xml.domain_uuid(base_xml) or domain_xml.new_uuid()
    vm_uuid = domain_xml.domain_uuid(f"<domain><uuid>{vm_uuid}</uuid></domain>") or vm_uuid

    def uuid_free() -> None:
        # the UUID check comes after --force is accounted for: the VM it replaces does not count
        owners = _all_uuids(services, exclude={vm} if spec.force else set())
        if vm_uuid in owners:
            raise ConflictError(f"UUID {vm_uuid} is already used by VM {owners[vm_uuid]!r}", field="uuid")

    uuid_free()
    final_xml = build_final_xml(services, vm, domain_xml.strip_uuid(base_xml), vm_uuid, len(data), disk_bus)
    metadata = {"vm_name": vm, "xml": final_xml, "_base_xml": base_xml, **settings.to_metadata(), **user_metadata}

    # --- the plan: build under a temporary name when replacing, swap at the end
    work = naming.temporary_vm("new") if exists else vm
    images = work_images(work, len(data))
    total = system.virtual_size + sum(d.virtual_size for d in data)
    task_data: dict[str, object] = {}
    names_free = names_free_check(services, task_data, work, images, vm=vm, replacing=exists)

    def precheck() -> None:
        names_free()
        if exists:
            refuse_linked_clones(services, vm_images(services, vm), "replacing the VM would delete their base")
        uuid_free()
        check_with_libvirt(services, final_xml)

    steps = [group_step(services, work)]
    steps.append(_import_step(services, system, images[0], weight=4 * system.virtual_size / total))
    for index, disk in enumerate(data):
        steps.append(_import_step(services, disk, images[index + 1], weight=4 * disk.virtual_size / total))
    steps.append(configure_step(services, work, images, metadata))
    if exists:
        steps += swap_steps(services, vm, work)
    if options.enable:
        steps += enable_steps(
            services, vm, start=options.start, stop_if_start_fails=True, point_of_no_return=not exists
        )
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
        data=task_data,  # type: ignore[arg-type]
        precheck=precheck,
        warnings=tuple(domain_xml.host_reaching(final_xml)),
        kept=kept_after_failure(vm, "create"),
    )


@dataclass(frozen=True)
class LocalDomain:
    """A domain of this host's libvirt that is not a cluster VM: what ``plan_import`` could take."""

    name: str
    state: str  # libvirt's words: "shut off" is the one an import accepts

    @property
    def importable(self) -> bool:
        return self.state == "shut off"


def local_domains(services: Services) -> list[LocalDomain]:
    """This host's libvirt domains that are not cluster VMs (nor their running guests), by name."""
    with services.libvirt() as lv:
        domains = lv.domains()
    cluster = set(services.rbd.group_names()) | set(services.primitives())
    return [LocalDomain(d.name, d.state) for name, d in sorted(domains.items()) if name not in cluster]


def plan_import(
    services: Services,
    domain: str,
    *,
    new_name: str | None = None,
    options: VmOptions | None = None,
    disk_bus: str = "virtio",
) -> Task:
    """add-to-cluster: a VM defined in this host's libvirt becomes a cluster VM (its disks imported)."""
    name = validate.vm_name(new_name or domain)
    with services.libvirt() as lv:
        xml = lv.domain_xml(domain)
        state = lv.domain_state(domain)
    if xml is None:
        raise NotFoundError(f"no libvirt domain {domain!r} on this host", field="name")
    if state not in (None, "shut off"):
        raise ConflictError(
            f"domain {domain} is {state}: shut it down first (its disks must not change during the import)"
        )
    base, disks = domain_xml.detach_local_disks(xml)
    if not disks:
        raise ValidationError(f"domain {domain} has no disk to import", field="xml")
    if name != domain:
        base = domain_xml.strip_uuid(base)
    spec = CreateSpec(
        name=name,
        image=disks[0].path,
        xml=base,
        data_disks=[d.path for d in disks[1:]],
        disk_bus=disk_bus,
        options=options or VmOptions(),
        formats=tuple(d.format for d in disks),
    )
    task = plan_create(services, spec)

    def undefine(ctx: StepContext) -> None:
        with services.libvirt() as lv:
            lv.undefine(domain)
        ctx.log(f"the local definition of {domain} was removed (its disk files are left in place)")

    task.steps.append(Step(f"remove the local libvirt definition of {domain}", undefine, None, weight=0.1))
    task.operation = "import"
    task.description = f"import libvirt domain {domain} as cluster VM {name}"
    return task
