"""Update a VM in place (same name, same UUID): plan the change (settings, domain XML diff, whether a
restart is needed), then write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from vmconsole.core.services import Services
from vmconsole.core.steps import START_WAIT, primitive_spec, remote_nodes, require_vm, stop_timeout
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.core.vms.create import build_final_xml
from vmconsole.core.vms.options import VmOptions, check_metadata, check_options
from vmconsole.domain import domain_xml, naming, validate
from vmconsole.domain.errors import ConflictError, ValidationError
from vmconsole.domain.model import VmStatus
from vmconsole.domain.primitive_builder import build_constraints, build_primitive
from vmconsole.domain.settings import RESERVED_KEYS, VmSettings


@dataclass(frozen=True)
class UpdatePlan:
    vm: str
    xml_diff: tuple[str, ...]
    metadata_changes: dict[str, tuple[str | None, str | None]]  # key -> (before, after)
    restart: bool  # the domain definition changed and the VM runs: it is restarted
    primitive_changed: bool
    new_metadata: dict[str, str] = field(repr=False, default_factory=dict)
    removed_keys: tuple[str, ...] = ()
    status: VmStatus = VmStatus.DISABLED

    @property
    def changed(self) -> bool:
        return bool(self.xml_diff or self.metadata_changes)

    def summary(self) -> list[str]:
        if not self.changed:
            return [f"{self.vm}: nothing to change"]
        lines = [f"update {self.vm} in place (same name, same UUID)"]
        for key, (before, after) in sorted(self.metadata_changes.items()):
            if key in ("xml", "_base_xml"):
                continue
            lines.append(
                f"  {key}: {before if before is not None else '(unset)'} -> {after if after is not None else '(unset)'}"
            )
        if self.xml_diff:
            lines.append("domain XML:")
            lines += [f"  {line}" for line in self.xml_diff]
        if self.primitive_changed:
            lines.append("the Pacemaker primitive is rewritten (Pacemaker restarts the VM if its parameters changed)")
        lines.append(
            f"{self.vm} is restarted for the new definition to take effect" if self.restart else "no restart needed"
        )
        return lines


def update_plan(
    services: Services,
    vm: str,
    *,
    xml: str | None = None,
    options: VmOptions | None = None,
    remove_metadata: tuple[str, ...] = (),
) -> UpdatePlan:
    require_vm(services, vm)
    state = services.vm(vm)
    image = naming.system_image(vm)
    current = services.rbd.metadata(image)
    settings = VmSettings.from_metadata(current)
    options = options or VmOptions()
    new_settings = check_options(services, options, settings, services.node_names())
    base_xml = current.get("_base_xml", "")
    if xml is not None:
        base = domain_xml.check_base_xml(xml)
        base_xml = etree.tostring(base, encoding="unicode")
    if not base_xml:
        raise ValidationError(f"{vm} has no _base_xml to rebuild its definition from; give --xml", field="xml")
    vm_uuid = state.uuid or domain_xml.domain_uuid(current.get("xml", "")) or domain_xml.new_uuid()
    data_count = sum(1 for d in state.disks if naming.data_index(vm, d.image) is not None)
    new_xml = current.get("xml", "")
    if xml is not None:
        new_xml = build_final_xml(
            services, vm, domain_xml.strip_uuid(base_xml), vm_uuid, data_count, new_settings.disk_bus or "virtio"
        )
    wanted = dict(current)
    for key in settings.managed_keys():
        wanted.pop(key, None)
    wanted.update(new_settings.to_metadata())
    wanted.update({"xml": new_xml, "_base_xml": base_xml})
    wanted.update(check_metadata(options.metadata))
    for key in remove_metadata:
        validate.metadata_key(key, field="remove")
        wanted.pop(key, None)
    changes = {
        k: (current.get(k), wanted.get(k)) for k in set(current) | set(wanted) if current.get(k) != wanted.get(k)
    }
    diff = tuple(domain_xml.xml_diff(current.get("xml", ""), new_xml)) if new_xml != current.get("xml") else ()
    running = state.status in (VmStatus.STARTED, VmStatus.STARTING)
    restart = bool(diff) and running and domain_xml.needs_restart(current.get("xml", ""), new_xml)
    primitive_keys = {k for k in changes if k.startswith("_") and k not in RESERVED_KEYS}
    return UpdatePlan(
        vm=vm,
        xml_diff=diff,
        metadata_changes=changes,
        restart=restart,
        primitive_changed=state.enabled and bool(primitive_keys),
        new_metadata=wanted,
        removed_keys=tuple(k for k in current if k not in wanted),
        status=state.status,
    )


def _replace_primitive_configuration(services: Services, vm: str, settings: VmSettings) -> None:
    """Rewrite the VM's primitive and constraints in one CIB transaction (configuration replace)."""
    primitive = services.primitives().get(vm)
    if primitive is None:
        raise ConflictError(f"{vm} has no primitive to update")
    spec = primitive_spec(
        services,
        vm,
        settings,
        start=(primitive.target_role or "Started") == "Started",
        remote_nodes=remote_nodes(services),
    )
    if not services.pacemaker.replace_vm(vm, build_primitive(spec), build_constraints(spec)):
        raise ConflictError(f"{vm} has no primitive to update")


def plan_update(services: Services, plan: UpdatePlan) -> Task:
    vm = plan.vm
    if not plan.changed:
        raise ConflictError(f"{vm}: nothing to change")
    image = naming.system_image(vm)
    before = services.rbd.metadata(image)
    saved_configuration: dict[str, str] = {}

    def write(ctx: StepContext) -> None:
        services.rbd.metadata_remove(image, list(plan.removed_keys))
        services.rbd.metadata_set_many(image, {k: v for k, v in plan.new_metadata.items() if before.get(k) != v})

    def unwrite(ctx: StepContext) -> None:
        services.rbd.metadata_remove(image, [k for k in plan.new_metadata if k not in before])
        services.rbd.metadata_set_many(image, before)

    steps = [Step(f"write the new configuration of {vm}", write, unwrite, weight=0.3)]
    if plan.primitive_changed:

        def rewrite(ctx: StepContext) -> None:
            saved_configuration["xml"] = services.pacemaker.configuration_section()
            _replace_primitive_configuration(services, vm, VmSettings.from_metadata(plan.new_metadata))

        def unrewrite(ctx: StepContext) -> None:
            if "xml" in saved_configuration:
                services.pacemaker.replace_configuration(saved_configuration["xml"])

        steps.append(Step("rewrite the Pacemaker primitive and constraints", rewrite, unrewrite))
    if plan.restart:

        def restart(ctx: StepContext) -> None:
            services.pacemaker.set_target_role(vm, "Stopped")
            services.wait_status(
                vm, {VmStatus.STOPPED}, stop_timeout(services, vm), fail_on=set(), tick=ctx.check_cancel
            )
            services.wait_disks_released(vm, 30, tick=ctx.check_cancel)
            services.pacemaker.set_target_role(vm, "Started")
            services.wait_status(vm, {VmStatus.STARTED}, START_WAIT, tick=ctx.check_cancel)

        steps.append(Step(f"restart {vm} on its new definition", restart, None, weight=3))

    def done(ctx: StepContext) -> None:
        ctx.data["_summary"] = f"{vm} updated in place" + (" and restarted" if plan.restart else "")

    steps.append(Step("done", done, None, weight=0.01))
    return Task(
        "update",
        vm,
        {"changed": sorted(plan.metadata_changes), "restart": plan.restart},
        steps,
        description=f"update {vm} in place",
    )
