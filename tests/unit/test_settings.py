"""vm_manager's metadata format, read and written back unchanged."""

from __future__ import annotations

import pytest

from vmconsole.domain.errors import ValidationError
from vmconsole.domain.settings import Colocation, VmSettings, user_metadata

VM_MANAGER_METADATA = {
    "vm_name": "vm1",
    "xml": "<domain/>",
    "_base_xml": "<domain/>",
    "_live_migration": "true",
    "_migration_user": "libvirtadmin",
    "_stop_timeout": "60",
    "_migrate_to_timeout": "180",
    "_migration_downtime": "300",
    "_preferred_host": "hv2",
    "_crm_config_cmd": "location x vm1 100: hv1\nlocation y vm1 50: hv2",
    "_priority": "10",
    "_disk_bus": "virtio",
    "_pacemaker_meta": '{"failure-timeout": "60"}',
    "_pacemaker_params": '{"a": "b"}',
    "_pacemaker_utilization": '{"cpu": "2"}',
    "_additional_disks": "2",
    "role": "db",
}


def test_decodes_every_vm_manager_key() -> None:
    s = VmSettings.from_metadata(VM_MANAGER_METADATA)
    assert s.live_migration is True
    assert s.migration_user == "libvirtadmin"
    assert s.stop_timeout == "60"
    assert s.preferred_host == "hv2"
    assert s.crm_config_cmd == ("location x vm1 100: hv1", "location y vm1 50: hv2")
    assert dict(s.pacemaker_meta) == {"failure-timeout": "60"}
    assert s.additional_disks == 2


def test_writes_back_what_it_read() -> None:
    internal = {k: v for k, v in VM_MANAGER_METADATA.items() if k.startswith("_") and k != "_base_xml"}
    assert VmSettings.from_metadata(VM_MANAGER_METADATA).to_metadata() == internal


def test_user_metadata_excludes_reserved_and_internal_keys() -> None:
    assert user_metadata(VM_MANAGER_METADATA) == {"role": "db"}


def test_colocations_are_persisted() -> None:
    s = VmSettings(colocations=(Colocation(("vm2", "vm3"), strong=True),))
    assert VmSettings.from_metadata(s.to_metadata()).colocations == s.colocations


@pytest.mark.parametrize(
    ("key", "value"),
    [("_pacemaker_meta", "[1]"), ("_pacemaker_params", "{"), ("_additional_disks", "-1"), ("_additional_disks", "x")],
)
def test_a_malformed_setting_is_reported_with_its_key(key: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VmSettings.from_metadata({key: value})
    assert caught.value.field == key
