"""vmconsole's records of a VM's snapshots (the configuration recorded with each, protection, the last
rollback) in a RADOS object of the pool, and the lookups every snapshot operation starts with.
"""

from __future__ import annotations

import json
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.state import read_snapshot_records
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import NotFoundError
from vmconsole.domain.model import Snapshot, VmState
from vmconsole.domain.settings import RESERVED_KEYS

ROLLBACK_KEY = "__rollback__"  # in the records object: the last rollback, for --undo


def read_records(services: Services, vm: str) -> dict[str, dict[str, Any]]:

    return read_snapshot_records(services.rbd, vm)


def write_record(services: Services, vm: str, name: str, record: dict[str, Any]) -> None:
    services.rbd.omap_set(naming.snapshot_records_object(vm), {name: json.dumps(record).encode()})


def remove_record(services: Services, vm: str, name: str) -> None:
    services.rbd.omap_remove(naming.snapshot_records_object(vm), [name])


def config_of(metadata: dict[str, str]) -> dict[str, str]:
    """What a snapshot records of the VM's configuration: the XML and every internal setting."""
    return {k: v for k, v in metadata.items() if k in RESERVED_KEYS or k.startswith("_")}


def last_rollback(services: Services, vm: str) -> dict[str, Any] | None:
    """The record of the VM's last rollback (for ``--undo``); None when there is none or it is unreadable."""
    raw = services.rbd.omap_get(naming.snapshot_records_object(vm)).get(ROLLBACK_KEY)
    try:
        record = json.loads(raw) if raw else None
    except ValueError:
        return None
    return dict(record) if isinstance(record, dict) else None


def vm_state(services: Services, vm: str) -> VmState:
    validate.vm_name(vm)
    return services.vm(vm)


def find_snapshot(state: VmState, name: str) -> Snapshot:
    validate.snapshot_name(name)
    found = next((s for s in state.snapshots if s.name == name), None)
    if found is None:
        names = ", ".join(s.name for s in state.snapshots) or "none"
        raise NotFoundError(f"{state.name} has no snapshot {name!r} (it has: {names})", field="snapshot")
    return found
