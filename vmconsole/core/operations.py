"""The operations vm_manager cannot do or does unsafely: update in place (same name and UUID), move /
live-migrate, node standby/online with a report of where each VM went, diagnose, import a local
libvirt VM (add-to-cluster), and the console of a VM wherever it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from vmconsole.core.services import Services
from vmconsole.core.tasks import Step, StepContext, Task
from vmconsole.core.vms import (
    START_WAIT,
    CreateSpec,
    VmOptions,
    _check_metadata,
    _check_options,
    _remote_nodes,
    _require_vm,
    _stop_timeout,
    build_final_xml,
    plan_create,
    primitive_spec,
)
from vmconsole.domain import domain_xml, naming, validate, xmlsafe
from vmconsole.domain.errors import ConflictError, NotFoundError, ValidationError, VmConsoleError
from vmconsole.domain.model import VmStatus
from vmconsole.domain.primitive_builder import build_constraints, build_primitive
from vmconsole.domain.settings import RESERVED_KEYS, VmSettings
from vmconsole.domain.units import duration_seconds


# ---------------------------------------------------------------------------------------------- update
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
    _require_vm(services, vm)
    state = services.vm(vm)
    image = naming.system_image(vm)
    current = services.rbd.metadata(image)
    settings = VmSettings.from_metadata(current)
    options = options or VmOptions()
    new_settings = _check_options(services, options, settings, services.node_names())
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
    wanted.update(_check_metadata(options.metadata))
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
    cib = xmlsafe.parse(services.pacemaker.cib_xml(), what="CIB")
    configuration = cib.find("configuration")
    if configuration is None:
        raise VmConsoleError("the CIB has no configuration section")
    primitive = next((p for p in configuration.iterfind("resources//primitive") if p.get("id") == vm), None)
    if primitive is None:
        raise ConflictError(f"{vm} has no primitive to update")
    meta = {nv.get("name"): nv.get("value") for nv in primitive.iterfind("meta_attributes/nvpair")}
    spec = primitive_spec(
        services,
        vm,
        settings,
        start=(meta.get("target-role") or "Started") == "Started",
        remote_nodes=_remote_nodes(services),
    )
    replacement = build_primitive(spec)
    parent = primitive.getparent()
    assert parent is not None
    parent.replace(primitive, replacement)
    constraints = configuration.find("constraints")
    if constraints is None:
        constraints = etree.SubElement(configuration, "constraints")
    for element in list(constraints):
        cid = element.get("id", "")
        if element.get("rsc") == vm or cid.startswith((f"colocation-{vm}-with", f"colocation-strong-{vm}-with")):
            constraints.remove(element)
    constraints.extend(build_constraints(spec))
    services.pacemaker.replace_configuration(etree.tostring(configuration, encoding="unicode"))


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
            cib = xmlsafe.parse(services.pacemaker.cib_xml(), what="CIB")
            section = cib.find("configuration")
            assert section is not None
            saved_configuration["xml"] = etree.tostring(section, encoding="unicode")
            _replace_primitive_configuration(services, vm, VmSettings.from_metadata(plan.new_metadata))

        def unrewrite(ctx: StepContext) -> None:
            if "xml" in saved_configuration:
                services.pacemaker.replace_configuration(saved_configuration["xml"])

        steps.append(Step("rewrite the Pacemaker primitive and constraints", rewrite, unrewrite))
    if plan.restart:

        def restart(ctx: StepContext) -> None:
            services.pacemaker.set_target_role(vm, "Stopped")
            services.wait_status(
                vm, {VmStatus.STOPPED}, _stop_timeout(services, vm), fail_on=set(), tick=ctx.check_cancel
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


# ---------------------------------------------------------------------------------------------- move
def plan_move(services: Services, vm: str, node: str) -> Task:
    _require_vm(services, vm)
    state = services.vm(vm)
    mon = services.crm_mon()
    members = [n.name for n in mon.nodes if n.kind == "member"]
    validate.node_name(node, members, field="node")
    target = mon.node(node)
    if target is None or target.status.value != "online":
        raise ConflictError(f"node {node} is {target.status.value if target else 'unknown'}: it cannot take a VM")
    if not state.enabled:
        raise ConflictError(f"{vm} is disabled: it runs nowhere", hint=f"enable it with --pinned-host {node}")
    if state.status is not VmStatus.STARTED:
        raise ConflictError(f"{vm} is {state.status.value}: only a Started VM can be moved")
    if state.node == node:
        raise ConflictError(f"{vm} already runs on {node}")
    settings = VmSettings.from_metadata(services.rbd.metadata(naming.system_image(vm)))
    if settings.pinned_host:
        raise ConflictError(
            f"{vm} is pinned to {settings.pinned_host}",
            hint=f"change it with `vmconsole vm update {vm} --pinned-host {node}`",
        )
    live = settings.live_migration

    def move(ctx: StepContext) -> None:
        ctx.data["from"] = state.node
        ctx.log(f"{'live-migrating' if live else 'moving (stop and start)'} {vm} from {state.node} to {node}")
        services.pacemaker.move(vm, node)
        timeout = START_WAIT + _stop_timeout(services, vm) + duration_seconds(settings.migrate_to_timeout, 120.0)
        deadline = time.monotonic() + timeout
        while True:
            status, where = services.vm_status(vm)
            if status is VmStatus.STARTED and where == node:
                break
            if status is VmStatus.FAILED:
                raise VmConsoleError(
                    f"{vm} failed while moving to {node}", hint=f"`vmconsole vm diagnose {vm}` shows why"
                )
            if time.monotonic() > deadline:
                raise VmConsoleError(
                    f"{vm} did not arrive on {node} within {timeout:.0f} s (now {status.value} on {where or 'no node'})"
                )
            ctx.check_cancel()
            time.sleep(0.3)

    def unmove(ctx: StepContext) -> None:
        services.pacemaker.clear_move(vm)
        _restore_preference(services, vm, settings)

    def clear(ctx: StepContext) -> None:
        # the temporary location constraint goes; a stored preference is moved to the new node
        services.pacemaker.clear_move(vm)
        if settings.preferred_host:
            image = naming.system_image(vm)
            services.rbd.metadata_set_many(image, {"_preferred_host": node})
            _restore_preference(services, vm, settings.with_changes(preferred_host=node))
            ctx.log(f"the preferred host of {vm} is now {node}")
        ctx.data["_summary"] = f"{vm} moved from {state.node} to {node}" + (" (live)" if live else "")

    return Task(
        "move",
        vm,
        {"node": node, "live": live},
        [
            Step(f"move {vm} to {node} and wait for it", move, unmove, weight=3),
            Step("remove the temporary location constraint", clear, None, weight=0.2),
        ],
        description=f"move {vm} to {node}",
    )


def _restore_preference(services: Services, vm: str, settings: VmSettings) -> None:
    if settings.preferred_host:
        from vmconsole.domain.primitive_builder import build_prefer_location

        fragment = etree.Element("configuration")
        etree.SubElement(fragment, "constraints").append(build_prefer_location(vm, settings.preferred_host))
        services.pacemaker.modify_configuration(etree.tostring(fragment, encoding="unicode"))


# ---------------------------------------------------------------------------------------------- nodes
def _placement(services: Services) -> dict[str, str | None]:
    state = services.state()
    return {vm.name: vm.node for vm in state.vms if vm.enabled}


def plan_node_standby(services: Services, node: str, standby: bool, *, wait: float = 600) -> Task:
    mon = services.crm_mon()
    validate.node_name(node, [n.name for n in mon.nodes], field="node")
    current = mon.node(node)
    assert current is not None
    if standby and current.status.value == "standby":
        raise ConflictError(f"node {node} is already in standby")
    if not standby and current.status.value == "online":
        raise ConflictError(f"node {node} is already online")
    before = _placement(services)

    def run(ctx: StepContext) -> None:
        services.pacemaker.set_standby(node, standby)
        deadline = time.monotonic() + wait
        services.pacemaker.wait_idle(min(wait, 300))
        while standby and any(where == node for where in _placement(services).values()):
            if time.monotonic() > deadline:
                raise VmConsoleError(f"VMs still run on {node} after {wait:.0f} s")
            ctx.check_cancel()
            time.sleep(0.5)
        after = _placement(services)
        moves = {vm: (before.get(vm), after.get(vm)) for vm in after if before.get(vm) != after.get(vm)}
        ctx.data["moves"] = {vm: {"from": a, "to": b} for vm, (a, b) in moves.items()}
        report = ", ".join(f"{vm}: {a or '-'} -> {b or 'stopped'}" for vm, (a, b) in sorted(moves.items()))
        ctx.data["_summary"] = f"node {node} {'in standby' if standby else 'online'}" + (
            f"; {report}" if report else "; no VM moved"
        )

    def undo(ctx: StepContext) -> None:
        services.pacemaker.set_standby(node, not standby)

    verb = "standby" if standby else "online"
    return Task(
        f"node-{verb}",
        None,
        {"node": node},
        [Step(f"put {node} {verb} and wait", run, undo)],
        locks=[],
        description=f"node {node} {verb}",
    )


# ---------------------------------------------------------------------------------------------- diagnose
def diagnose(services: Services, vm: str) -> dict[str, Any]:
    """What an on-call operator needs to see why a VM failed, in one place."""
    state = services.vm(vm)
    report: dict[str, Any] = {
        "vm": vm,
        "status": state.status.value,
        "node": state.node,
        "enabled": state.enabled,
        "target_role": state.target_role,
        "managed": state.managed,
        "blocked": state.blocked,
        "fail_count": state.fail_count,
        "failures": [
            {
                "operation": f.operation,
                "node": f.node,
                "status": f.exit_status,
                "reason": f.exit_reason,
                "rc": f.exit_code,
                "when": f.when.isoformat() if f.when else None,
            }
            for f in (state.resource.failures if state.resource else ())
        ],
        "problems": list(state.problems),
    }
    history: list[dict[str, str]] = []
    try:
        text = services.pacemaker.operations_xml()
        root = xmlsafe.parse(text, what="crm_mon output")
        for node in root.iterfind("node_history/node"):
            for resource in node.iterfind("resource_history"):
                if resource.get("id") != vm:
                    continue
                for op in resource.iterfind("operation_history"):
                    history.append({"node": node.get("name", ""), **{str(k): str(v) for k, v in op.attrib.items()}})
    except VmConsoleError as exc:
        report["problems"].append(f"operation history: {exc}")
    report["operations"] = history
    try:
        with services.libvirt() as lv:
            local = lv.hostname()
            report["libvirt_host"] = local
            report["libvirt_state"] = lv.domain_state(vm)
            where = state.node or local
            if where == local:
                report["qemu_log"] = lv.qemu_log_tail(vm, 40)
            else:
                report["qemu_log"] = [f"(the QEMU log is on {where}: /var/log/libvirt/qemu/{vm}.log)"]
    except VmConsoleError as exc:
        report["problems"].append(f"libvirt: {exc}")
    return report


# ---------------------------------------------------------------------------------------------- import
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
    root = xmlsafe.parse(xml, what="domain XML", field="xml")
    devices = root.find("devices")
    if devices is None:
        raise ValidationError("the domain has no <devices>", field="xml")
    sources: list[str] = []
    for disk in list(devices.iterfind("disk")):
        if disk.get("device", "disk") != "disk":
            continue
        source = disk.find("source")
        path = (source.get("file") or source.get("dev")) if source is not None else None
        if not path:
            target = disk.find("target")
            dev = target.get("dev", "?") if target is not None else "?"
            raise ValidationError(f"disk {dev} is not a local file or device", field="xml")
        sources.append(path)
        devices.remove(disk)
    if not sources:
        raise ValidationError(f"domain {domain} has no disk to import", field="xml")
    base = etree.tostring(root, encoding="unicode")
    if name != domain:
        base = domain_xml.strip_uuid(base)
    spec = CreateSpec(
        name=name, image=sources[0], xml=base, data_disks=sources[1:], disk_bus=disk_bus, options=options or VmOptions()
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


# ---------------------------------------------------------------------------------------------- console
def console_argv(services: Services, vm: str) -> list[str]:
    """The argv that opens the VM's serial console on whichever node runs it."""
    state = services.vm(vm)
    if state.status is not VmStatus.STARTED or not state.node:
        raise ConflictError(f"{vm} is {state.status.value}: it has no console now")
    with services.libvirt() as lv:
        local = lv.hostname()
    if state.node == local or state.node == local.split(".")[0]:
        uri = services.config.libvirt.uri
    else:
        uri = f"qemu+ssh://{services.config.console.ssh_user}@{state.node}/system"
    return ["virsh", "-c", uri, "console", vm]
