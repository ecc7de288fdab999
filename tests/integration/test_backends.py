"""The backends talk to the real lab: RBD, Pacemaker (ocf:seapath:VirtualDomain) and libvirt."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from vmconsole.backends import crm_mon
from vmconsole.backends.libvirt import LibvirtSession
from vmconsole.backends.pacemaker import PacemakerClient
from vmconsole.backends.rbd import RbdSession
from vmconsole.config import Config
from vmconsole.domain import domain_xml
from vmconsole.domain.primitive_builder import PrimitiveSpec, build_enable_fragment
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml

pytestmark = pytest.mark.lab


def wait_role(client: PacemakerClient, vm: str, role: str, timeout: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        root = etree.fromstring(client.crm_mon_xml().encode())
        element = next((e for e in root.iter("resource") if e.get("id") == vm), None)
        attrs = dict(element.attrib) if element is not None else {}
        if attrs.get("role") == role and not attrs.get("pending"):
            return attrs
        assert time.monotonic() < deadline, f"{vm} not {role} after {timeout} s: {attrs}"
        time.sleep(0.3)


def test_rbd_pacemaker_and_libvirt_are_real(lab: Lab, lab_config: Config, vm_name: str) -> None:
    image = f"system_{vm_name}"
    state = lab.state()
    assert state is not None
    client = PacemakerClient(lab_config.pacemaker)
    with RbdSession(lab_config.ceph) as rbd_session, LibvirtSession(lab_config.libvirt.uri) as lv:
        rbd_session.create_image(image, 64 << 20)
        rbd_session.create_group(vm_name)
        try:
            rbd_session.group_add(vm_name, image)
            xml = domain_xml.build_domain_xml(
                base_xml(lab, vm_name, state.domain_type),
                name=vm_name,
                uuid=domain_xml.new_uuid(),
                pool="rbd",
                namespace="",
                system_image=image,
                data_images=[],
                disk_bus="virtio",
                monitors=[("127.0.0.1", 6789)],
                auth_user="libvirt",
                secret_uuid=lv.secret_uuid("client.libvirt secret"),
            )
            rbd_session.metadata_set_many(image, {"vm_name": vm_name, "xml": xml, "_base_xml": xml})
            assert rbd_session.group_images(vm_name) == [image]
            assert rbd_session.metadata(image)["vm_name"] == vm_name
            assert domain_xml.rbd_disk_images(xml) == [f"rbd/{image}"]

            spec = PrimitiveSpec(name=vm_name, xml_dir=lab_config.pacemaker.xml_dir, params={"force_stop": "true"})
            client.modify_configuration(etree.tostring(build_enable_fragment(spec), encoding="unicode"))
            try:
                attrs = wait_role(client, vm_name, "Started")
                assert attrs["resource_agent"] == "ocf:seapath:VirtualDomain"
                snapshot = crm_mon.parse_crm_mon(client.crm_mon_xml())
                assert snapshot.resource(vm_name) is not None
                assert lv.domain_state(vm_name) == "running"
                assert rbd_session.watchers(image), "QEMU should have the RBD image open"

                client.set_target_role(vm_name, "Stopped")
                wait_role(client, vm_name, "Stopped")
                assert lv.domain_state(vm_name) in (None, "shut off")
            finally:
                client.set_target_role(vm_name, "Stopped")
                wait_role(client, vm_name, "Stopped")
                client.delete_vm(vm_name)
        finally:
            rbd_session.group_remove_image(vm_name, image)
            rbd_session.remove_group(vm_name)
            rbd_session.remove_image(image)


def test_an_omap_larger_than_one_osd_read_comes_back_whole(lab_config: Config, vm_name: str) -> None:
    # an OSD answers at most 1024 entries per read: a month of history with more records lost its newest
    oid = f"vmconsole.test.{vm_name}"
    entries = {f"{i:06d}": str(i).encode() for i in range(2500)}
    with RbdSession(lab_config.ceph) as session:
        try:
            for start in range(0, len(entries), 500):
                session.omap_set(oid, dict(list(entries.items())[start : start + 500]))
            assert session.omap_get(oid) == entries
            assert session.omap_get_many([oid])[oid] == entries
            assert session.omap_get(oid, prefix="0012") == {k: v for k, v in entries.items() if k.startswith("0012")}
        finally:
            session.ioctx.remove_object(oid)


CLOSE_WHILE_READING = """
import sys, threading
from pathlib import Path
from vmconsole import config as configuration
from vmconsole.backends.rbd import RbdSession
from vmconsole.domain.errors import BackendError

session = RbdSession(configuration.load_file(Path(sys.argv[1])).ceph)
outcome = []

def keep_reading():
    try:
        while True:
            session.group_names()
            session.omap_get("vmconsole_history_probe")
    except BackendError as exc:
        outcome.append(str(exc))

readers = [threading.Thread(target=keep_reading) for _ in range(3)]
for reader in readers:
    reader.start()
threading.Event().wait(0.5)
session.close()
for reader in readers:
    reader.join(10)
print(outcome)
"""


def test_closing_the_connection_under_running_reads_refuses_them_and_never_aborts(lab_config: Config) -> None:
    # librados aborts the process on a call made on a shut-down connection (the console quitting
    # during a refresh did): close waits for the calls in flight and refuses the later ones
    import subprocess
    import sys

    assert lab_config.source is not None
    for _ in range(5):
        result = subprocess.run(
            [sys.executable, "-c", CLOSE_WHILE_READING, str(lab_config.source)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == str(["ceph: the connection to the cluster is closed"] * 3), result.stdout
