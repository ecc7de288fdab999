"""Update a VM in place (same name, same UUID): plan the change (settings, domain XML diff, whether a
restart is needed), then write it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from lxml import etree

from vmconsole.core.services import Services
from vmconsole.core.steps import START_WAIT, primitive_spec, remote_nodes, require_vm, run_crm_config_cmd, stop_timeout
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
    warnings: tuple[str, ...] = ()  # what the new domain XML can do on the host
    based_on: str = ""  # fingerprint of the configuration the plan was made from

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
        lines += [f"warning: {w}" for w in self.warnings]
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
        warnings=tuple(domain_xml.host_reaching(new_xml)) if diff and new_xml else (),
        based_on=fingerprint(current),
    )


def fingerprint(metadata: Mapping[str, str]) -> str:
    """What the plan was made from, in a few characters: equal configurations, equal fingerprints."""
    return hashlib.sha256(json.dumps(dict(sorted(metadata.items()))).encode()).hexdigest()[:16]


def _own_constraint_ids(services: Services, vm: str, settings: VmSettings, nodes: list[str]) -> set[str]:
    """The ids of the constraints vmconsole makes for the VM from these settings (nothing else is its)."""
    spec = primitive_spec(services, vm, settings, start=True, remote_nodes=nodes, problems=[])
    return {str(c.get("id")) for c in build_constraints(spec)}


def plan_update(services: Services, plan: UpdatePlan) -> Task:
    vm = plan.vm
    if not plan.changed:
        raise ConflictError(f"{vm}: nothing to change")
    image = naming.system_image(vm)
    before = services.rbd.metadata(image)

    def precheck() -> None:
        if plan.based_on and fingerprint(services.rbd.metadata(image)) != plan.based_on:
            raise ConflictError(
                f"the configuration of {vm} changed since this update was planned",
                hint="review the update again: its diff would not be what happens",
            )

    def write(ctx: StepContext) -> None:
        ctx.data["metadata_before"] = before  # what recover puts back should this process die
        ctx.save()
        services.rbd.metadata_remove(image, list(plan.removed_keys))
        services.rbd.metadata_set_many(image, {k: v for k, v in plan.new_metadata.items() if before.get(k) != v})

    def unwrite(ctx: StepContext) -> None:
        services.rbd.metadata_remove(image, [k for k in plan.new_metadata if k not in before])
        services.rbd.metadata_set_many(image, before)
        # the restart's undo waits until here (this step's undo runs last): started any earlier, the VM
        # would boot on the new definition, and its agent would write the new figures into the primitive
        primitive = services.primitives().get(vm) if plan.restart else None
        if primitive is not None and primitive.target_role == "Stopped":
            services.pacemaker.set_target_role(vm, "Started")
            services.wait_status(vm, {VmStatus.STARTED}, START_WAIT, tick=ctx.check_cancel)

    steps = [Step(f"write the new configuration of {vm}", write, unwrite, weight=0.3)]
    if plan.primitive_changed:
        old_settings = VmSettings.from_metadata(before)
        new_settings = VmSettings.from_metadata(plan.new_metadata)

        def rewrite(ctx: StepContext) -> None:
            # only the VM's primitive and the constraints vmconsole makes for it change, in one CIB patch
            # that applies to the CIB as read or not at all; other tools' constraints stay as they are
            primitive = services.primitives().get(vm)
            if primitive is None:
                raise ConflictError(f"{vm} has no primitive to update")
            nodes = remote_nodes(services)
            old_ids = _own_constraint_ids(services, vm, old_settings, nodes)
            problems: list[str] = []
            spec = primitive_spec(
                services,
                vm,
                new_settings,
                start=(primitive.target_role or "Started") == "Started",
                remote_nodes=nodes,
                problems=problems,
            )
            for problem in problems:
                ctx.log(f"warning: {problem}")
            new_constraints = build_constraints(spec)
            saved_primitive, saved_constraints = services.pacemaker.vm_elements(vm, old_ids)
            ctx.data["saved_primitive"] = saved_primitive
            ctx.data["saved_constraints"] = saved_constraints
            ctx.data["added_constraints"] = sorted(str(c.get("id")) for c in new_constraints)
            ctx.save()
            if not services.pacemaker.update_vm(vm, build_primitive(spec), old_ids, new_constraints):
                raise ConflictError(f"{vm} has no primitive to update")
            ctx.data["primitive_rewritten"] = True
            ctx.save()
            # vm_manager's update is a disable and an enable: its stored crm lines run again
            made = run_crm_config_cmd(services, new_settings.crm_config_cmd, ctx)
            ctx.data["added_constraints"] = sorted({*ctx.data["added_constraints"], *made})
            ctx.save()

        def unrewrite(ctx: StepContext) -> None:
            if ctx.data.get("primitive_rewritten") and ctx.data.get("saved_primitive"):
                # a VM the restart's undo stopped stays stopped until its old configuration is back
                current = services.primitives().get(vm)
                services.pacemaker.restore_vm(
                    vm,
                    ctx.data["saved_primitive"],
                    set(ctx.data["added_constraints"]),
                    ctx.data["saved_constraints"],
                    target_role="Stopped" if current is not None and current.target_role == "Stopped" else None,
                )

        steps.append(Step("rewrite the Pacemaker primitive and constraints", rewrite, unrewrite))
    if plan.restart:

        def restart(ctx: StepContext) -> None:
            ctx.data["restarting"] = True
            services.pacemaker.set_target_role(vm, "Stopped")
            services.wait_status(
                vm, {VmStatus.STOPPED}, stop_timeout(services, vm), fail_on=set(), tick=ctx.check_cancel
            )
            services.wait_disks_released(vm, 30, tick=ctx.check_cancel)
            services.pacemaker.set_target_role(vm, "Started")
            services.wait_status(vm, {VmStatus.STARTED}, START_WAIT, tick=ctx.check_cancel)

        def stop_again(ctx: StepContext) -> None:
            # stopped here, started again by the first step's undo once the old configuration is back
            if ctx.data.get("restarting") and vm in services.primitives():
                services.pacemaker.set_target_role(vm, "Stopped")
                services.wait_status(vm, {VmStatus.STOPPED}, stop_timeout(services, vm), fail_on=set())
                services.wait_disks_released(vm, 30)

        steps.append(Step(f"restart {vm} on its new definition", restart, stop_again, weight=3))

    def done(ctx: StepContext) -> None:
        ctx.data["_summary"] = f"{vm} updated in place" + (" and restarted" if plan.restart else "")

    steps.append(Step("done", done, None, weight=0.01))
    return Task(
        "update",
        vm,
        {"changed": sorted(plan.metadata_changes), "restart": plan.restart},
        steps,
        description=f"update {vm} in place",
        precheck=precheck,
        warnings=plan.warnings,
    )
