"""The libvirt domain XML of a cluster VM: checked, generated, compared. Built with lxml only.

vmconsole stores two XML texts per VM, as vm_manager does: ``_base_xml`` (what the operator gave:
no disks) and ``xml`` (what the resource agent starts: the base plus name, UUID and one RBD network
disk per image). ``build_domain_xml`` turns the first into the second, like vm_manager's
``_create_xml`` but with device names that follow the bus and go past ``vdz``.

Every parse goes through ``backends.xmlsafe``: no DOCTYPE, no entities, no network.
"""

from __future__ import annotations

import difflib
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lxml import etree

from vmconsole.domain import xmlsafe
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.validate import show

# Target device prefix per bus, as libvirt and the Linux kernel name the disks.
BUS_DEVICE_PREFIX: dict[str, str] = {
    "virtio": "vd",
    "scsi": "sd",
    "sata": "sd",
    "usb": "sd",
    "ide": "hd",
}
# An IDE bus has two channels of two units: hda to hdd, nothing more.
BUS_MAX_DISKS: dict[str, int] = {"ide": 4}

# Domain children that describe the VM without changing what runs (libvirt edits them live).
DESCRIPTIVE_ELEMENTS = frozenset({"title", "description", "metadata"})

_XML_FIELD = "xml"


@dataclass(frozen=True)
class DiskSpec:
    """One RBD image as a disk of the domain."""

    image: str  # RBD image name: system_<vm> or data_<vm>_<i>
    target_dev: str  # vda, sdb, hdc...
    bus: str  # virtio, scsi, sata, usb, ide


# --- small helpers ---------------------------------------------------------------------------------


def _parse(text: str | bytes) -> etree._Element:
    root = xmlsafe.parse(text, what="the domain XML", field=_XML_FIELD)
    # Defence in depth: xmlsafe looks for "<!DOCTYPE" in the bytes, which UTF-16 input slips past
    # (its entities stay unresolved, but must not reach a stored XML either).
    has_entities = next(root.iter(etree.Entity), None) is not None
    if root.getroottree().docinfo.internalDTD is not None or has_entities:
        raise ValidationError(
            "the domain XML declares a DOCTYPE or entities, which vmconsole never resolves", field=_XML_FIELD
        )
    return root


def _serialize(root: etree._Element) -> str:
    """Pretty-print: whitespace-only text is re-indented, real text is left alone."""
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode") + "\n"


def _canonical_uuid(text: str, field: str) -> str:
    try:
        return str(uuidlib.UUID(text.strip()))
    except ValueError as exc:
        raise ValidationError(f"{show(text)} is not a UUID", field=field) from exc


