"""VM lifecycle operations against the real lab, with their compensation and bad inputs."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.helpers import (
    another_operator_holds,
    checksum,
    cli,
    cli_json,
    create_vm,
    inject_failure,
    leftovers,
    make_spec,
    write_pattern,
)
from vmconsole.config import Config
from vmconsole.core import vms
from vmconsole.core.services import Services
from vmconsole.domain import naming
from vmconsole.domain.errors import ConflictError, LockedError, NotFoundError, ValidationError, VmConsoleError
from vmconsole.domain.model import VmStatus
from vmconsole.lab.lab import Lab

pytestmark = pytest.mark.lab


def test_create_start_stop_disable_enable_remove(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, data_disks=2, metadata={"role": "test"}, priority=5, stop_timeout="20s")
    vm = services.vm(vm_name)
    assert vm.status is VmStatus.STARTED
    assert vm.node == services.node_names()[0]
    assert [d.image for d in vm.disks] == [naming.system_image(vm_name), f"data_{vm_name}_0", f"data_{vm_name}_1"]
    assert dict(vm.metadata) == {"role": "test"}
    meta = services.rbd.metadata(naming.system_image(vm_name))
    assert meta["vm_name"] == vm_name and meta["_additional_disks"] == "2" and meta["_priority"] == "5"
    assert meta["_stop_timeout"] == "20"
    assert '<source protocol="rbd" name="rbd/data_' in meta["xml"]
    primitive = services.primitives()[vm_name]
    assert primitive.agent == "ocf:seapath:VirtualDomain"
    assert primitive.params["seapath"] == "true"
    assert primitive.params["config"] == f"{services.config.pacemaker.xml_dir}/{vm_name}.xml"
    assert primitive.meta["priority"] == "5"
    assert primitive.operation("stop") is not None

    services.run(vms.plan_stop(services, vm_name))
    assert services.vm(vm_name).status is VmStatus.STOPPED
    services.run(vms.plan_start(services, vm_name))
    assert services.vm(vm_name).status is VmStatus.STARTED
    services.run(vms.plan_disable(services, vm_name))
    vm = services.vm(vm_name)
    assert vm.status is VmStatus.DISABLED and not vm.enabled
    assert services.rbd.watchers(naming.system_image(vm_name)) == []
    services.run(vms.plan_enable(services, vm_name, start=False))
    assert services.vm(vm_name).status is VmStatus.STOPPED
    services.run(vms.plan_remove(services, vm_name))
    assert leftovers(services, vm_name) == []
    with pytest.raises(NotFoundError):
        services.vm(vm_name)


def test_disabled_create_and_history(services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    assert services.vm(vm_name).status is VmStatus.DISABLED
    assert vm_name not in services.primitives()
    records = [r for r in services.journal.history() if r.get("vm") == vm_name]
    assert records and records[-1]["operation"] == "create" and records[-1]["result"] == "ok"
    assert records[-1]["who"]


def test_force_replaces_only_after_the_new_vm_is_built(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False, metadata={"generation": "1"})
    old_uuid = services.vm(vm_name).uuid
    # a failure while importing the replacement leaves the old VM untouched
    task = vms.plan_create(services, replace(make_spec(lab, vm_name, metadata={"generation": "2"}), force=True))
    with pytest.raises(VmConsoleError):
        services.run(inject_failure(task, 1))
    assert services.vm(vm_name).metadata["generation"] == "1"
    assert leftovers(services, vm_name) == [f"group {vm_name}", f"image system_{vm_name}"]
    # the same UUID can be kept when replacing (the replaced VM does not count as a conflict)
    spec = replace(make_spec(lab, vm_name, metadata={"generation": "2"}), force=True, uuid=old_uuid)
    services.run(vms.plan_create(services, spec))
    vm = services.vm(vm_name)
    assert vm.metadata["generation"] == "2"
    assert vm.uuid == old_uuid
    assert vm.status is VmStatus.STARTED
    assert [g for g in services.rbd.group_names() if g.startswith("vmconsole")] == []


def test_deep_clone_is_byte_identical_even_right_after_a_snapshot_removal(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    clone = vm_name + "c"
    cleanup_vms += [vm_name, clone]
    create_vm(services, lab, vm_name, enable=False, data_disks=1)
    system, data = naming.system_image(vm_name), f"data_{vm_name}_0"
    # the librbd 16.2 race: objects shared by a kept snapshot and a newer removed one
    services.rbd.mon_command({"prefix": "osd set", "key": "nosnaptrim"})
    try:
        for image in (system, data):
            write_pattern(services, image, b"before")
            services.rbd.image_snap_create(image, "s1")
            services.rbd.image_snap_create(image, "s2")
            write_pattern(services, image, b"after")
            services.rbd.image_snap_remove(image, "s2")
        assert services.rbd.snaptrim_pending()
        expected = {image: checksum(services, image) for image in (system, data)}
        result: dict[str, object] = {}

        def run_clone() -> None:
            try:
                result["ok"] = services.run(
                    vms.plan_clone(
                        services, vms.CloneSpec(source=vm_name, name=clone, options=vms.VmOptions(enable=False))
                    )
                )
            except Exception as exc:
                result["error"] = exc

        worker = threading.Thread(target=run_clone)
        worker.start()
        time.sleep(3)
        assert worker.is_alive(), f"the clone did not wait for snapshot trimming: {result}"
    finally:
        services.rbd.mon_command({"prefix": "osd unset", "key": "nosnaptrim"})
    worker.join(300)
    assert "error" not in result, result
    assert checksum(services, naming.system_image(clone)) == expected[system]
    assert checksum(services, f"data_{clone}_0") == expected[data]
    cloned = services.vm(clone)
    assert cloned.uuid != services.vm(vm_name).uuid
    assert services.rbd.metadata(naming.system_image(clone))["vm_name"] == clone


def test_linked_clone_and_flatten(services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]) -> None:
    clone = vm_name + "l"
    cleanup_vms += [clone, vm_name]
    create_vm(services, lab, vm_name, enable=False)
    write_pattern(services, naming.system_image(vm_name), b"linked")
    expected = checksum(services, naming.system_image(vm_name))
    started = time.monotonic()
    services.run(
        vms.plan_clone(
            services, vms.CloneSpec(source=vm_name, name=clone, linked=True, options=vms.VmOptions(enable=False))
        )
    )
    assert time.monotonic() - started < 10
    assert checksum(services, naming.system_image(clone)) == expected
    assert services.rbd.children(naming.system_image(vm_name)) != []
    with pytest.raises(ConflictError, match="linked clones"):
        vms.plan_remove(services, vm_name)
    services.run(vms.plan_flatten(services, clone))
    # the link is cut: the source has no clone left and can go; the clone's data is its own
    assert services.rbd.children(naming.system_image(vm_name)) == []
    services.run(vms.plan_remove(services, vm_name))
    assert not services.rbd.image_exists(naming.system_image(vm_name))
    assert checksum(services, naming.system_image(clone)) == expected


def test_metadata_and_reserved_keys(services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    services.run(vms.plan_metadata_set(services, vm_name, {"owner": "ops", "tier": "1"}))
    assert vms.metadata_list(services, vm_name) == {"owner": "ops", "tier": "1"}
    assert vms.metadata_get(services, vm_name, "owner") == "ops"
    for key in ("xml", "vm_name", "_base_xml", "_stop_timeout"):
        with pytest.raises(ValidationError):
            vms.plan_metadata_set(services, vm_name, {key: "x"})
    with pytest.raises(NotFoundError):
        vms.metadata_get(services, vm_name, "nothere")
    services.run(vms.plan_metadata_set(services, vm_name, {}, remove=["tier"]))
    assert vms.metadata_list(services, vm_name) == {"owner": "ops"}


def test_two_tasks_on_one_vm_the_second_is_told_who_holds_the_lock(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    with another_operator_holds(services, lab_config, vm_name, {"a": "1"}) as other:
        with pytest.raises(LockedError) as caught:
            other.run(vms.plan_metadata_set(other, vm_name, {"b": "2"}))
        assert "metadata-set" in str(caught.value) and "since" in str(caught.value)
        result = cli(lab_config, "metadata", "set", vm_name, "c=3")
        assert result.returncode == LockedError.exit_code
        assert "locked by" in result.stderr
    services.run(vms.plan_metadata_set(services, vm_name, {"b": "2"}))
    assert vms.metadata_list(services, vm_name) == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("", "name"),
        ("a" * 49, "name"),
        ("vmé", "name"),
        ("vm-1", "name"),
        ("vm 1", "name"),
        ("xml", "name"),
        ("1vm", "name"),
        ("vmconsoletest", "name"),
    ],
)
def test_bad_names_are_refused_and_change_nothing(services: Services, lab: Lab, name: str, field: str) -> None:
    before = services.rbd.group_names()
    with pytest.raises(ValidationError) as caught:
        vms.plan_create(services, make_spec(lab, name))
    assert caught.value.field == field
    assert services.rbd.group_names() == before


def test_bad_inputs_each_get_a_specific_error(services: Services, lab: Lab, vm_name: str, tmp_path: Path) -> None:
    good = make_spec(lab, vm_name)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    unreadable = tmp_path / "secret.qcow2"
    unreadable.write_bytes(b"x")
    unreadable.chmod(0)
    vmdk = tmp_path / "disk.vmdk"
    import subprocess

    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(vmdk), "16M"], check=True)
    cases = [
        (replace(good, image="/nonexistent.qcow2"), "image", "does not exist"),
        (replace(good, image=str(vmdk)), "image", "vmdk"),
        (replace(good, xml="<domain><name>x"), "xml", "not well-formed"),
        (
            replace(good, xml='<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><domain>&e;</domain>'),
            "xml",
            "entities",
        ),
        (replace(good, xml="<domain type='kvm'><name>x</name></domain>"), "xml", "devices"),
        (replace(good, options=vms.VmOptions(pinned_host="nosuchnode")), "pinned_host", "not a cluster node"),
        (replace(good, options=vms.VmOptions(pacemaker_meta=["a=b"])), "pacemaker_meta", "mapping"),  # type: ignore[arg-type]
        (replace(good, options=vms.VmOptions(stop_timeout="-5")), "stop_timeout", ""),
        (replace(good, options=vms.VmOptions(metadata={"_x": "1"})), "metadata", "managed"),
        (replace(good, disk_bus="floppy"), "disk_bus", ""),
    ]
    before = (services.rbd.group_names(), sorted(services.rbd.image_ids()), sorted(services.primitives()))
    for spec, field, words in cases:
        with pytest.raises(ValidationError) as caught:
            vms.plan_create(services, spec)
        assert caught.value.field is not None and caught.value.field.startswith(field), (spec, caught.value)
        assert words.lower() in str(caught.value).lower(), caught.value
        assert "root:" not in str(caught.value), "a file of the host reached the message"
    after = (services.rbd.group_names(), sorted(services.rbd.image_ids()), sorted(services.primitives()))
    assert after == before


def test_existing_vm_without_force_and_uuid_conflicts(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    with pytest.raises(ConflictError, match="already exists"):
        vms.plan_create(services, make_spec(lab, vm_name))
    uuid = services.vm(vm_name).uuid
    with pytest.raises(ConflictError, match="already used") as caught:
        vms.plan_create(services, replace(make_spec(lab, vm_name + "u"), uuid=uuid))
    assert caught.value.field == "uuid"


def test_cli_list_status_and_json(
    lab_config: Config, services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False, metadata={"k": "v"})
    listing = cli_json(lab_config, "vm", "list")
    names = {vm["name"]: vm for vm in listing["vms"]}
    assert names[vm_name]["status"] == "Disabled"
    status = cli_json(lab_config, "vm", "status", vm_name)
    assert status["metadata"] == {"k": "v"}
    missing = cli(lab_config, "vm", "status", "nosuchvm", "--json")
    assert missing.returncode == NotFoundError.exit_code
    assert "nosuchvm" in missing.stdout
    dry = cli_json(lab_config, "vm", "remove", vm_name, "--dry-run")
    assert dry["dry_run"] is True and services.vm_exists(vm_name)
    refused = cli(lab_config, "vm", "remove", vm_name)
    assert refused.returncode == ValidationError.exit_code and "--yes" in refused.stderr
    done = cli(lab_config, "vm", "remove", vm_name, "--yes")
    assert done.returncode == 0, done.stderr
    assert not services.vm_exists(vm_name)
