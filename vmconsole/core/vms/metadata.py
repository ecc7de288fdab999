"""A VM's metadata and the settings kept in it: user keys, its domain XML, colocations, and the
pacemaker-remote node it carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lxml import etree

from vmconsole.core.services import Services
from vmconsole.core.steps import primitive_spec, require_vm
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.core.vms.options import check_metadata
from vmconsole.domain import naming, units, validate, xmlsafe
from vmconsole.domain.errors import ConflictError, NotFoundError, ValidationError
from vmconsole.domain.primitive_builder import build_colocation, colocation_id
from vmconsole.domain.settings import COLOCATIONS_KEY, Colocation, VmSettings, user_metadata


def metadata_list(services: Services, vm: str) -> dict[str, str]:
    require_vm(services, vm)
    metadata = services.rbd.metadata(naming.system_image(vm))
    return user_metadata(metadata)


def domain_config(services: Services, vm: str) -> tuple[str, str]:
    """The VM's ``_base_xml`` (as given by its creator) and ``xml`` (what the agent starts)."""
    require_vm(services, vm)
    metadata = services.rbd.metadata(naming.system_image(vm))
    return metadata.get("_base_xml", ""), metadata.get("xml", "")


def metadata_get(services: Services, vm: str, key: str) -> str:
    require_vm(services, vm)
    if not isinstance(key, str) or not key:
        raise ValidationError("give a metadata key", field="key")
    value = services.rbd.metadata_get(naming.system_image(vm), key)
    if value is None:
        raise NotFoundError(f"{vm} has no metadata {key!r}", field="key")
    return value


def plan_metadata_set(services: Services, vm: str, values: Mapping[str, Any], remove: Sequence[str] = ()) -> Task:
    require_vm(services, vm)
    checked = check_metadata(values)
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
    require_vm(services, vm)
    if not resources or isinstance(resources, str):
        raise ValidationError("name at least one resource to colocate with", field="resources")
    for resource in resources:
        if not isinstance(resource, str) or not units.NAME_PATTERN.fullmatch(resource):
            raise ValidationError(f"{resource!r} is not a resource name", field="resources")
    known = services.pacemaker.resource_ids()
    unknown = [r for r in resources if r not in known]
    if unknown:
        raise ValidationError(
            f"no Pacemaker resource named {', '.join(unknown)}",
            field="resources",
            hint="a VM must be enabled to be colocated with",
        )
    settings = VmSettings.from_metadata(services.rbd.metadata(naming.system_image(vm)))
    colocation = Colocation(tuple(resources), strong, owner=vm)
    return settings.with_changes(
        colocations=(*[c for c in settings.colocations if c.resources != colocation.resources], colocation)
    )


def plan_colocate(services: Services, vm: str, resources: Sequence[str], strong: bool = False) -> Task:
    """Persist the colocation in the VM's metadata (so enable re-applies it) and add it to the CIB."""
    settings = colocation_settings(services, vm, resources, strong)
    image = naming.system_image(vm)
    before = services.rbd.metadata(image)
    recorded = VmSettings.from_metadata(before).colocations
    if any(c.resources == tuple(resources) and c.strong == strong for c in recorded):
        raise ConflictError(
            f"{vm} is colocated with {', '.join(resources)} already", field="resources", reason="already_colocated"
        )

    def persist(ctx: StepContext) -> None:
        services.rbd.metadata_set_many(image, settings.to_metadata())

    def unpersist(ctx: StepContext) -> None:

        if COLOCATIONS_KEY in before:
            services.rbd.metadata_set_many(image, {COLOCATIONS_KEY: before[COLOCATIONS_KEY]})
        else:
            services.rbd.metadata_remove(image, [COLOCATIONS_KEY])

    def apply(ctx: StepContext) -> None:
        if vm not in services.primitives():
            ctx.log(f"{vm} is disabled: the colocation applies when it is enabled")
            return

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


def plan_uncolocate(services: Services, vm: str, resources: Sequence[str]) -> Task:
    """Forget the VM's colocation with exactly these resources: out of its metadata and the CIB."""
    require_vm(services, vm)
    wanted = tuple(resources)
    image = naming.system_image(vm)
    before = services.rbd.metadata(image)
    settings = VmSettings.from_metadata(before)
    found = next((c for c in settings.colocations if c.resources == wanted), None)
    if found is None:
        kept = "; ".join(", ".join(c.resources) for c in settings.colocations) or "none"
        raise NotFoundError(
            f"{vm} has no colocation with {', '.join(wanted) or 'nothing'} (its colocations: {kept})",
            field="resources",
            reason="already_absent",
        )
    constraint_id = colocation_id(vm, found.resources, found.strong)
    saved = {"xml": ""}

    def unpersist(ctx: StepContext) -> None:
        remaining = tuple(c for c in settings.colocations if c is not found)
        services.rbd.metadata_set_many(image, settings.with_changes(colocations=remaining).to_metadata())
        if not remaining:
            services.rbd.metadata_remove(image, [COLOCATIONS_KEY])

    def persist_again(ctx: StepContext) -> None:
        if COLOCATIONS_KEY in before:
            services.rbd.metadata_set_many(image, {COLOCATIONS_KEY: before[COLOCATIONS_KEY]})

    def remove(ctx: StepContext) -> None:
        fragment = xmlsafe.parse(services.pacemaker.vm_fragment(vm), what="the VM's constraints")
        element = next((c for c in fragment.iterfind("constraints/*") if c.get("id") == constraint_id), None)
        if element is None:
            return
        saved["xml"] = etree.tostring(element, encoding="unicode")
        services.pacemaker.delete_constraint(constraint_id)

    def add_again(ctx: StepContext) -> None:
        if saved["xml"]:
            services.pacemaker.modify_configuration(
                f"<configuration><constraints>{saved['xml']}</constraints></configuration>"
            )

    return Task(
        "uncolocate",
        vm,
        {"resources": list(wanted)},
        [
            Step("forget the colocation in the VM's metadata", unpersist, persist_again),
            Step(f"remove the colocation constraint {constraint_id}", remove, add_again),
        ],
        description=f"stop colocating {vm} with {', '.join(wanted)}",
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
    require_vm(services, vm)
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
            raise ConflictError(f"{vm} carries no pacemaker-remote node", reason="already_absent")
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