def _plain_text(value: object, field: str, what: str, *, forbidden: str = "") -> str:
    """A non-empty string without control characters, spaces or any of ``forbidden``."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}", field=field)
    if not value:
        raise ValidationError(f"{what} is empty", field=field)
    for char in value:
        if not char.isprintable() or char.isspace() or char in forbidden:
            raise ValidationError(f"{what} {show(value)} contains a character not allowed here", field=field)
    return value


def _remove_keeping_tail(node: etree._Element) -> None:
    """Remove an element, comment or PI without losing the text that follows it."""
    parent = node.getparent()
    if parent is None:
        return
    tail = node.tail
    if tail and tail.strip():
        previous = node.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(node)


# --- device names ----------------------------------------------------------------------------------


def device_name(bus: str, index: int) -> str:
    """The target device for the ``index``-th disk (0-based) on ``bus``: vda…vdz, vdaa, vdab…

    The suffix is bijective base 26, as the Linux kernel names its disks and libvirt parses them.
    """
    prefix = BUS_DEVICE_PREFIX.get(bus)
    if prefix is None:
        raise ValidationError(
            f"unknown disk bus {show(bus)}; known buses: {', '.join(sorted(BUS_DEVICE_PREFIX))}",
            field="disk_bus",
        )
    if index < 0:
        raise ValueError(f"disk index must be >= 0, got {index}")
    letters = ""
    number = index + 1
    while number > 0:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("a") + remainder) + letters
    return prefix + letters


def plan_disks(
    system_image: str, data_images: Sequence[str], disk_bus: str, *, taken: Iterable[str] = ()
) -> list[DiskSpec]:
    """The system image then each data image, on ``disk_bus``, skipping target names in ``taken``.

    ``taken`` holds the targets the base XML already uses (a cdrom on ``sda`` or ``hdc``), so the
    generated disks never collide with them.
    """
    if isinstance(data_images, str):  # a lone string is a Sequence[str] of its characters
        raise ValidationError("expected a list of image names, got one string", field="data_images")
    images = [system_image, *data_images]
    seen: set[str] = set()
    for image in images:
        if image in seen:
            raise ValidationError(f"image {show(image)} is listed twice", field="data_images")
        seen.add(image)
    used = set(taken)
    specs: list[DiskSpec] = []
    index = 0
    limit = BUS_MAX_DISKS.get(disk_bus)
    for image in images:
        target = device_name(disk_bus, index)
        while target in used:
            index += 1
            target = device_name(disk_bus, index)
        if limit is not None and index >= limit:
            raise ValidationError(
                f"the {disk_bus} bus holds at most {limit} drives ({device_name(disk_bus, 0)} to"
                f" {device_name(disk_bus, limit - 1)}, cdroms included) and this VM needs more;"
                " use virtio or scsi",
                field="disk_bus",
            )
        specs.append(DiskSpec(image=image, target_dev=target, bus=disk_bus))
        used.add(target)
        index += 1
    return specs


# --- checking and building -------------------------------------------------------------------------


def check_base_xml(text: str | bytes) -> etree._Element:
    """Parse a base domain XML safely and check its shape; return its root ``<domain>``.

    Refused, with field ``xml``: anything not well-formed, a DOCTYPE or entity, a root other than
    ``<domain>``, no (or several) ``<devices>``, and any ``<disk device='disk'>`` (libvirt's default
    device kind): vmconsole adds the VM's RBD disks itself, as vm_manager does. cdrom, floppy and lun
    drives may stay.
    """
    root = _parse(text)
    if root.tag != "domain":
        raise ValidationError(
            f"the root element is <{root.tag}>, expected <domain> (a libvirt domain definition)",
            field=_XML_FIELD,
        )
    devices = root.findall("devices")
    if not devices:
        raise ValidationError("the domain XML has no <devices> element; add one (it may be empty)", field=_XML_FIELD)
    if len(devices) > 1:
        raise ValidationError(
            f"the domain XML has {len(devices)} <devices> elements; merge them into one", field=_XML_FIELD
        )
    disks = [d for d in devices[0].findall("disk") if d.get("device", "disk") == "disk"]
    if disks:
        targets = [disk.find("target") for disk in disks]
        devs = [show(t.get("dev", "")) for t in targets if t is not None and t.get("dev")]
        named = "target " + ", ".join(devs) if devs else "no target"
        raise ValidationError(
            f"the domain XML already has {len(disks)} disk(s) ({named}); remove every"
            " <disk device='disk'>: vmconsole adds the VM's RBD disks itself (cdrom drives may stay)",
            field=_XML_FIELD,
        )
    return root


def _disk_element(
    spec: DiskSpec,
    *,
    source_name: str,
    monitors: Sequence[tuple[str, int]],
    auth_user: str | None,
    secret_uuid: str | None,
) -> etree._Element:
    disk = etree.Element("disk", type="network", device="disk")
    etree.SubElement(disk, "driver", name="qemu", type="raw", cache="writeback")
    if auth_user is not None and secret_uuid is not None:
        auth = etree.SubElement(disk, "auth", username=auth_user)
        etree.SubElement(auth, "secret", type="ceph", uuid=secret_uuid)
    source = etree.SubElement(disk, "source", protocol="rbd", name=source_name)
    for host, port in monitors:
        etree.SubElement(source, "host", name=host, port=str(port))
    etree.SubElement(disk, "target", dev=spec.target_dev, bus=spec.bus)
    return disk


def _check_monitors(monitors: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    checked: list[tuple[str, int]] = []
    for entry in monitors:
        if not isinstance(entry, tuple) or len(entry) != 2:
            raise ValidationError(f"expected (host, port) pairs, got {entry!r}", field="monitors")
        host, port = entry
        _plain_text(host, "monitors", "monitor host", forbidden="/[]")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValidationError(f"monitor port {port!r} is not a port number (1-65535)", field="monitors")
        checked.append((host, port))
    return checked


def build_domain_xml(
    base_xml_text: str | bytes,
    *,
    name: str,
    uuid: str,
    pool: str,
    namespace: str,
    system_image: str,
    data_images: Sequence[str],
    disk_bus: str,
    monitors: Sequence[tuple[str, int]],
    auth_user: str | None,
    secret_uuid: str | None,
) -> str:
    """The domain XML the resource agent starts: base + name + UUID + one RBD disk per image.

    ``<name>`` is replaced; a non-empty ``<uuid>`` of the base is kept (canonical form), otherwise
    ``uuid`` is set. Disks use ``pool[/namespace]/image``, one ``<host>`` per monitor (none: QEMU
    reads ``mon_host`` from ceph.conf) and cephx auth when ``auth_user`` and ``secret_uuid`` are both
    given (both None: a cluster without cephx). Returns pretty-printed XML.
    """
    root = check_base_xml(base_xml_text)
    _plain_text(name, "name", "the VM name", forbidden="/")
    given_uuid = _canonical_uuid(_plain_text(uuid, "uuid", "the UUID"), "uuid")
    _plain_text(pool, "pool", "the pool name", forbidden="/@")
    if namespace:
        _plain_text(namespace, "namespace", "the namespace", forbidden="/@")
    for field, images in (("system_image", [system_image]), ("data_images", list(data_images))):
        for image in images:
            _plain_text(image, field, "the image name", forbidden="/@")
    if (auth_user is None) != (secret_uuid is None):
        raise ValidationError(
            "cephx auth needs both the user and the libvirt secret UUID (or neither)", field="auth_user"
        )
    secret = None
    if auth_user is not None and secret_uuid is not None:
        _plain_text(auth_user, "auth_user", "the Ceph user")
        secret = _canonical_uuid(secret_uuid, "secret_uuid")
    hosts = _check_monitors(monitors)

    # <name>: exactly one, first, holding the VM name (the agent names the domain after its file).
    for old in root.findall("name"):
        _remove_keeping_tail(old)
    name_element = etree.Element("name")
    name_element.text = name
    root.insert(0, name_element)

    # <uuid>: keep the operator's (licence-bound guests), else the one we were given.
    uuid_elements = root.findall("uuid")
    kept = next((u for u in uuid_elements if (u.text or "").strip()), None)
    for extra in uuid_elements:
        if extra is not kept:
            _remove_keeping_tail(extra)
    if kept is not None:
        kept.text = _canonical_uuid(kept.text or "", _XML_FIELD)
    else:
        uuid_element = etree.Element("uuid")
        uuid_element.text = given_uuid
        root.insert(1, uuid_element)

    devices = root.find("devices")
    assert devices is not None  # check_base_xml guarantees it
    taken = [t.get("dev", "") for t in devices.iterfind("disk/target")]
    specs = plan_disks(system_image, data_images, disk_bus, taken=[t for t in taken if t])
    prefix = f"{pool}/{namespace}/" if namespace else f"{pool}/"
    # After the existing drives (cdroms), else after <emulator>, else first: where a reader looks.
    anchors = devices.findall("disk") or devices.findall("emulator")
    position = devices.index(anchors[-1]) + 1 if anchors else 0
    for spec in specs:
        disk = _disk_element(
            spec, source_name=prefix + spec.image, monitors=hosts, auth_user=auth_user, secret_uuid=secret
        )
        devices.insert(position, disk)
        position += 1
    return _serialize(root)


# --- reading ------------------------------------------------------------------------------------


def new_uuid() -> str:
    """A fresh random domain UUID in canonical form."""
    return str(uuidlib.uuid4())


def domain_uuid(xml_text: str | bytes) -> str | None:
    """The domain's UUID in canonical lowercase form, or None when it has none (or an empty one)."""
    text = _parse(xml_text).findtext("uuid")
    if text is None or not text.strip():
        return None
    return _canonical_uuid(text, _XML_FIELD)


