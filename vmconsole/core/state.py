"""Gather the whole cluster into one immutable ``ClusterState``.

One RADOS connection per process; Ceph and Pacemaker read at the same time, every VM's RBD headers
in one batch of asynchronous reads (no image opened), Pacemaker asked only what changed since the last
read (the CIB's version says), unchanged VMs kept as the very same ``VmState``; and a deadline on
everything: a backend that does not answer makes the state partial (with the reason), never makes the
caller wait forever.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from vmconsole.backends import rbd_headers
from vmconsole.backends.pacemaker import PacemakerClient
from vmconsole.backends.rbd import ImageInfo, ImageSnapshot, RbdSession
from vmconsole.backends.rbd_headers import GroupHeader, ImageHeader, SnapshotEntry
from vmconsole.config import Config, read_observer
from vmconsole.core.connection import CephConnection
from vmconsole.core.pacemaker_state import PacemakerPart, PacemakerReader
from vmconsole.domain import naming
from vmconsole.domain.domain_xml import domain_uuid
from vmconsole.domain.errors import BackendTimeout, ConfigError, VmConsoleError
from vmconsole.domain.model import CephHealth, ClusterState, Disk, NodeState, Snapshot, VmState, VmStatus
from vmconsole.domain.settings import VmSettings, user_metadata
from vmconsole.domain.status import derive_status_and_node, vm_manager_status


@dataclass(frozen=True)
class CephPart:
    groups: dict[str, list[str]]  # vm -> images of its group
    images: dict[str, ImageInfo]
    records: dict[str, dict[str, dict[str, Any]]]  # vm -> snapshot name -> vmconsole record
    health: CephHealth
    problems: tuple[str, ...]
    # vm -> what its part was read as: the same object while the VM's objects read the same
    tokens: Mapping[str, object] = field(default_factory=dict)


# what vm_manager accepts as a VM name; a group named otherwise is shown, never used to build a path
_VM_NAME_AS_STORED = re.compile(r"[A-Za-z0-9]+")
INVALID_RECORD = "_invalid"  # a record vmconsole cannot read: kept out, and said on the VM


SNAP_IDS = "snap_ids"  # in a snapshot record: disk -> the RBD snapshot id the record was written for


def record_of(record: Mapping[str, Any], ids: Mapping[str, int]) -> Mapping[str, Any]:
    """The record, when it was written for this very snapshot (``ids``: disk -> snapshot id now);
    empty when the snapshot of that name is another one (the recorded one was removed by another
    tool, and a new one took its name). A record without ids (an older vmconsole's) is trusted."""
    recorded = record.get(SNAP_IDS)
    if not isinstance(recorded, dict):
        return record
    shared = [disk for disk in recorded if disk in ids]
    return record if shared and all(recorded[d] == ids[d] for d in shared) else {}


def read_snapshot_records(session: RbdSession, vm: str) -> dict[str, dict[str, Any]]:
    """vmconsole's records of the VM's snapshots. One that cannot be read (another version's, a
    damaged one) is replaced by ``{INVALID_RECORD: why}``: it marks that VM, never breaks a listing."""
    return _decode_records(session.omap_get(naming.snapshot_records_object(vm)))


class CephReader:
    """Reads every VM's disks, metadata and snapshots: a few omap reads per VM, all in flight together.

    A VM costs one read of its group header (members and group snapshots), one read per disk header
    (metadata, size, snapshots with their timestamps and protection) and one of vmconsole's snapshot
    records, and no image open: the reads of every VM go out together as asynchronous librados ops
    (``RbdSession.omap_get_many``). What was decoded is kept with the raw bytes it came from: a VM
    whose objects read the same as last time keeps the very same records (and ``CephPart.tokens``
    says so, for the callers that cache what they build from them). Images are opened only when a
    header's encoding surprises (an old cluster's): then per-image snapshots and timestamps come
    from librbd, cached (a snapshot's timestamp never changes; an image's snapshot list is reused
    while its header's snapshot entries stay byte-identical).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timestamps: dict[tuple[str, int], datetime | None] = {}
        self._user_snapshots: dict[str, tuple[bytes, tuple[ImageSnapshot, ...]]] = {}
        # vm -> (the raw objects it was read from, what was read)
        self._vms: dict[str, tuple[tuple[Any, ...], _VmRead]] = {}

    def read(self, session: RbdSession, only: set[str] | None = None) -> CephPart:
        problems: list[str] = []
        try:
            status, checks = session.health()
            health = CephHealth(status, tuple(checks))
        except VmConsoleError as exc:
            health = CephHealth("unknown", (str(exc),))
            problems.append(f"ceph health: {exc}")
        group_ids = session.group_ids()
        image_ids = session.image_ids()
        names_by_id = {image_id: name for name, image_id in image_ids.items()}
        groups = sorted(g for g in group_ids if only is None or g in only)
        # vmconsole's own temporary groups (a replacement being built) are not VMs
        groups = [g for g in groups if not naming.is_temporary(g)]
        images_by_vm = _vm_images(groups, image_ids)
        # one stream: every group header, snapshot record and disk header named after its VM, each VM
        # decoded as soon as its objects are in, while the cluster reads the next ones
        wanted = {
            vm: [
                f"rbd_group_header.{group_ids[vm]}",
                naming.snapshot_records_object(vm),
                *(f"rbd_header.{image_ids[i]}" for i in images_by_vm.get(vm, ())),
            ]
            for vm in groups
        }
        members_by_vm: dict[str, list[str]] = {}
        images: dict[str, ImageInfo] = {}
        records: dict[str, dict[str, dict[str, Any]]] = {}
        tokens: dict[str, object] = {}
        cache: dict[str, tuple[tuple[Any, ...], _VmRead]] = {}
        with contextlib.closing(session.omap_stream([oid for vm in groups for oid in wanted[vm]])) as stream:
            for vm in groups:
                raw = dict(itertools.islice(stream, len(wanted[vm])))
                # members named otherwise (rare): read on the spot
                group_raw = raw.get(f"rbd_group_header.{group_ids[vm]}")
                extra = [
                    f"rbd_header.{key.split('_', 2)[2]}"
                    for key in group_raw or {}
                    if key.startswith("image_") and f"rbd_header.{key.split('_', 2)[2]}" not in raw
                ]
                if extra:
                    raw.update(session.omap_get_many(extra))
                try:
                    read = self._read_vm(session, vm, group_ids[vm], image_ids, names_by_id, raw, cache)
                except VmConsoleError as exc:
                    problems.append(str(exc))
                    continue
                members_by_vm[vm] = read.members
                images.update(read.infos)
                records[vm] = read.records
                tokens[vm] = read
        if only is None:
            self._vms = cache
        else:
            self._vms.update(cache)
        return CephPart(members_by_vm, images, records, health, tuple(problems), tokens)

    def _read_vm(
        self,
        session: RbdSession,
        vm: str,
        group_id: str,
        image_ids: dict[str, str],
        names_by_id: dict[str, str],
        raw: Mapping[str, dict[str, bytes] | None],
        cache: dict[str, tuple[tuple[Any, ...], _VmRead]],
    ) -> _VmRead:
        group_raw = raw.get(f"rbd_group_header.{group_id}")
        records_raw = raw.get(naming.snapshot_records_object(vm)) or {}
        if group_raw is None:
            # removed since the directory was read: the public API says what is left (or raises)
            members, infos = _read_vm_slow(session, vm)
            return _VmRead(members, infos, _decode_records(records_raw))
        member_ids = sorted(k.split("_", 2)[2] for k in group_raw if k.startswith("image_"))
        system_id = image_ids.get(naming.system_image(vm))
        image_oids = sorted(
            {f"rbd_header.{i}" for i in member_ids} | ({f"rbd_header.{system_id}"} if system_id else set())
        )
        # a fingerprint of every object the VM was read from, not the bytes themselves (a 500-VM
        # cluster's headers are megabytes the console would keep for nothing)
        key = (
            _fingerprint(group_raw),
            _fingerprint(records_raw),
            tuple((oid, _fingerprint(raw.get(oid))) for oid in image_oids),
            tuple(sorted((i, names_by_id.get(i)) for i in member_ids)),
        )
        previous = self._vms.get(vm)
        if previous is not None and previous[0] == key:
            cache[vm] = previous
            return previous[1]
        records = _decode_records(records_raw)
        try:
            header = rbd_headers.group_header(group_raw)
            members, infos = self._decode_vm(session, vm, header, image_ids, names_by_id, raw, records)
        except ValueError:
            members, infos = _read_vm_slow(session, vm)
        read = _VmRead(members, infos, records)
        cache[vm] = (key, read)
        return read

    def _decode_vm(
        self,
        session: RbdSession,
        vm: str,
        header: GroupHeader,
        image_ids: dict[str, str],
        names_by_id: dict[str, str],
        raw: Mapping[str, dict[str, bytes] | None],
        records: dict[str, dict[str, Any]],
    ) -> tuple[list[str], dict[str, ImageInfo]]:
        members = sorted(names_by_id[i] for i in header.members if i in names_by_id)
        wanted = set(members)
        if naming.system_image(vm) in image_ids:
            wanted.add(naming.system_image(vm))
        group_snap_names = {entry.snapshot_id: entry.name for entry in header.snapshots if entry.complete}
        infos: dict[str, ImageInfo] = {}
        for image in sorted(wanted, key=lambda i: naming.disk_order(vm, i)):
            image_id = image_ids[image]
            disk_raw = raw.get(f"rbd_header.{image_id}")
            if disk_raw is None:
                raise ValueError(f"header of {image} not read")
            disk = rbd_headers.image_header(image_id, disk_raw)
            if disk.snapshots is not None:
                snapshots = _snapshots_from_header(disk.snapshots, group_snap_names)
            else:
                snapshots = self._snapshots_opening(session, image, image_id, disk, header, records)
            infos[image] = ImageInfo(
                name=image,
                image_id=image_id,
                size=disk.size or 0,
                metadata=disk.metadata,
                snapshots=snapshots,
                group=vm if image in members else None,
            )
        return members, infos

    def _snapshots_opening(
        self,
        session: RbdSession,
        image: str,
        image_id: str,
        disk: ImageHeader,
        header: GroupHeader,
        records: dict[str, dict[str, Any]],
    ) -> tuple[ImageSnapshot, ...]:
        """An image whose snapshot entries could not be decoded: timestamps from librbd (cached)."""
        group_snaps: list[ImageSnapshot] = []
        covered: set[int] = set()
        for entry in header.snapshots:
            if not entry.complete:
                continue
            for member_id, snap_id in entry.members:
                if member_id != image_id or snap_id not in disk.snapshot_ids:
                    continue
                covered.add(snap_id)
                created = _record_time(records.get(entry.name))
                if created is None:
                    created = self._timestamp(session, image, image_id, snap_id)
                group_snaps.append(
                    ImageSnapshot(
                        snap_id, f".group.{entry.snapshot_id}", "group", disk.size or 0, created, False, entry.name
                    )
                )
        user_snaps: tuple[ImageSnapshot, ...] = ()
        if set(disk.snapshot_ids) - covered:
            user_snaps = self._user(session, image, disk.snapshot_blob)
        return (*group_snaps, *user_snaps)

    def _open(self, session: RbdSession, image: str) -> ImageInfo:
        info = session.image_info(image)
        with self._lock:
            for snap in info.snapshots:
                self._timestamps[(info.image_id, snap.snap_id)] = snap.created
        return info

    def _timestamp(self, session: RbdSession, image: str, image_id: str, snap_id: int) -> datetime | None:
        with self._lock:
            if (image_id, snap_id) in self._timestamps:
                return self._timestamps[(image_id, snap_id)]
        self._open(session, image)
        with self._lock:
            return self._timestamps.get((image_id, snap_id))

    def _user(self, session: RbdSession, image: str, blob: bytes) -> tuple[ImageSnapshot, ...]:
        with self._lock:
            cached = self._user_snapshots.get(image)
        if cached is not None and cached[0] == blob:
            return cached[1]
        snaps = tuple(s for s in self._open(session, image).snapshots if s.namespace != "group")
        with self._lock:
            self._user_snapshots[image] = (blob, snaps)
        return snaps


def _record_time(record: dict[str, Any] | None) -> datetime | None:
    if not record or not record.get("created"):
        return None
    try:
        return datetime.fromisoformat(str(record["created"]))
    except ValueError:
        return None


def _fingerprint(omap: Mapping[str, bytes] | None) -> tuple[int, int, int] | None:
    """Equal omaps have equal fingerprints; unequal ones differ but with a chance of 2**-64 (the
    count and total size of the values must match too)."""
    if omap is None:
        return None
    items = tuple(omap.items())
    return (len(items), sum(len(v) for v in omap.values()), hash(items))


@dataclass(frozen=True)
class _VmRead:
    members: list[str]
    infos: dict[str, ImageInfo]
    records: dict[str, dict[str, Any]]


def _vm_images(groups: list[str], image_ids: Mapping[str, str]) -> dict[str, list[str]]:
    """Each VM's images by vm_manager's names (system_<vm>, data_<vm>_<i>), from the image directory."""
    wanted = set(groups)
    found: dict[str, list[str]] = {}
    for image in image_ids:
        if image.startswith(naming.SYSTEM_PREFIX):
            vm = image[len(naming.SYSTEM_PREFIX) :]
            if vm in wanted:
                found.setdefault(vm, []).append(image)
        elif image.startswith(naming.DATA_PREFIX):
            vm, _, index = image[len(naming.DATA_PREFIX) :].rpartition("_")
            if vm in wanted and index.isdigit():
                found.setdefault(vm, []).append(image)
    return found


def _snapshots_from_header(
    entries: tuple[SnapshotEntry, ...], group_names: Mapping[str, str]
) -> tuple[ImageSnapshot, ...]:
    """An image's snapshots as its header holds them (RBD's own timestamps): group snapshots first,
    then the others, each in id order."""
    group_snaps: list[ImageSnapshot] = []
    others: list[ImageSnapshot] = []
    for entry in sorted(entries, key=lambda e: e.snap_id):
        if entry.namespace == "group":
            name = group_names.get(entry.group_snapshot_id or "")
            if name is None:
                continue  # a group snapshot still being made (or being removed): not shown, as before
            group_snaps.append(
                ImageSnapshot(entry.snap_id, entry.name, "group", entry.size, entry.created, False, name)
            )
        else:
            others.append(
                ImageSnapshot(entry.snap_id, entry.name, entry.namespace, entry.size, entry.created, entry.protected)
            )
    return (*group_snaps, *others)


def _decode_records(raw: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """vmconsole's records of a VM's snapshots (see ``read_snapshot_records``)."""
    records: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        try:
            record = json.loads(value)
        except ValueError:
            records[name] = {INVALID_RECORD: "not JSON"}
            continue
        config = record.get("config", {}) if isinstance(record, dict) else None
        if not isinstance(record, dict) or not isinstance(config, dict):
            records[name] = {INVALID_RECORD: "not a record"}
            continue
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in config.items()):
            records[name] = {INVALID_RECORD: "its configuration is not text"}
            continue
        records[name] = record
    return records


def _read_vm_slow(session: RbdSession, vm: str) -> tuple[list[str], dict[str, ImageInfo]]:
    """The public-API way (opens every image): used when a header has an unexpected format."""
    members = session.group_images(vm)
    wanted = sorted({*members, naming.system_image(vm)}, key=lambda i: naming.disk_order(vm, i))
    infos: dict[str, ImageInfo] = {}
    for image in wanted:
        try:
            infos[image] = session.image_info(image)
        except VmConsoleError:
            if image in members:
                raise
    return members, infos


def read_ceph(session: RbdSession, only: set[str] | None = None) -> CephPart:
    return CephReader().read(session, only)


def build_snapshots(vm: str, disks: list[ImageInfo], records: Mapping[str, Mapping[str, Any]]) -> tuple[Snapshot, ...]:
    """One Snapshot per group snapshot and per vm_manager-style per-image snapshot name."""
    disk_names = [d.name for d in disks]
    group_snaps: dict[str, list[tuple[str, datetime | None]]] = {}
    image_snaps: dict[str, list[tuple[str, datetime | None, bool]]] = {}
    ids: dict[tuple[str, str], dict[str, int]] = {}  # (kind, name) -> disk -> snapshot id
    for disk in disks:
        for snap in disk.snapshots:
            if snap.namespace == "group" and snap.group_snap_name:
                group_snaps.setdefault(snap.group_snap_name, []).append((disk.name, snap.created))
                ids.setdefault(("group", snap.group_snap_name), {})[disk.name] = snap.snap_id
            elif snap.namespace == "user":
                image_snaps.setdefault(snap.name, []).append((disk.name, snap.created, snap.protected))
                ids.setdefault(("image", snap.name), {})[disk.name] = snap.snap_id
    result: list[Snapshot] = []
    for name, holders in group_snaps.items():
        record = record_of(records.get(name, {}), ids[("group", name)])
        stamps = [t for _, t in holders if t is not None]
        result.append(
            Snapshot(
                name=name,
                kind="group",
                created=min(stamps) if stamps else None,
                disks=tuple(d for d, _ in holders),
                protected=bool(record.get("protected", False)),
                missing_on=tuple(d for d in disk_names if d not in {h for h, _ in holders}),
                metadata=MappingProxyType(dict(record.get("config", {}))),
            )
        )
    for name, image_holders in image_snaps.items():
        stamps = [t for _, t, _ in image_holders if t is not None]
        record = record_of(records.get(name, {}), ids[("image", name)])
        result.append(
            Snapshot(
                name=name,
                kind="image",
                created=min(stamps) if stamps else None,
                disks=tuple(d for d, _, _ in image_holders),
                protected=any(p for _, _, p in image_holders) or bool(record.get("protected", False)),
                missing_on=tuple(d for d in disk_names if d not in {h for h, _, _ in image_holders}),
                metadata=MappingProxyType(dict(record.get("config", {}))),
            )
        )
    result.sort(key=lambda s: (s.created or datetime.min.replace(tzinfo=UTC), s.name))
    return tuple(result)


@dataclass(frozen=True)
class CephSide:
    """What a VM's row takes from Ceph alone: built once per change of the VM's objects (in the
    reading thread, beside Pacemaker's answer), not at every read."""

    has_group: bool
    disks: tuple[Disk, ...]
    settings: Mapping[str, Any]
    uuid: str | None
    snapshots: tuple[Snapshot, ...]
    user_metadata: Mapping[str, str]
    missing_system: str | None  # the problem said first
    problems: tuple[str, ...]  # said after Pacemaker's


def ceph_side(vm: str, ceph: CephPart | None) -> CephSide:
    disks: list[ImageInfo] = []
    metadata: dict[str, str] = {}
    has_group = True
    missing_system = None
    if ceph is not None:
        has_group = vm in ceph.groups
        images = sorted({*ceph.groups.get(vm, []), naming.system_image(vm)}, key=lambda i: naming.disk_order(vm, i))
        disks = [ceph.images[i] for i in images if i in ceph.images]
        system = ceph.images.get(naming.system_image(vm))
        metadata = dict(system.metadata) if system else {}
        if has_group and system is None:
            missing_system = f"its system disk {naming.system_image(vm)} is missing"
    problems: list[str] = []
    try:
        settings = VmSettings.from_metadata(metadata)
        settings_map: Mapping[str, Any] = MappingProxyType(settings.to_json())
    except VmConsoleError as exc:
        problems.append(f"settings: {exc}")
        settings_map = MappingProxyType({})
    uuid = None
    if "xml" in metadata:
        try:
            uuid = domain_uuid(metadata["xml"])
        except VmConsoleError as exc:
            problems.append(f"stored xml: {exc}")
    if not _VM_NAME_AS_STORED.fullmatch(vm):
        problems.append("its name is not a VM name (letters and digits): vmconsole shows it but does not act on it")
    records = ceph.records.get(vm, {}) if ceph else {}
    for snapshot, record in records.items():
        if INVALID_RECORD in record:
            problems.append(f"vmconsole's record of snapshot {snapshot!r} is unreadable ({record[INVALID_RECORD]})")
    return CephSide(
        has_group=has_group,
        disks=tuple(Disk(d.name, d.size) for d in disks),
        settings=settings_map,
        uuid=uuid,
        snapshots=build_snapshots(vm, disks, records),
        user_metadata=MappingProxyType(user_metadata(metadata)),
        missing_system=missing_system,
        problems=tuple(problems),
    )


def build_vm(vm: str, ceph: CephPart | None, pcmk: PacemakerPart | None, side: CephSide | None = None) -> VmState:
    """The VM as both parts say; ``side``: its ``ceph_side(vm, ceph)`` when already built."""
    side = side or ceph_side(vm, ceph)
    primitive = pcmk.primitives.get(vm) if pcmk else None
    if primitive is not None and not primitive.is_vm:
        primitive = None
    resource = pcmk.status.resource(vm) if pcmk else None
    problems: list[str] = [side.missing_system] if side.missing_system else []
    if pcmk is None:
        status, node = VmStatus.UNDEFINED if not side.has_group else VmStatus.DISABLED, None
        problems.append("Pacemaker state unknown")
    else:
        status, node = derive_status_and_node(side.has_group, primitive, resource)
    problems.extend(side.problems)
    if pcmk is not None and primitive is None and vm in pcmk.primitives:
        problems.append("a Pacemaker resource of this name is not an ocf:seapath:VirtualDomain")
    failures = resource.failures if resource else ()
    target_role = (primitive.target_role if primitive else None) or (resource.target_role if resource else None)
    return VmState(
        name=vm,
        status=status,
        node=node,
        enabled=primitive is not None,
        uuid=side.uuid,
        target_role=target_role,
        managed=primitive.managed if primitive else True,
        blocked=bool(resource and resource.blocked),
        failed=status is VmStatus.FAILED,
        fail_count=resource.fail_count if resource else 0,
        last_failure=max(failures, key=lambda f: f.when or datetime.min.replace(tzinfo=UTC)) if failures else None,
        resource=resource,
        disks=side.disks,
        snapshots=side.snapshots,
        metadata=side.user_metadata,
        settings=side.settings,
        problems=tuple(problems),
        vm_manager_status=vm_manager_status(
            status,
            enabled=primitive is not None,
            target_role=target_role,
            node=node,
            blocked=bool(resource and resource.blocked),
        ),
    )


def with_observer(nodes: tuple[NodeState, ...], config: Config) -> tuple[NodeState, ...]:
    """The nodes, the observer (SEAPATH's /etc/cluster.conf or the configuration) as kind "observer".
    An untrusted cluster description marks none here (the operations that ban the observer say why)."""
    try:
        observer = read_observer(config.pacemaker)
    except ConfigError:
        return nodes
    return tuple(replace(n, kind="observer") if n.name == observer and n.kind == "member" else n for n in nodes)


class StateReader:
    """Reads ``ClusterState`` again and again, on the process's one RADOS connection."""

    def __init__(
        self,
        config: Config,
        *,
        timeout: float | None = None,
        ceph: CephConnection | None = None,
        pacemaker: PacemakerClient | None = None,
    ) -> None:
        self.config = config
        self.pacemaker = pacemaker or PacemakerClient(config.pacemaker)
        self.timeout = timeout or max(config.ceph.timeout, config.pacemaker.timeout) + 2
        self._own_ceph = ceph is None
        self.ceph = ceph or CephConnection(config.ceph)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="read")
        self._ceph_reader = CephReader()
        self._pacemaker = PacemakerReader(self.pacemaker)
        # the last whole Ceph read: (monotonic time, part, the CIB's epoch then)
        self._last_ceph: tuple[float, CephPart, str | None] | None = None
        # vm -> (what it was built from, the VmState): unchanged VMs keep their very VmState
        self._vm_cache: dict[str, tuple[tuple[object, ...], VmState]] = {}
        # vm -> (the token of the read it was built from, its Ceph side)
        self._sides: dict[str, tuple[object, CephSide]] = {}

    def _read_ceph(self, only: set[str] | None) -> CephPart:
        started = time.monotonic()
        epoch = self._cib_epoch()
        part = self._ceph_reader.read(self.ceph.session(), only)
        # what each changed VM takes from Ceph alone, built here while Pacemaker is still answering
        sides = {}
        for vm, token in part.tokens.items():
            known = self._sides.get(vm)
            sides[vm] = known if known is not None and known[0] is token else (token, ceph_side(vm, part))
        if only is None:
            self._sides = sides
        else:
            self._sides.update(sides)
        if only is None and not part.problems:
            self._last_ceph = (started, part, epoch)
        return part

    def _cib_epoch(self) -> str | None:
        """``admin_epoch.epoch`` of the CIB as last read (None before any read)."""
        return self._pacemaker.epoch

    def _build_vm(self, vm: str, ceph: CephPart | None, pcmk: PacemakerPart | None) -> VmState:
        if ceph is None or pcmk is None or vm not in ceph.tokens:
            return build_vm(vm, ceph, pcmk)
        token = ceph.tokens[vm]
        primitive = pcmk.primitives.get(vm)
        resource = pcmk.status.resource(vm)
        cached = self._vm_cache.get(vm)
        if cached is not None:
            (was_token, was_primitive, was_resource), state = cached
            if was_token is token and was_primitive == primitive and was_resource == resource:
                return state
        side = self._sides.get(vm)
        state = build_vm(vm, ceph, pcmk, side[1] if side is not None and side[0] is token else None)
        self._vm_cache[vm] = ((token, primitive, resource), state)
        return state

    def close(self) -> None:
        if self._own_ceph:
            self.ceph.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def pacemaker_part(self) -> PacemakerPart:
        """What changed since the last read, read again (``PacemakerReader``)."""
        return self._pacemaker.read()

    def read(self, only: set[str] | None = None, *, ceph_max_age: float = 0.0) -> ClusterState:
        """The cluster's state. ``ceph_max_age`` > 0: the Ceph part of the last whole read is used again
        when it is younger than that (a console's timed refresh between two reads of the headers)."""
        started = time.monotonic()
        problems: list[str] = []
        last = self._last_ceph
        if (
            only is None
            and ceph_max_age > 0
            and last is not None
            and started - last[0] < ceph_max_age
            and (
                # a configuration change (a VM added or removed by someone) reads everything again
                last[2] is not None and last[2] == self._cib_epoch()
            )
        ):
            ceph_future: Future[CephPart] = Future()
            ceph_future.set_result(last[1])
        else:
            ceph_future = self._pool.submit(self._read_ceph, only)
        pcmk_future: Future[PacemakerPart] = self._pool.submit(self.pacemaker_part)
        deadline = started + self.timeout

        def collect(future: Future[Any], what: str, on_error: Callable[[], None] | None = None) -> Any:
            try:
                return future.result(timeout=max(0.1, deadline - time.monotonic()))
            except FutureTimeout:
                problems.append(f"{what}: no answer within {self.timeout:g} s")
            except BackendTimeout as exc:
                problems.append(str(exc))
            except VmConsoleError as exc:
                problems.append(str(exc))
            if on_error:
                on_error()
            return None

        ceph: CephPart | None = collect(ceph_future, "ceph", self.ceph.retire)
        pcmk: PacemakerPart | None = collect(pcmk_future, "pacemaker")
        if ceph is not None:
            problems.extend(ceph.problems)
        names: set[str] = set(ceph.groups) if ceph else set()
        if pcmk is not None:
            names |= {rid for rid, p in pcmk.primitives.items() if p.is_vm}
        if ceph is None and pcmk is None:
            names = set()
        if only is not None:
            names &= only
        vms = tuple(self._build_vm(vm, ceph, pcmk) for vm in sorted(names))
        if only is None:
            self._vm_cache = {vm.name: self._vm_cache[vm.name] for vm in vms if vm.name in self._vm_cache}
        nodes: tuple[NodeState, ...] = with_observer(pcmk.status.nodes, self.config) if pcmk else ()
        return ClusterState(
            taken_at=datetime.now(UTC),
            nodes=nodes,
            vms=vms,
            ceph=ceph.health if ceph else None,
            quorum=pcmk.status.quorum if pcmk else None,
            dc=pcmk.status.dc if pcmk else None,
            cluster_name=pcmk.cluster_name if pcmk else None,
            problems=tuple(problems),
            duration=time.monotonic() - started,
        )
