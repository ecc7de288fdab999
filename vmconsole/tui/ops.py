"""The few service calls the console needs beyond the plan/run API, kept small and logic-free.

Every function here runs in a thread worker (it may block on the cluster) and only reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vmconsole.core import vms
from vmconsole.core.services import Services
from vmconsole.core.services import watch_lifecycle as services_watch


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


def watch_lifecycle(uri: str, on_event: Callable[[str, str], None], stop: threading.Event) -> None:
    """libvirt's domain lifecycle events on this host until ``stop`` is set (core's watch; blocks)."""
    services_watch(uri, on_event, stop)
