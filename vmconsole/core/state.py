"""Gather the whole cluster into one immutable ``ClusterState``.

One RADOS connection and one ``crm_mon`` (plus one CIB query) per refresh, Ceph and Pacemaker read
at the same time, VMs read with bounded parallelism, and a deadline on everything: a backend that
does not answer makes the state partial (with the reason), never makes the caller wait forever.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from vmconsole.backends.pacemaker import PacemakerClient
from vmconsole.backends.rbd import ImageInfo, ImageSnapshot, RbdSession
from vmconsole.config import Config
from vmconsole.core.connection import CephConnection
from vmconsole.domain import naming
from vmconsole.domain.domain_xml import domain_uuid
from vmconsole.domain.errors import BackendTimeout, VmConsoleError
from vmconsole.domain.model import CephHealth, ClusterState, Disk, NodeState, Snapshot, VmState, VmStatus
from vmconsole.domain.pacemaker_status import CrmMonSnapshot
from vmconsole.domain.primitive import PrimitiveConfig
from vmconsole.domain.settings import VmSettings, user_metadata
from vmconsole.domain.status import derive_status_and_node

READ_WORKERS = 8


@dataclass(frozen=True)
class CephPart:
    groups: dict[str, list[str]]  # vm -> images of its group
    images: dict[str, ImageInfo]
    records: dict[str, dict[str, dict[str, Any]]]  # vm -> snapshot name -> vmconsole record
    health: CephHealth
    problems: tuple[str, ...]


@dataclass(frozen=True)
class PacemakerPart:
    status: CrmMonSnapshot
    primitives: dict[str, PrimitiveConfig]
    cluster_name: str | None


# what vm_manager accepts as a VM name; a group named otherwise is shown, never used to build a path
_VM_NAME_AS_STORED = re.compile(r"[A-Za-z0-9]+")
INVALID_RECORD = "_invalid"  # a record vmconsole cannot read: kept out, and said on the VM


def read_snapshot_records(session: RbdSession, vm: str) -> dict[str, dict[str, Any]]:
    """vmconsole's records of the VM's snapshots. One that cannot be read (another version's, a
    damaged one) is replaced by ``{INVALID_RECORD: why}``: it marks that VM, never breaks a listing."""
    raw = session.omap_get(naming.snapshot_records_object(vm))
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


class CephReader:
    """Reads every VM's disks, metadata and snapshots with a few omap reads per VM.

    A VM costs one read of its group header (members and group snapshots), one read per disk header
    (metadata, size, snapshot ids) and one of vmconsole's snapshot records. Images are opened only
    to learn what the headers do not say cheaply (per-image snapshots, timestamps of snapshots made by
    other tools), and what they learn is cached: a snapshot's timestamp never changes, and an image's
    per-image snapshot list is reused while its header's snapshot entries stay byte-identical.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timestamps: dict[tuple[str, int], datetime | None] = {}
        self._user_snapshots: dict[str, tuple[bytes, tuple[ImageSnapshot, ...]]] = {}

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
        groups = [g for g in groups if not g.startswith("vmconsole")]

        def read_vm(vm: str) -> tuple[str, list[str], dict[str, ImageInfo], dict[str, dict[str, Any]]]:
            records = read_snapshot_records(session, vm)
            try:
                members, infos = self._read_vm_fast(session, vm, group_ids[vm], image_ids, names_by_id, records)
            except ValueError:
                members, infos = _read_vm_slow(session, vm)
            return vm, members, infos, records

        members_by_vm: dict[str, list[str]] = {}
        images: dict[str, ImageInfo] = {}
        records: dict[str, dict[str, dict[str, Any]]] = {}
        with ThreadPoolExecutor(max_workers=READ_WORKERS, thread_name_prefix="read-vm") as pool:
            for future in [pool.submit(read_vm, vm) for vm in groups]:
                try:
                    vm, members, infos, vm_records = future.result()
                except VmConsoleError as exc:
                    problems.append(str(exc))
                    continue
                members_by_vm[vm] = members
                images.update(infos)
                records[vm] = vm_records
        return CephPart(members_by_vm, images, records, health, tuple(problems))

    def _read_vm_fast(
        self,
        session: RbdSession,
        vm: str,
        group_id: str,
        image_ids: dict[str, str],
        names_by_id: dict[str, str],
        records: dict[str, dict[str, Any]],
    ) -> tuple[list[str], dict[str, ImageInfo]]:
        header = session.group_header(group_id)
        members = sorted(names_by_id[i] for i in header.members if i in names_by_id)
        wanted = set(members)
        if naming.system_image(vm) in image_ids:
            wanted.add(naming.system_image(vm))
        infos: dict[str, ImageInfo] = {}
        for image in sorted(wanted, key=lambda i: naming.disk_order(vm, i)):
            image_id = image_ids[image]
            disk = session.image_header(image_id)
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
            infos[image] = ImageInfo(
                name=image,
                image_id=image_id,
                size=disk.size or 0,
                metadata=disk.metadata,
                snapshots=(*group_snaps, *user_snaps),
                group=vm if image in members else None,
            )
        return members, infos

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


