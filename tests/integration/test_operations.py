"""Update in place, move, node drain, diagnose, import, console, colocation, pacemaker-remote."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.helpers import checksum, cli, cli_json, create_vm, leftovers, random_qcow2
from vmconsole.config import Config
from vmconsole.core import placement, vms
from vmconsole.core.services import Services
from vmconsole.domain import naming
from vmconsole.domain.errors import ConflictError, NotFoundError, ValidationError
from vmconsole.domain.model import VmStatus
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml

pytestmark = pytest.mark.lab


def test_update_in_place_keeps_name_and_uuid(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name)
    before = services.vm(vm_name)
    # a settings change that needs no restart
    plan = vms.update_plan(services, vm_name, options=vms.VmOptions(priority=7))
    assert plan.metadata_changes["_priority"] == (None, "7") and not plan.restart and plan.primitive_changed
    services.run(vms.plan_update(services, plan))
    assert services.primitives()[vm_name].meta["priority"] == "7"
    # a domain change (memory) restarts the VM, on the same name and UUID
    state = lab.state()
    assert state is not None
    bigger = base_xml(lab, vm_name, state.domain_type).replace(
        "<memory unit='MiB'>64</memory>", "<memory unit='MiB'>80</memory>"
    )
    plan = vms.update_plan(services, vm_name, xml=bigger)
    assert plan.restart
    assert any("81920" in line or "80" in line for line in plan.xml_diff), plan.xml_diff
    xml_file = lab.paths.guests / f"{vm_name}-update.xml"
    xml_file.write_text(bigger)
    dry = cli_json(lab_config, "vm", "update", vm_name, "--xml", str(xml_file), "--dry-run")
    assert dry["restart"] is True and dry["xml_diff"]
    services.run(vms.plan_update(services, plan))
    after = services.vm(vm_name)
    assert after.uuid == before.uuid and after.name == vm_name
    assert after.status is VmStatus.STARTED
    assert ">80</memory>" in services.rbd.metadata(naming.system_image(vm_name))["xml"]
    with pytest.raises(ConflictError, match="nothing to change"):
        vms.plan_update(services, vms.update_plan(services, vm_name))
    # a preferred host is set, then cleared (an empty string), constraint included
    node = services.node_names()[0]
    services.run(
        vms.plan_update(services, vms.update_plan(services, vm_name, options=vms.VmOptions(preferred_host=node)))
    )
    assert services.primitives()[vm_name].preferred_host == node
    services.run(
        vms.plan_update(services, vms.update_plan(services, vm_name, options=vms.VmOptions(preferred_host="")))
    )
    assert services.primitives()[vm_name].preferred_host is None
    assert "_preferred_host" not in services.rbd.metadata(naming.system_image(vm_name))


def test_move_refusals_on_one_node(services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name)
    node = services.vm(vm_name).node
    assert node
    with pytest.raises(ConflictError, match="already runs on"):
        placement.plan_move(services, vm_name, node)
    with pytest.raises(ValidationError, match="not a cluster node"):
        placement.plan_move(services, vm_name, "nosuchnode")


def test_node_standby_drains_and_online_brings_back(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name)
    node = services.node_names()[0]
    result = services.run(placement.plan_node_standby(services, node, True))
    try:
        assert result.data["moves"][vm_name] == {"from": node, "to": None}
        assert f"{vm_name}: {node} -> stopped" in result.message
        assert services.vm(vm_name).status is VmStatus.STOPPED
        with pytest.raises(ConflictError, match="already in standby"):
            placement.plan_node_standby(services, node, True)
    finally:
        services.run(placement.plan_node_standby(services, node, False))
    services.wait_status(vm_name, {VmStatus.STARTED}, 120)


def test_diagnose_and_cleanup_of_a_failed_vm(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    image = naming.system_image(vm_name)
    broken = services.rbd.metadata(image)["xml"].replace(f"rbd/{image}", "rbd/nosuchimage")
    services.rbd.metadata_set_many(image, {"xml": broken})
    services.run(vms.plan_enable(services, vm_name, start=False))
    services.pacemaker.set_target_role(vm_name, "Started")
    services.wait_status(vm_name, {VmStatus.FAILED}, 120, fail_on=set())
    vm = services.vm(vm_name)
    assert vm.failed and vm.last_failure is not None
    assert vm.last_failure.operation == "start"
    report = cli_json(lab_config, "vm", "diagnose", vm_name)
    assert report["status"] == "Failed"
    assert report["failures"] and report["failures"][0]["operation"] == "start"
    assert any(op.get("task") == "start" for op in report["operations"])
    assert any("nosuchimage" in line or "error" in line.lower() for line in report["qemu_log"])
    with pytest.raises(ConflictError, match="cleanup"):
        vms.plan_start(services, vm_name)
    services.pacemaker.set_target_role(vm_name, "Stopped")
    services.run(vms.plan_cleanup(services, vm_name))
    deadline = time.monotonic() + 60
    while services.vm(vm_name).fail_count:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert services.vm(vm_name).status is VmStatus.STOPPED


def test_import_a_local_libvirt_domain(services: Services, lab: Lab, tmp_path: Path, cleanup_vms: list[str]) -> None:
    name = "imp" + uuid.uuid4().hex[:8]
    cleanup_vms.append(name)
    disk = random_qcow2(tmp_path / "local.qcow2", 16)
    state = lab.state()
    assert state is not None
    xml = base_xml(lab, name, state.domain_type).replace(
        "<emulator>/usr/bin/qemu-system-x86_64</emulator>",
        "<emulator>/usr/bin/qemu-system-x86_64</emulator>"
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>"
        "<target dev='vda' bus='virtio'/></disk>",
    )
    domain_file = tmp_path / "domain.xml"
    domain_file.write_text(xml)
    subprocess.run(["virsh", "-q", "-c", lab_config_uri(services), "define", str(domain_file)], check=True)
    raw = tmp_path / "local.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(disk), str(raw)], check=True)
    import hashlib

    expected = hashlib.sha256(raw.read_bytes()).hexdigest()
    try:
        # offered by the import form: shut off, outside the cluster; no cluster VM is offered
        offered = {d.name: d for d in vms.local_domains(services)}
        assert offered[name] == vms.LocalDomain(name, "shut off") and offered[name].importable
        assert not set(offered) & set(services.rbd.group_names())
        services.run(vms.plan_import(services, name, options=vms.VmOptions(enable=False)))
        assert name not in {d.name for d in vms.local_domains(services)}  # a cluster VM now
        # before the clean-up below could undefine it: the import itself removed the local definition
        with services.libvirt() as lv:
            assert lv.domain_xml(name) is None, "the local definition is gone after a successful import"
    finally:
        subprocess.run(
            ["virsh", "-q", "-c", lab_config_uri(services), "undefine", name],
            check=False,
            capture_output=True,
            timeout=60,
        )
    assert checksum(services, naming.system_image(name)) == expected
    assert services.vm(name).status is VmStatus.DISABLED


def lab_config_uri(services: Services) -> str:
    return services.config.libvirt.uri


def test_console_colocation_and_remote(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    other = vm_name + "o"
    cleanup_vms += [vm_name, other]  # removed in reverse order of need: the partner last
    create_vm(services, lab, vm_name)
    create_vm(services, lab, other, enable=False)
    assert vms.console_argv(services, vm_name) == ["virsh", "-c", lab_config.libvirt.uri, "console", vm_name]
    with pytest.raises(ConflictError):
        vms.console_argv(services, other)
    partner = vm_name + "p"
    cleanup_vms.append(partner)
    create_vm(services, lab, partner)
    with pytest.raises(ValidationError, match="no Pacemaker resource"):
        vms.plan_colocate(services, vm_name, ["nosuchresource"])
    services.run(vms.plan_colocate(services, vm_name, [partner], strong=True))
    constraint = f"colocation-strong-{vm_name}-with{partner}"
    assert any(c.constraint_id == constraint for c in services.primitives()[vm_name].colocations)
    # uncolocate takes it out of the CIB and the metadata; a second time says it is not there
    services.run(vms.plan_uncolocate(services, vm_name, [partner]))
    assert not services.primitives()[vm_name].colocations
    assert "_vmconsole_colocations" not in services.rbd.metadata(naming.system_image(vm_name))
    with pytest.raises(NotFoundError) as absent:
        vms.plan_uncolocate(services, vm_name, [partner])
    assert absent.value.reason == "already_absent"
    services.run(vms.plan_colocate(services, vm_name, [partner], strong=True))
    services.run(vms.plan_disable(services, vm_name))
    services.run(vms.plan_enable(services, vm_name))
    assert any(c.constraint_id == constraint for c in services.primitives()[vm_name].colocations), (
        "the colocation is re-applied on enable"
    )
    # the partner can go although vm_name's colocation names it; vm_name is still enabled again after
    services.run(vms.plan_remove(services, partner))
    assert not any(c.constraint_id == constraint for c in services.primitives()[vm_name].colocations)
    services.run(vms.plan_disable(services, vm_name))
    services.run(vms.plan_enable(services, vm_name))
    assert vm_name in services.primitives()
    services.run(vms.plan_remote(services, other, remote_name="remote1", address="127.0.0.1", port=3121))
    meta = services.rbd.metadata(naming.system_image(other))
    assert meta["_remote_node"] == "remote1" and meta["_remote_node_port"] == "3121"
    services.run(vms.plan_remote(services, other, remote_name=None))
    assert "_remote_node" not in services.rbd.metadata(naming.system_image(other))
    result = cli(lab_config, "remote", "remove", other)
    assert result.returncode == ConflictError.exit_code
    assert leftovers(services, "nothing" + vm_name) == []