def domain_name(xml_text: str | bytes) -> str | None:
    """The domain's ``<name>``, or None when it has none (or an empty one)."""
    text = _parse(xml_text).findtext("name")
    return text.strip() if text and text.strip() else None


def strip_uuid(xml_text: str | bytes) -> str:
    """The same domain XML without its ``<uuid>`` (so a clone gets a new one), pretty-printed."""
    root = _parse(xml_text)
    for element in root.findall("uuid"):
        _remove_keeping_tail(element)
    return _serialize(root)


def rbd_disk_images(xml_text: str | bytes) -> list[str]:
    """The ``pool[/namespace]/image`` of every RBD network disk of the domain, in document order."""
    root = _parse(xml_text)
    names: list[str] = []
    for disk in root.iterfind("devices/disk"):
        source = disk.find("source")
        if disk.get("type") == "network" and source is not None and source.get("protocol") == "rbd":
            source_name = source.get("name")
            if source_name:
                names.append(source_name)
    return names


@dataclass(frozen=True)
class LocalDisk:
    path: str  # the file or block device
    format: str | None  # what the domain says it is (``<driver type>``), None when it does not say


def detach_local_disks(xml_text: str | bytes) -> tuple[str, list[LocalDisk]]:
    """A libvirt domain's definition without its disks, and each disk's path and declared format.

    What add-to-cluster needs: the disks become RBD images, the rest is the VM's base XML. cdrom,
    floppy and lun drives stay in the definition. A disk that is not a local file or device is refused.
    """
    root = xmlsafe.parse(xml_text, what="domain XML", field="xml")
    devices = root.find("devices")
    if devices is None:
        raise ValidationError("the domain has no <devices>", field="xml")
    disks: list[LocalDisk] = []
    for disk in list(devices.iterfind("disk")):
        if disk.get("device", "disk") != "disk":
            continue
        source = disk.find("source")
        path = (source.get("file") or source.get("dev")) if source is not None else None
        if not path:
            target = disk.find("target")
            dev = target.get("dev", "?") if target is not None else "?"
            raise ValidationError(f"disk {dev} is not a local file or device", field="xml")
        driver = disk.find("driver")
        disks.append(LocalDisk(path, driver.get("type") if driver is not None else None))
        devices.remove(disk)
    return etree.tostring(root, encoding="unicode"), disks


