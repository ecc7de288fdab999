"""The few service calls the console needs beyond the plan/run API, kept small and logic-free.

Every function here runs in a thread worker (it may block on the cluster) and only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def read_history(services: Services) -> list[dict[str, Any]]:
    return services.history()
