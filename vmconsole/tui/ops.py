"""The XML view's read: a VM's two domain definitions, side by side (runs in a thread worker)."""

from __future__ import annotations

from dataclasses import dataclass

from vmconsole.core import vms
from vmconsole.core.services import Services


@dataclass(frozen=True)
class DomainConfig:
    vm: str
    xml: str | None  # the XML the resource agent defines (``xml`` metadata key)
    base_xml: str | None  # the XML the operator gave (``_base_xml``)


def read_domain_config(services: Services, vm: str) -> DomainConfig:
    base_xml, xml = vms.domain_config(services, vm)
    return DomainConfig(vm, xml or None, base_xml or None)