# Elements and attributes that hold a path of the host made for one VM: logs, firmware variables,
# sockets. A clone or a new VM must not share them with another VM (QEMU refuses a busy log file).
_PER_VM_PATHS = (
    ("devices/serial/log", "file"),
    ("devices/console/log", "file"),
    ("devices/serial/source", "path"),
    ("devices/console/source", "path"),
    ("devices/channel/source", "path"),
    ("devices/graphics", "socket"),
    ("devices/graphics/listen", "socket"),
)


def rename_vm_paths(xml_text: str | bytes, old_name: str, new_name: str) -> str:
    """The domain XML with every per-VM host path naming ``old_name`` renamed for ``new_name`` (serial
    and console logs and sockets, channel sockets, graphics sockets, the NVRAM file). Pretty-printed."""
    root = _parse(xml_text)
    if old_name and old_name != new_name:
        for path, attribute in _PER_VM_PATHS:
            for element in root.iterfind(path):
                value = element.get(attribute)
                if value and old_name in value:
                    element.set(attribute, value.replace(old_name, new_name))
        for nvram in root.iterfind("os/nvram"):
            if nvram.text and old_name in nvram.text:
                nvram.text = nvram.text.replace(old_name, new_name)
    return _serialize(root)


# Parts of a domain that reach into the host: shown as warnings in a plan and an update's diff.
def host_reaching(xml_text: str | bytes) -> list[str]:
    """What the domain can do on the host beyond a VM's own disks and NICs, one line each."""
    root = _parse(xml_text)
    found: list[str] = []
    qemu_ns = "{http://libvirt.org/schemas/domain/qemu/1.0}"
    if root.find(f"{qemu_ns}commandline") is not None:
        found.append("<qemu:commandline> passes raw arguments to QEMU")
    for hostdev in root.iterfind("devices/hostdev"):
        found.append(f"<hostdev type='{hostdev.get('type', '?')}'> gives the guest a device of the host")
    for disk in root.iterfind("devices/disk"):
        source = disk.find("source")
        if disk.get("type") == "block" and source is not None:
            found.append(f"a disk is the host block device {source.get('dev', '?')}")
        elif disk.get("type") == "file" and source is not None and disk.get("device", "disk") == "disk":
            found.append(f"a disk is the host file {source.get('file', '?')}")
    for seclabel in root.iterfind("seclabel"):
        if seclabel.get("type") == "none":
            found.append("<seclabel type='none'>: no confinement of QEMU by the host's security driver")
    for filesystem in root.iterfind("devices/filesystem"):
        source = filesystem.find("source")
        shared = source.get("dir") if source is not None else None
        if shared is not None and shared.rstrip("/") == "":
            found.append("<filesystem> shares the host's root directory / with the guest")
    return found


