"""Reads the console makes for its views (each runs in a thread worker): a VM's two domain
definitions, and what its snapshot tree needs besides the state (linked clones, the last rollback)."""

from __future__ import annotations

from dataclasses import dataclass

from vmconsole.core import snapshots, vms
from vmconsole.core.services import Services
from vmconsole.domain import xmlsafe
from vmconsole.domain.errors import VmConsoleError


@dataclass(frozen=True)
class DomainConfig:
    vm: str
    xml: str | None  # the XML the resource agent defines (``xml`` metadata key)
    base_xml: str | None  # the XML the operator gave (``_base_xml``)


def read_domain_config(services: Services, vm: str) -> DomainConfig:
    base_xml, xml = vms.domain_config(services, vm)
    return DomainConfig(vm, xml or None, base_xml or None)


GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"


def has_guest_agent(xml: str) -> bool | None:
    """Whether the domain has a qemu-guest-agent channel (None: the XML cannot tell)."""
    if not xml:
        return None
    try:
        root = xmlsafe.parse(xml, what="domain XML")
    except VmConsoleError:
        return None
    return any(target.get("name") == GUEST_AGENT_CHANNEL for target in root.iterfind("devices/channel/target"))


@dataclass(frozen=True)
class SnapshotExtras:
    """What the snapshot tree shows besides the state: linked clones per snapshot, the safety net."""

    vm: str
    clones: dict[str, tuple[str, ...]]  # snapshot -> the VMs cloned from it
    last_safety: str | None  # the safety snapshot of the VM's last rollback (what --undo returns to)


def read_snapshot_extras(services: Services, vm: str) -> SnapshotExtras:
    infos = snapshots.list_snapshots(services, vm, with_written=False)
    clones: dict[str, tuple[str, ...]] = {}
    for info in infos:
        children = sorted({_vm_of(image) for image in info.clones})
        if children:
            clones[info.snapshot.name] = tuple(children)
    last = snapshots.last_rollback(services, vm)
    safety = last.get("safety") if last else None
    return SnapshotExtras(vm, clones, str(safety) if safety else None)


def _vm_of(image: str) -> str:
    """The VM an image belongs to (``system_web2`` and ``data_web2_0`` -> ``web2``)."""
    if image.startswith("system_"):
        return image.removeprefix("system_")
    if image.startswith("data_") and image.count("_") >= 2:
        return image.removeprefix("data_").rsplit("_", 1)[0]
    return image
