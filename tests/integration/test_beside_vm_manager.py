"""vmconsole beside vm_manager on the real lab, both directions: vm_manager's own crmsh command
sequences (its enable, disable, list and status) on VMs vmconsole made, and vmconsole's operations on
VMs made the vm_manager way (its RBD layout, its metadata, its primitive through crmsh).

``VmManagerCrm`` below runs the crm commands vm_manager's Pacemaker helper runs, in its order, with its
arguments; it is written from the description of vm_manager's behaviour, not copied. The snapshot half
of the interoperability suite is in ``test_beside_vm_manager_snapshots.py``.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.helpers import cli_json, create_vm, leftovers
from vmconsole.config import Config
from vmconsole.core import snapshots, vms
from vmconsole.core.services import Services
from vmconsole.domain import naming
from vmconsole.domain.errors import VmConsoleError
from vmconsole.domain.model import VmStatus
from vmconsole.lab.lab import Lab
from vmconsole.lab.paths import default_dir
from vmconsole.lab.seed import base_xml

pytestmark = pytest.mark.lab


def crm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """crm as on a SEAPATH node: in the mount namespace of the lab's pacemaker, where the
    ocf:seapath:VirtualDomain agent is (crmsh reads the agent's metadata to create a primitive)."""
    state = Lab(default_dir()).state()
    assert state is not None and state.pids.get("pacemakerd")
    argv = ["nsenter", "-t", str(state.pids["pacemakerd"]), "-m", "crm", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=check)


class VmManagerCrm:
    """vm_manager's Pacemaker helper: ``crm resource status`` parsing, ``enable_vm``'s crm sequence
    (primitive unmanaged, bans, pin or prefer, the stored crm lines, manage), ``disable_vm``."""

    @staticmethod
    def resource_lines() -> dict[str, str]:
        """``list_resources`` and ``show``: name -> the third tab-separated field, left-stripped."""
        out = crm("resource", "status", check=False).stdout
        found: dict[str, str] = {}
        for line in out.splitlines():
            if "ocf:seapath:VirtualDomain" not in line and "ocf::seapath:VirtualDomain" not in line:
                continue
            fields = line.split("\t")
            if len(fields) == 3:
                found[fields[0].replace("*", "").strip()] = fields[2].lstrip()
        return found

    @classmethod
    def status(cls, services: Services, vm: str) -> str:
        """``status(vm)``: Undefined without the group, Disabled without the resource, else crm's text."""
        if vm not in services.rbd.group_names():
            return "Undefined"
        return cls.resource_lines().get(vm, "Disabled")

    @staticmethod
    def enable(services: Services, vm: str, *, nostart: bool = True) -> None:
        meta = services.rbd.metadata(naming.system_image(vm))
        user = meta.get("_migration_user", "root")
        params = json.loads(meta.get("_pacemaker_params", "{}"))
        custom_meta = json.loads(meta.get("_pacemaker_meta", "{}"))
        utilization = json.loads(meta.get("_pacemaker_utilization", "{}"))
        argv = [
            "configure",
            "primitive",
            vm,
            "ocf:seapath:VirtualDomain",
            "params",
            "force_stop=false",
            f"migration_downtime={meta.get('_migration_downtime', '0')}",
            f"config={services.config.pacemaker.xml_dir}/{vm}.xml",
            "hypervisor=qemu:///system",
            "seapath=true",
            "migration_transport=ssh",
            f"migration_user={user}",
            *[f"{k}={v}" for k, v in params.items()],
            "meta",
            f"allow-migrate={meta.get('_live_migration', 'false')}",
            "is-managed=false",
            f"priority={meta.get('_priority', '0')}",
            f"target-role={'Stopped' if nostart else 'Started'}",
            *[f"{k}={v}" for k, v in custom_meta.items()],
            "op",
            "start",
            "timeout=120",
            "op",
            "stop",
            f"timeout={meta.get('_stop_timeout', '30')}",
            "op",
            "migrate_from",
            "timeout=60",
            "op",
            "migrate_to",
            f"timeout={meta.get('_migrate_to_timeout', '120')}",
            "op",
            "monitor",
            "timeout=60",
            "interval=10",
        ]
        if utilization:
            argv += ["utilization", *[f"{k}={v}" for k, v in utilization.items()]]
        crm(*argv)
        for line in meta.get("_crm_config_cmd", "").split("\n"):
            if line:
                crm("configure", *line.split(" "))
        crm("resource", "manage", vm)

    @classmethod
    def disable(cls, vm: str) -> None:
        text = cls.resource_lines().get(vm)
        if text is None:
            return
        if text.split(" ")[0] == "FAILED":
            crm("resource", "clean")
        crm("configure", "delete", *([] if text.startswith("Stopped") else ["--force"]), vm)


def make_the_vm_manager_way(services: Services, lab: Lab, vm: str, extra: dict[str, str]) -> None:
    """A VM as vm_manager's create leaves it: the group, the disk in it, the metadata on the disk."""
    state = lab.state()
    assert state is not None
    image = naming.system_image(vm)
    services.rbd.create_group(vm)
    services.rbd.create_image(image, 64 << 20)
    services.rbd.group_add(vm, image)
    xml = base_xml(lab, vm, state.domain_type)
    services.rbd.metadata_set_many(image, {"vm_name": vm, "xml": xml, "_base_xml": xml, **extra})


def constraint_ids() -> set[str]:
    out = subprocess.run(
        ["cibadmin", "--query", "--scope", "constraints"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return {str(c.get("id")) for c in etree.fromstring(out.encode(), parser) if c.get("id")}


def test_vmconsole_operates_a_vm_made_the_vm_manager_way(
    services: Services, lab: Lab, lab_config: Config, vm_name: str, cleanup_vms: list[str]
) -> None:
    vm, digit_vm = vm_name + "m", "9" + vm_name
    clone = vm_name + "c"
    cleanup_vms += [clone, vm, digit_vm]
    node = services.node_names()[0]
    # settings vm_manager accepts and vmconsole would not write: shown with a warning, never blocking
    make_the_vm_manager_way(
        services,
        lab,
        vm,
        {
            "_priority": "high",
            "_pacemaker_utilization": json.dumps({"cpu": "1.5", "hv_memory": "64"}),
            "_pacemaker_meta": json.dumps({"resource-stickiness": "100"}),
            "_crm_config_cmd": f"location loc-{vm}-pref {vm} 50: {node}",
            "_seapathcustom": "kept",
        },
    )
    VmManagerCrm.enable(services, vm)

    # listed and read as vm_manager reads it
    listed = {v["name"]: v for v in cli_json(lab_config, "vm", "list")["vms"]}
    assert listed[vm]["status"] == "Stopped"
    detail = cli_json(lab_config, "vm", "status", vm)
    assert detail["vm_manager_status"] == VmManagerCrm.status(services, vm) == "Stopped (disabled)"

    # disable and enable through vmconsole: the bad stored values are left out with a warning, the
    # stored crm line runs again, after the primitive exists and before it is managed
    services.run(vms.plan_disable(services, vm))
    assert VmManagerCrm.status(services, vm) == "Disabled"
    services.run(vms.plan_enable(services, vm, start=False))
    primitive = services.primitives()[vm]
    assert primitive.managed and primitive.meta.get("resource-stickiness") == "100"
    assert "cpu" not in primitive.utilization and primitive.meta.get("priority") == "0"
    assert f"loc-{vm}-pref" in constraint_ids()

    # an update keeps what other tools made and replays the stored crm line
    crm("configure", "location", f"other-{vm}", vm, "-100:", "nosuchnode")  # another tool's constraint
    plan = vms.update_plan(services, vm, options=vms.VmOptions(stop_timeout="45"))
    services.run(vms.plan_update(services, plan))
    ids = constraint_ids()
    assert {f"loc-{vm}-pref", f"other-{vm}"} <= ids
    assert services.primitives()[vm].operation("stop").timeout == "45"  # type: ignore[union-attr]

    # a clone inherits what vm_manager's clone inherits: the crm lines and unknown `_` keys
    services.run(vms.plan_clone(services, vms.CloneSpec(source=vm, name=clone, options=vms.VmOptions(enable=False))))
    clone_meta = services.rbd.metadata(naming.system_image(clone))
    assert clone_meta["_crm_config_cmd"] == f"location loc-{vm}-pref {vm} 50: {node}"
    assert clone_meta["_seapathcustom"] == "kept"

    # a name vm_manager accepts (a leading digit) is listed and operable; only enabling it is refused
    make_the_vm_manager_way(services, lab, digit_vm, {})
    assert digit_vm in {v["name"] for v in cli_json(lab_config, "vm", "list")["vms"]}
    assert services.vm(digit_vm).status is VmStatus.DISABLED
    services.run(snapshots.plan_snapshot_create(services, digit_vm, "before"))
    assert "before" in {s.name for s in services.vm(digit_vm).snapshots}
    with pytest.raises(VmConsoleError):
        services.run(vms.plan_enable(services, digit_vm, start=False))
    assert digit_vm not in services.primitives()

    for name in (clone, vm, digit_vm):
        services.run(vms.plan_remove(services, name))
        assert leftovers(services, name) == []
    assert f"other-{vm}" not in constraint_ids()


def test_vm_manager_crm_sequences_on_a_vm_vmconsole_made(
    services: Services, lab: Lab, lab_config: Config, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, start=False)
    services.run(snapshots.plan_snapshot_create(services, vm_name, "kept"))
    # vm_manager's list and status read it, and agree with what vmconsole reports for scripts
    assert vm_name in VmManagerCrm.resource_lines()
    assert VmManagerCrm.status(services, vm_name) == services.vm(vm_name).vm_manager_status == "Stopped (disabled)"

    # vm_manager's disable (crm configure delete) and enable (crm configure primitive ...) of it
    VmManagerCrm.disable(vm_name)
    assert services.vm(vm_name).status is VmStatus.DISABLED
    VmManagerCrm.enable(services, vm_name)
    state = services.vm(vm_name)
    assert state.status is VmStatus.STOPPED and state.vm_manager_status == "Stopped (disabled)"

    # vmconsole goes on operating it: disable, enable, and its records go with it
    services.run(vms.plan_disable(services, vm_name))
    services.run(vms.plan_enable(services, vm_name, start=False))
    assert vm_name in services.primitives()

    # vm_manager's remove (the VM's disks and group; it knows nothing of vmconsole's records): a new
    # VM of the same name does not inherit the old one's snapshot records
    VmManagerCrm.disable(vm_name)
    for image in services.rbd.group_images(vm_name):
        services.rbd.group_remove_image(vm_name, image)
        for snap in services.rbd.image_info(image).snapshots:
            if snap.namespace == "user":
                services.rbd.image_snap_remove(image, snap.name)
        services.rbd.remove_image(image)
    services.rbd.remove_group(vm_name)
    assert services.rbd.omap_get(naming.snapshot_records_object(vm_name))  # still there: vm_manager's way
    create_vm(services, lab, vm_name, enable=False)
    assert not services.rbd.omap_get(naming.snapshot_records_object(vm_name))
    assert "kept" not in {s.name for s in services.vm(vm_name).snapshots}