def read_pacemaker(client: PacemakerClient) -> PacemakerPart:
    # the two queries are independent: run them side by side
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cib") as pool:
        configuration = pool.submit(client.configuration)
        status = client.status()
        primitives, cluster_name = configuration.result()
    return PacemakerPart(status, primitives, cluster_name)


def build_snapshots(vm: str, disks: list[ImageInfo], records: Mapping[str, Mapping[str, Any]]) -> tuple[Snapshot, ...]:
    """One Snapshot per group snapshot and per vm_manager-style per-image snapshot name."""
    disk_names = [d.name for d in disks]
    group_snaps: dict[str, list[tuple[str, datetime | None]]] = {}
    image_snaps: dict[str, list[tuple[str, datetime | None, bool]]] = {}
    for disk in disks:
        for snap in disk.snapshots:
            if snap.namespace == "group" and snap.group_snap_name:
                group_snaps.setdefault(snap.group_snap_name, []).append((disk.name, snap.created))
            elif snap.namespace == "user":
                image_snaps.setdefault(snap.name, []).append((disk.name, snap.created, snap.protected))
    result: list[Snapshot] = []
    for name, holders in group_snaps.items():
        record = records.get(name, {})
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
        record = records.get(name, {})
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


def build_vm(vm: str, ceph: CephPart | None, pcmk: PacemakerPart | None) -> VmState:
    problems: list[str] = []
    primitive = pcmk.primitives.get(vm) if pcmk else None
    if primitive is not None and not primitive.is_vm:
        primitive = None
    resource = pcmk.status.resource(vm) if pcmk else None
    disks: list[ImageInfo] = []
    metadata: dict[str, str] = {}
    has_group = True
    if ceph is not None:
        has_group = vm in ceph.groups
        images = sorted({*ceph.groups.get(vm, []), naming.system_image(vm)}, key=lambda i: naming.disk_order(vm, i))
        disks = [ceph.images[i] for i in images if i in ceph.images]
        system = ceph.images.get(naming.system_image(vm))
        metadata = dict(system.metadata) if system else {}
        if has_group and system is None:
            problems.append(f"its system disk {naming.system_image(vm)} is missing")
    if pcmk is None:
        status, node = VmStatus.UNDEFINED if not has_group else VmStatus.DISABLED, None
        problems.append("Pacemaker state unknown")
    else:
        status, node = derive_status_and_node(has_group, primitive, resource)
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
    for snapshot, record in (ceph.records.get(vm, {}) if ceph else {}).items():
        if INVALID_RECORD in record:
            problems.append(f"vmconsole's record of snapshot {snapshot!r} is unreadable ({record[INVALID_RECORD]})")
    if pcmk is not None and primitive is None and vm in pcmk.primitives:
        problems.append("a Pacemaker resource of this name is not an ocf:seapath:VirtualDomain")
    failures = resource.failures if resource else ()
    return VmState(
        name=vm,
        status=status,
        node=node,
        enabled=primitive is not None,
        uuid=uuid,
        target_role=(primitive.target_role if primitive else None) or (resource.target_role if resource else None),
        managed=primitive.managed if primitive else True,
        blocked=bool(resource and resource.blocked),
        failed=status is VmStatus.FAILED,
        fail_count=resource.fail_count if resource else 0,
        last_failure=max(failures, key=lambda f: f.when or datetime.min.replace(tzinfo=UTC)) if failures else None,
        resource=resource,
        disks=tuple(Disk(d.name, d.size) for d in disks),
        snapshots=build_snapshots(vm, disks, ceph.records.get(vm, {}) if ceph else {}),
        metadata=MappingProxyType(user_metadata(metadata)),
        settings=settings_map,
        problems=tuple(problems),
    )


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
        self._pacemaker_cache: tuple[str, PacemakerPart] | None = None

    def close(self) -> None:
        if self._own_ceph:
            self.ceph.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def pacemaker_part(self) -> PacemakerPart:
        """crm_mon and the CIB again only when the CIB changed since the last read (its version says)."""
        version = self.pacemaker.cib_version()
        cached = self._pacemaker_cache
        if cached is not None and cached[0] == version:
            return cached[1]
        part = read_pacemaker(self.pacemaker)
        self._pacemaker_cache = (version, part)
        return part

    def read(self, only: set[str] | None = None) -> ClusterState:
        started = time.monotonic()
        problems: list[str] = []
        ceph_future: Future[CephPart] = self._pool.submit(lambda: self._ceph_reader.read(self.ceph.session(), only))
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
        vms = tuple(build_vm(vm, ceph, pcmk) for vm in sorted(names))
        nodes: tuple[NodeState, ...] = pcmk.status.nodes if pcmk else ()
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
