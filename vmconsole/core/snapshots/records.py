"""vmconsole's records of a VM's snapshots (the configuration recorded with each, protection, the last
rollback) in a RADOS object of the pool, and the lookups every snapshot operation starts with.
"""

from __future__ import annotations

import json
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.state import SNAP_IDS, read_snapshot_records, record_of
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import NotFoundError
from vmconsole.domain.model import Snapshot, VmState
from vmconsole.domain.settings import RESERVED_KEYS

ROLLBACK_KEY = "__rollback__"  # in the records object: the last rollback, for --undo


def read_records(services: Services, vm: str) -> dict[str, dict[str, Any]]:

    return read_snapshot_records(services.rbd, vm)


def current_records(services: Services, vm: str, images: list[str]) -> dict[str, dict[str, Any]]:
    """The records that belong to the snapshots of those names now: a record left by a snapshot
    another tool removed is not the record of a new snapshot that took its name."""
    records = read_records(services, vm)
    if not any(SNAP_IDS in r for r in records.values()):
        return records
    ids = snapshot_ids(services, images)
    result: dict[str, dict[str, Any]] = {}
    for name, record in records.items():
        found = ids.get(("image", name)) or ids.get(("group", name)) or {}
        if record_of(record, found):
            result[name] = record
    return result


def snapshot_ids(services: Services, images: list[str]) -> dict[tuple[str, str], dict[str, int]]:
    """(kind, snapshot name) -> disk -> RBD snapshot id, over the VM's disks."""
    ids: dict[tuple[str, str], dict[str, int]] = {}
    for image in images:
        for key, snap_id in services.rbd.snapshot_ids(image).items():
            ids.setdefault(key, {})[image] = snap_id
    return ids


def stamp_record(services: Services, vm: str, name: str, kind: str, images: list[str]) -> None:
    """Tie the record of a snapshot just taken to it (its ids on each disk), so that it is never
    taken for the record of another snapshot of the same name later."""
    record = read_records(services, vm).get(name)
    ids = snapshot_ids(services, images).get((kind, name))
    if record is None or not ids:
        return
    write_record(services, vm, name, {**record, SNAP_IDS: ids})


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


def snapshot_exists(services: Services, vm: str, name: str, images: list[str] | None = None) -> bool:
    """Is there a snapshot ``name`` of the VM, of either kind: a group snapshot, or a per-image one on
    any of its disks (``images``: the disks to look at, default the group's and the system disk)?"""
    if services.rbd.group_exists(vm) and name in services.rbd.group_snapshots(vm):
        return True
    return any(name in services.rbd.image_snap_names(image) for image in images or disk_images(services, vm))


def disk_images(services: Services, vm: str) -> list[str]:
    """The VM's disks now: its group's images and its system disk, the system disk first."""
    images = set(services.rbd.group_images(vm)) if services.rbd.group_exists(vm) else set()
    if services.rbd.image_exists(naming.system_image(vm)):
        images.add(naming.system_image(vm))
    return sorted(images, key=lambda i: naming.disk_order(vm, i))


def vm_state(services: Services, vm: str) -> VmState:
    validate.existing_vm_name(vm)
    return services.vm(vm)


def find_snapshot(state: VmState, name: str) -> Snapshot:
    validate.snapshot_name(name)
    found = next((s for s in state.snapshots if s.name == name), None)
    if found is None:
        names = ", ".join(s.name for s in state.snapshots) or "none"
        raise NotFoundError(f"{state.name} has no snapshot {name!r} (it has: {names})", field="snapshot")
    return found