# --- comparing ----------------------------------------------------------------------------------


def _canonical_root(xml_text: str | bytes) -> etree._Element:
    """Comments and PIs dropped, whitespace-only text dropped, attributes sorted by name."""
    root = _parse(xml_text)
    for node in list(root.iter(etree.Comment, etree.ProcessingInstruction)):
        _remove_keeping_tail(node)
    for element in root.iter():
        if element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
        attributes = sorted(element.attrib.items())
        element.attrib.clear()
        for key, value in attributes:
            element.set(key, value)
    return root


def canonical_xml(xml_text: str | bytes) -> str:
    """A stable pretty-printed form: the same domain always prints the same, whatever its layout."""
    return _serialize(_canonical_root(xml_text))


def xml_diff(old: str | bytes, new: str | bytes, *, old_label: str = "current", new_label: str = "new") -> list[str]:
    """Unified diff lines (no trailing newlines) between the canonical forms; [] when equivalent."""
    old_lines = canonical_xml(old).splitlines()
    new_lines = canonical_xml(new).splitlines()
    return list(difflib.unified_diff(old_lines, new_lines, fromfile=old_label, tofile=new_label, lineterm=""))


def needs_restart(old_xml: str | bytes, new_xml: str | bytes) -> bool:
    """Whether applying ``new_xml`` needs the VM restarted to take effect.

    Kept simple on purpose: the resource agent starts the domain from the stored XML, so any change
    to the definition only reaches the guest at its next start. The exceptions are the descriptive
    ``<title>``, ``<description>`` and ``<metadata>`` children of ``<domain>``, which change nothing
    in the running guest; a change confined to them (or to layout, comments, attribute order) does not
    need a restart.
    """
    roots = [_canonical_root(old_xml), _canonical_root(new_xml)]
    for root in roots:
        for child in list(root):
            if child.tag in DESCRIPTIVE_ELEMENTS:
                root.remove(child)
    old_text, new_text = (_serialize(root) for root in roots)
    return old_text != new_text
