"""What an operator reads about snapshots: the list with ages, data written since and clones, and the
VMs a filter selects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from vmconsole.core.services import Services
from vmconsole.core.snapshots.records import current_records, vm_state
from vmconsole.core.snapshots.remove import children_of
from vmconsole.domain.errors import ValidationError, VmConsoleError
from vmconsole.domain.model import Snapshot, VmState


@dataclass(frozen=True)
class SnapshotInfo:
    snapshot: Snapshot
    age_seconds: float | None
    written_since: int | None  # bytes written to the VM's disks since (lower bound for group snapshots)
    safety: bool
    clones: tuple[str, ...] = ()


def written_since(services: Services, state: VmState, snap: Snapshot) -> int | None:
    """Bytes written to the VM's disks since ``snap``, from RBD's diff (object granularity).

    For per-image snapshots this is RBD's own diff. For group snapshots librbd 16.2 cannot diff
    from a group snapshot by name, so it counts the objects allocated now that were not at the
    snapshot: new data only (a lower bound), said so by the callers.
    """
    total = 0
    for disk in snap.disks:
        if snap.kind == "image":
            value = services.rbd.written_since(disk, snap.name)
            if value is None:
                return None
            total += value
            continue
        try:
            info = services.rbd.image_info(disk)
            member = next(s for s in info.snapshots if s.group_snap_name == snap.name)
            at_snapshot = services.rbd.allocated_objects(disk, member.snap_id)
            now = services.rbd.allocated_objects(disk)
        except (StopIteration, VmConsoleError):
            return None
        total += max(0, len(now - at_snapshot)) * (4 << 20)
    return total


def list_snapshots(services: Services, vm: str, *, with_written: bool = True) -> list[SnapshotInfo]:
    state = vm_state(services, vm)
    records = current_records(services, vm, [d.image for d in state.disks])
    now = datetime.now(UTC)
    result = []
    for snap in state.snapshots:
        record = records.get(snap.name, {})
        result.append(
            SnapshotInfo(
                snapshot=snap,
                age_seconds=(now - snap.created).total_seconds() if snap.created else None,
                written_since=written_since(services, state, snap) if with_written else None,
                safety=bool(record.get("safety_of")),
                clones=tuple(children_of(services, state, snap)),
            )
        )
    return result


def select_vms(services: Services, expression: str) -> list[str]:
    """VM names matching a filter: ``status:started``, ``node:hv1``, ``name~regex`` or a plain substring."""
    state = services.state()
    result = []
    for vm in state.vms:
        ok = True
        for term in expression.split():
            key, sep, value = term.partition(":")
            if sep and key == "status":
                ok &= vm.status.value.lower() == value.lower()
            elif sep and key == "node":
                ok &= (vm.node or "") == value
            elif term.startswith("name~"):
                try:
                    ok &= re.search(term[5:], vm.name) is not None
                except re.error as exc:
                    raise ValidationError(f"bad regular expression: {exc}", field="filter") from exc
            else:
                ok &= term.lower() in vm.name.lower()
        if ok:
            result.append(vm.name)
    return result
