"""librados/librbd adapter: one connection, timeouts on every call, errors in vmconsole's words.

Everything vmconsole keeps on the cluster lives here: VM images, groups and metadata in vm_manager's
layout, snapshots, and the small RADOS objects of vmconsole's own (locks, journal, history).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import rados
import rbd

from vmconsole.backends import rbd_headers
from vmconsole.backends.proc import follow_progress, run
from vmconsole.backends.rbd_headers import GroupHeader, ImageHeader
from vmconsole.config import CephSection
from vmconsole.domain.errors import BackendError, BackendTimeout, ConfigError, ConflictError, NotFoundError

T = TypeVar("T")
P = ParamSpec("P")
BACKEND = "ceph"
# Entries asked per omap read (an OSD's per-request cap is 1024 by default), and the count from which
# a batched read is read again page by page because it may have been cut.
OMAP_PAGE = 1024
OMAP_FOLLOW_UP = 128
GROUP_SNAPSHOT_PREFIX = ".group."
_DEEP_COPY_PROGRESS = re.compile(rb"(\d+)% complete")  # how a group snapshot shows up on each member image


# How long closing waits for calls still running in other threads before it gives up on the connection
CLOSE_WAIT = 5.0


def _uses_connection(method: Callable[Concatenate[RbdSession, P], T]) -> Callable[Concatenate[RbdSession, P], T]:
    """Counts the call as one in flight on the connection, which ``close`` then waits for."""

    def call(self: RbdSession, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self.in_use():
            return method(self, *args, **kwargs)

    functools.update_wrapper(call, method)
    return call


@dataclass(frozen=True)
class ImageSnapshot:
    snap_id: int
    name: str
    namespace: str  # "user", "group", "trash", "mirror"
    size: int
    created: datetime | None
    protected: bool
    group_snap_name: str | None = None  # for namespace "group": the group snapshot's name


@dataclass(frozen=True)
class ImageInfo:
    name: str
    image_id: str
    size: int
    metadata: dict[str, str]
    snapshots: tuple[ImageSnapshot, ...]
    group: str | None


def _translate(exc: Exception, what: str) -> BackendError:
    """Turn a librados/librbd exception into one error class with the operation named."""
    if isinstance(exc, rados.TimedOut | rbd.Timeout) or getattr(exc, "errno", None) == 110:
        return BackendTimeout(BACKEND, f"{what}: no answer from the cluster in time")
    if isinstance(exc, rbd.ImageNotFound | rados.ObjectNotFound):
        return NotFoundError(f"{what}: not found")  # type: ignore[return-value]
    if isinstance(exc, rbd.ImageExists | rados.ObjectExists):
        return ConflictError(f"{what}: already exists")  # type: ignore[return-value]
    if isinstance(exc, rbd.ImageBusy | rados.ObjectBusy):
        return BackendError(BACKEND, f"{what}: busy (in use by a client or has dependent clones)")
    if isinstance(exc, rados.PermissionDeniedError | rbd.PermissionError):
        return BackendError(BACKEND, f"{what}: permission denied")
    return BackendError(BACKEND, f"{what}: {exc}")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except (rados.Error, rbd.Error) as exc:
        raise _translate(exc, what) from exc


def monitor_hosts(mon_dump: dict[str, Any]) -> list[tuple[str, int]]:
    """Each monitor's (host, port) from ``mon dump``: its v1 address, else its v2 one (a msgr2-only
    monmap has no v1; Ceph's clients take port 3300 as msgr2), else the legacy ``public_addr``."""
    found: list[tuple[str, int]] = []
    for mon in mon_dump.get("mons", []):
        by_type = {a.get("type"): a.get("addr", "") for a in mon.get("public_addrs", {}).get("addrvec", [])}
        address = by_type.get("v1") or by_type.get("v2") or str(mon.get("public_addr", "")).split("/", 1)[0]
        host, _, port = address.rpartition(":")
        if host and port.isdigit():
            found.append((host.strip("[]"), int(port)))
    return found


class RbdSession:
    """One RADOS connection and I/O context on the VM pool (and namespace)."""

    def __init__(self, config: CephSection) -> None:
        self.config = config
        self._calls = threading.Condition()
        self._in_flight = 0
        self._closed = False
        timeout = str(int(config.timeout))
        if not Path(config.conf).is_file():
            raise ConfigError(
                "the Ceph configuration file does not exist",
                field=f"[ceph] conf = {config.conf}",
                hint="point [ceph] conf at the cluster's ceph.conf in vmconsole's configuration",
            )
        self._cluster = rados.Rados(
            conffile=config.conf,
            rados_id=config.client_id,
            conf={
                # Management calls fail after the timeout instead of hanging on a sick cluster.
                "client_mount_timeout": timeout,
                "rados_osd_op_timeout": timeout,
                "rados_mon_op_timeout": timeout,
            },
        )
        with translated("connecting to the cluster"):
            self._cluster.connect()
        try:
            with translated(f"opening pool {config.pool!r}"):
                self.ioctx = self._cluster.open_ioctx(config.pool)
                if config.namespace:
                    self.ioctx.set_namespace(config.namespace)
        except BaseException:
            self._cluster.shutdown()
            raise
        self.rbd = rbd.RBD()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """One call on the connection: refused once it is closed, waited for by ``close``."""
        with self._calls:
            if self._closed:
                raise BackendError(BACKEND, "the connection to the cluster is closed")
            self._in_flight += 1
        try:
            yield
        finally:
            with self._calls:
                self._in_flight -= 1
                self._calls.notify_all()

    def close(self, wait: float = CLOSE_WAIT) -> None:
        """Refuse new calls, wait for those running, then close. librados aborts the whole process on a
        call made on a shut-down connection, so one still running after ``wait`` (a cluster that stopped
        answering) keeps it open: it goes with the process."""
        with self._calls:
            self._closed = True
            if not self._calls.wait_for(lambda: self._in_flight == 0, timeout=wait):
                return
        with contextlib.suppress(Exception):
            self.ioctx.close()
        with contextlib.suppress(Exception):
            self._cluster.shutdown()

    def __enter__(self) -> RbdSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ cluster
    @_uses_connection
    def mon_command(self, command: dict[str, Any]) -> dict[str, Any]:
        with translated(f"ceph {command.get('prefix')}"):
            ret, out, errs = self._cluster.mon_command(json.dumps(command), b"", timeout=self.config.timeout)
        if ret != 0:
            if ret == -110:
                raise BackendTimeout(BACKEND, f"ceph {command.get('prefix')}: the monitors did not answer")
            raise BackendError(BACKEND, f"ceph {command.get('prefix')} failed ({ret}): {errs}")
        return dict(json.loads(out)) if out else {}

    def health(self) -> tuple[str, list[str]]:
        data = self.mon_command({"prefix": "health", "format": "json"})
        checks = [
            f"{name}: {check.get('summary', {}).get('message', '')}" for name, check in data.get("checks", {}).items()
        ]
        return str(data.get("status", "unknown")), checks

    def monitors(self) -> list[tuple[str, int]]:
        """Monitor (host, v1 port) pairs from the monmap, for the disk XML QEMU connects with."""
        return monitor_hosts(self.mon_command({"prefix": "mon dump", "format": "json"}))

    def snaptrim_pending(self) -> bool:
        """True while removed snapshots of the pool still wait to be trimmed by the OSDs.

        The osdmap's ``removed_snaps_queue`` drains as the OSDs report purged snapshots (through
        the mgr).
        """
        data = self.mon_command({"prefix": "osd dump", "format": "json"})
        pool_id = next((p.get("pool") for p in data.get("pools", []) if p.get("pool_name") == self.config.pool), None)
        return any(q.get("pool") == pool_id and q.get("snaps") for q in data.get("removed_snaps_queue", []))

    # ------------------------------------------------------------------ listing
    @_uses_connection
    def group_names(self) -> list[str]:
        with translated("listing RBD groups"):
            return sorted(self.rbd.group_list(self.ioctx))

    @_uses_connection
    def image_ids(self) -> dict[str, str]:
        with translated("listing RBD images"):
            return {entry["name"]: entry["id"] for entry in self.rbd.list2(self.ioctx)}

    @_uses_connection
    def group_images(self, group: str) -> list[str]:
        with translated(f"listing images of group {group}"):
            return sorted(entry["name"] for entry in rbd.Group(self.ioctx, group).list_images())

    @_uses_connection
    def group_snapshots(self, group: str) -> list[str]:
        with translated(f"listing snapshots of group {group}"):
            return [s["name"] for s in rbd.Group(self.ioctx, group).list_snaps()]

    def group_exists(self, group: str) -> bool:
        return group in self.group_names()

    @_uses_connection
    def image_exists(self, image: str) -> bool:
        try:
            with rbd.Image(self.ioctx, image, read_only=True):
                return True
        except rbd.ImageNotFound:
            return False
        except (rados.Error, rbd.Error) as exc:
            raise _translate(exc, f"opening image {image}") from exc

    @_uses_connection
    def header_metadata(self, image_id: str) -> dict[str, str]:
        """An image's metadata straight from its header object's omap: one read, no image open.

        librbd stores metadata as omap keys ``metadata_<key>`` of ``rbd_header.<id>`` holding the raw
        value bytes; reading them directly is 30 times faster than opening each image.
        """
        with translated(f"reading metadata of image id {image_id}"), rados.ReadOpCtx() as op:
            iterator, _ = self.ioctx.get_omap_vals(op, "", "metadata_", 10000)
            self.ioctx.operate_read_op(op, f"rbd_header.{image_id}")
            return {key[len("metadata_") :]: bytes(value).decode(errors="replace") for key, value in iterator}

    @_uses_connection
    def _omap_all(self, oid: str) -> dict[str, bytes]:
        with rados.ReadOpCtx() as op:
            iterator, _ = self.ioctx.get_omap_vals(op, "", "", 100000)
            self.ioctx.operate_read_op(op, oid)
            return {key: bytes(value) for key, value in iterator}

    @_uses_connection
    def omap_get_many(self, oids: Sequence[str], window: int = 256) -> dict[str, dict[str, bytes] | None]:
        """The whole omap of many objects (see ``omap_stream``), all of them at once."""
        return dict(self.omap_stream(oids, window))

    def omap_stream(
        self, oids: Sequence[str], window: int = 256
    ) -> Generator[tuple[str, dict[str, bytes] | None], None, None]:
        """The whole omap of each object, in the order asked, while the next ones are read: librados'
        asynchronous read ops, ``window`` of them in flight (one more sent as each is taken), no Python
        thread. What the caller does with one object overlaps the cluster's reading of the next. None
        for an object that does not exist; other errors raise, naming the object."""
        pending: deque[tuple[str, rados.ReadOp, Any, Any]] = deque()
        waiting = iter(oids)

        def send(oid: str) -> None:
            op = rados.ReadOp().create()
            try:
                iterator, _ = self.ioctx.get_omap_vals(op, "", "", 100000)
                completion = self.ioctx.operate_aio_read_op(op, oid)
            except BaseException:
                op.release()
                raise
            pending.append((oid, op, iterator, completion))

        with self.in_use():
            try:
                for oid in itertools.islice(waiting, window):
                    send(oid)
                while pending:
                    oid, op, iterator, completion = pending[0]
                    completion.wait_for_complete()
                    code = completion.get_return_value()
                    result: dict[str, bytes] | None
                    if code == -2:  # ENOENT
                        result = None
                    elif code == -110:
                        raise BackendTimeout(BACKEND, f"reading {oid}: no answer from the cluster in time")
                    elif code < 0:
                        raise BackendError(BACKEND, f"reading {oid}: error {-code}")
                    else:
                        result = {key: bytes(value) for key, value in iterator}
                    pending.popleft()
                    op.release()
                    following = next(waiting, None)
                    if following is not None:
                        send(following)
                    if result is not None and len(result) >= OMAP_FOLLOW_UP:
                        result = self.omap_get(oid)  # possibly cut at the OSD's per-read cap
                    yield oid, result
            except rados.Error as exc:
                raise _translate(exc, "reading RBD headers") from exc
            finally:
                for _oid, op, _iterator, completion in pending:
                    completion.wait_for_complete()  # never free an op librados still writes to
                    op.release()

    def group_ids(self) -> dict[str, str]:
        """Group name -> id, in one read of the pool's group directory."""
        try:
            with translated("listing RBD groups"):
                raw = self._omap_all("rbd_group_directory")
        except NotFoundError:
            return {}
        return rbd_headers.group_ids(raw)

    def group_header(self, group_id: str) -> GroupHeader:
        """Members and snapshots of a group in one omap read (decoded; ValueError if the format surprises)."""
        with translated(f"reading group header {group_id}"):
            raw = self._omap_all(f"rbd_group_header.{group_id}")
        return rbd_headers.group_header(raw)

    def image_header(self, image_id: str) -> ImageHeader:
        """Metadata, size and snapshot ids of an image in one omap read of its header object."""
        with translated(f"reading image header {image_id}"):
            raw = self._omap_all(f"rbd_header.{image_id}")
        return rbd_headers.image_header(image_id, raw)

    @_uses_connection
    def image_info(self, name: str) -> ImageInfo:
        with translated(f"reading image {name}"), rbd.Image(self.ioctx, name, read_only=True) as image:
            snapshots = tuple(self._snapshots(image))
            group = image.group()
            return ImageInfo(
                name=name,
                image_id=image.id(),
                size=image.size(),
                metadata=dict(image.metadata_list()),
                snapshots=snapshots,
                group=group["name"] or None,
            )

    def _snapshots(self, image: rbd.Image) -> Iterator[ImageSnapshot]:
        for snap in image.list_snaps():
            namespace = {0: "user", 1: "group", 2: "trash", 3: "mirror"}.get(
                image.snap_get_namespace_type(snap["id"]), "other"
            )
            group_snap_name = None
            protected = False
            if namespace == "group":
                group_snap_name = image.snap_get_group_namespace(snap["id"]).get("snap_name")
            elif namespace == "user":
                protected = bool(image.is_protected_snap(snap["name"]))
            stamp = image.get_snap_timestamp(snap["id"])
            yield ImageSnapshot(
                snap_id=snap["id"],
                name=snap["name"],
                namespace=namespace,
                size=snap["size"],
                created=stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC),
                protected=protected,
                group_snap_name=group_snap_name,
            )

    @_uses_connection
    def disk_usage(self, name: str) -> int | None:
        """Bytes allocated in the image head, from the object map (fast-diff); None if unknown."""
        used = 0

        def count(offset: int, length: int, exists: bool) -> int:
            nonlocal used
            if exists:
                used += length
            return 0

        try:
            with rbd.Image(self.ioctx, name, read_only=True) as image:
                image.diff_iterate(0, image.size(), None, count, whole_object=True)
        except (rados.Error, rbd.Error):
            return None
        return used

    @_uses_connection
    def written_since(self, name: str, snapshot: str) -> int | None:
        """Bytes written to an image since one of its snapshots (RBD diff), None when unknown."""
        written = 0

        def count(offset: int, length: int, exists: bool) -> int:
            nonlocal written
            written += length
            return 0

        try:
            with rbd.Image(self.ioctx, name, read_only=True) as image:
                image.diff_iterate(0, image.size(), snapshot, count, whole_object=True)
        except (rados.Error, rbd.Error):
            return None
        return written

    # ------------------------------------------------------------------ images
    @_uses_connection
    def create_image(self, name: str, size: int) -> None:
        with translated(f"creating image {name}"):
            self.rbd.create(self.ioctx, name, size)

    @_uses_connection
    def rename_image(self, old: str, new: str) -> None:
        with translated(f"renaming image {old} to {new}"):
            self.rbd.rename(self.ioctx, old, new)

    @_uses_connection
    def remove_image(self, name: str, *, purge_snapshots: bool = True) -> None:
        """Remove an image, its user snapshots first (unprotecting them) when asked."""
        with translated(f"removing image {name}"):
            if purge_snapshots:
                with rbd.Image(self.ioctx, name) as image:
                    for snap in image.list_snaps():
                        if image.snap_get_namespace_type(snap["id"]) != 0:
                            continue  # group snapshots go with the group
                        if image.is_protected_snap(snap["name"]):
                            image.unprotect_snap(snap["name"])
                        image.remove_snap(snap["name"])
            self.rbd.remove(self.ioctx, name)

    @_uses_connection
    def write(self, name: str, offset: int, data: bytes) -> None:
        with translated(f"writing to image {name}"), rbd.Image(self.ioctx, name) as image:
            image.write(data, offset)
            image.flush()

    @_uses_connection
    def read(self, name: str, offset: int, length: int, snapshot: str | None = None) -> bytes:
        return b"".join(self.read_ranges(name, [(offset, length)], snapshot))

    def read_ranges(self, name: str, ranges: list[tuple[int, int]], snapshot: str | None = None) -> Iterator[bytes]:
        """Several ``(offset, length)`` reads through one open of the image, one chunk at a time."""
        with (
            self.in_use(),
            translated(f"reading image {name}"),
            rbd.Image(self.ioctx, name, snapshot=snapshot, read_only=True) as image,
        ):
            for offset, length in ranges:
                yield bytes(image.read(offset, length))

    @_uses_connection
    def image_size(self, name: str) -> int:
        with translated(f"reading image {name}"), rbd.Image(self.ioctx, name, read_only=True) as image:
            return int(image.size())

    def deep_copy(
        self, source: str, target: str, size: int, progress: Callable[[int, int], None], cancelled: Callable[[], bool]
    ) -> bool:
        """``rbd deep cp``: librbd's deep copy (data and snapshots), reporting bytes as it prints its
        percent. False when ``cancelled()`` stopped it (the partial target is left for the caller)."""
        ceph = self.config
        location = f"{ceph.pool}/{ceph.namespace}/" if ceph.namespace else f"{ceph.pool}/"
        copy = follow_progress(
            ["rbd", "-c", ceph.conf, "--id", ceph.client_id, "deep", "cp", location + source, location + target],
            progress_on="stderr",
            percent=_DEEP_COPY_PROGRESS,
            report=lambda percent: progress(size * int(percent) // 100, size),
            cancelled=cancelled,
            stall_after=ceph.copy_stall_timeout,
        )
        if copy.cancelled:
            return False
        if copy.stalled:
            raise BackendTimeout(
                BACKEND, f"copy of {source} made no progress for {ceph.copy_stall_timeout:g} s: stopped"
            )
        if copy.returncode != 0:
            raise BackendError(BACKEND, f"copy of {source} failed: {copy.last_error}")
        progress(size, size)
        return True

    @_uses_connection
    def allocated_objects(self, image: str, snap_id: int | None = None) -> set[int]:
        """Indexes of the 4 MiB objects allocated in the image (or in one of its snapshots), from the
        object map."""
        objects: set[int] = set()

        def collect(offset: int, length: int, exists: bool) -> int:
            if exists:
                objects.add(offset >> 22)
            return 0

        with translated(f"walking the objects of {image}"), rbd.Image(self.ioctx, image, read_only=True) as handle:
            if snap_id is not None:
                handle.set_snap_by_id(snap_id)
            handle.diff_iterate(0, handle.size(), None, collect, whole_object=True)
        return objects

    @_uses_connection
    def watchers(self, name: str) -> list[str]:
        with translated(f"listing watchers of {name}"), rbd.Image(self.ioctx, name, read_only=True) as image:
            return [w.get("addr", "?") for w in image.watchers_list()]

    # ------------------------------------------------------------------ metadata
    @_uses_connection
    def metadata(self, image: str) -> dict[str, str]:
        with (
            translated(f"reading metadata of {image}"),
            rbd.Image(self.ioctx, image, read_only=True) as handle,
        ):
            return dict(handle.metadata_list())

    @_uses_connection
    def metadata_get(self, image: str, key: str) -> str | None:
        with (
            translated(f"reading metadata {key!r} of {image}"),
            rbd.Image(self.ioctx, image, read_only=True) as handle,
        ):
            try:
                return str(handle.metadata_get(key))
            except KeyError:
                return None

    @_uses_connection
    def metadata_set_many(self, image: str, values: dict[str, str]) -> None:
        with translated(f"writing metadata of {image}"), rbd.Image(self.ioctx, image) as handle:
            for key, value in values.items():
                handle.metadata_set(key, value)

    @_uses_connection
    def metadata_remove(self, image: str, keys: list[str]) -> None:
        with translated(f"removing metadata of {image}"), rbd.Image(self.ioctx, image) as handle:
            for key in keys:
                with contextlib.suppress(KeyError):
                    handle.metadata_remove(key)

    # ------------------------------------------------------------------ groups
    @_uses_connection
    def create_group(self, name: str) -> None:
        with translated(f"creating group {name}"):
            self.rbd.group_create(self.ioctx, name)

    @_uses_connection
    def remove_group(self, name: str) -> None:
        with translated(f"removing group {name}"):
            self.rbd.group_remove(self.ioctx, name)

    @_uses_connection
    def rename_group(self, old: str, new: str) -> None:
        with translated(f"renaming group {old} to {new}"):
            self.rbd.group_rename(self.ioctx, old, new)

    @_uses_connection
    def group_add(self, group: str, image: str) -> None:
        with translated(f"adding {image} to group {group}"):
            rbd.Group(self.ioctx, group).add_image(self.ioctx, image)

    @_uses_connection
    def group_remove_image(self, group: str, image: str) -> None:
        with translated(f"removing {image} from group {group}"):
            rbd.Group(self.ioctx, group).remove_image(self.ioctx, image)

    # ------------------------------------------------------------------ snapshots
    @_uses_connection
    def group_snap_create(self, group: str, snapshot: str) -> None:
        with translated(f"snapshotting group {group} as {snapshot}"):
            rbd.Group(self.ioctx, group).create_snap(snapshot)

    @_uses_connection
    def group_snap_remove(self, group: str, snapshot: str) -> None:
        with translated(f"removing snapshot {snapshot} of group {group}"):
            rbd.Group(self.ioctx, group).remove_snap(snapshot)

    @_uses_connection
    def group_snap_rollback(self, group: str, snapshot: str) -> None:
        with translated(f"rolling group {group} back to {snapshot}"):
            rbd.Group(self.ioctx, group).rollback_to_snap(snapshot)

    @_uses_connection
    def image_snap_create(self, image: str, snapshot: str) -> None:
        with translated(f"snapshotting {image} as {snapshot}"), rbd.Image(self.ioctx, image) as handle:
            handle.create_snap(snapshot)

    @_uses_connection
    def image_snap_remove(self, image: str, snapshot: str) -> None:
        with translated(f"removing snapshot {snapshot} of {image}"), rbd.Image(self.ioctx, image) as handle:
            if handle.is_protected_snap(snapshot):
                handle.unprotect_snap(snapshot)
            handle.remove_snap(snapshot)

    @_uses_connection
    def image_snap_rollback(self, image: str, snapshot: str) -> None:
        with translated(f"rolling {image} back to {snapshot}"), rbd.Image(self.ioctx, image) as handle:
            handle.rollback_to_snap(snapshot)

    @_uses_connection
    def image_snap_names(self, image: str) -> list[str]:
        """The image's own snapshots (the user namespace: not the members of group snapshots), oldest first."""
        with translated(f"listing snapshots of {image}"), rbd.Image(self.ioctx, image, read_only=True) as handle:
            return [s["name"] for s in handle.list_snaps() if handle.snap_get_namespace_type(s["id"]) == 0]

    @_uses_connection
    def snapshot_ids(self, image: str) -> dict[tuple[str, str], int]:
        """("image", name) for the image's own snapshots, ("group", name) for its members of group
        snapshots -> the snapshot's id (never reused: a new snapshot of an old name has another)."""
        ids: dict[tuple[str, str], int] = {}
        with translated(f"listing snapshots of {image}"), rbd.Image(self.ioctx, image, read_only=True) as handle:
            for snap in handle.list_snaps():
                namespace = handle.snap_get_namespace_type(snap["id"])
                if namespace == 0:
                    ids[("image", snap["name"])] = snap["id"]
                elif namespace == 1:
                    group_name = handle.snap_get_group_namespace(snap["id"]).get("snap_name")
                    if group_name:
                        ids[("group", group_name)] = snap["id"]
        return ids

    @_uses_connection
    def image_snap_protect(self, image: str, snapshot: str, protect: bool) -> None:
        with (
            translated(f"{'protecting' if protect else 'unprotecting'} {image}@{snapshot}"),
            rbd.Image(self.ioctx, image) as handle,
        ):
            if protect:
                handle.protect_snap(snapshot)
            else:
                handle.unprotect_snap(snapshot)

    @_uses_connection
    def clone(self, parent: str, snapshot: str, child: str) -> None:
        with translated(f"cloning {parent}@{snapshot} to {child}"):
            self.rbd.clone(self.ioctx, parent, snapshot, self.ioctx, child)

    @_uses_connection
    def flatten(self, image: str, progress: Callable[[int, int], None] | None = None) -> None:
        def report(offset: int, total: int) -> int:
            if progress:
                progress(offset, total)
            return 0

        with translated(f"flattening {image}"), rbd.Image(self.ioctx, image) as handle:
            handle.flatten(on_progress=report)

    @_uses_connection
    def children(self, image: str) -> list[str]:
        with translated(f"listing clones of {image}"), rbd.Image(self.ioctx, image, read_only=True) as handle:
            return [c["image"] for c in handle.list_children2()]

    # ------------------------------------------------------------------ vmconsole's own objects
    @_uses_connection
    def omap_get(self, oid: str, prefix: str = "", limit: int = 10_000_000) -> dict[str, bytes]:
        """The omap of ``oid`` (keys starting with ``prefix``), read page after page: an OSD answers at
        most ``osd_max_omap_entries_per_request`` entries per read, whatever was asked."""
        values: dict[str, bytes] = {}
        after = ""
        try:
            while len(values) < limit:
                with rados.ReadOpCtx() as op:
                    iterator, _ = self.ioctx.get_omap_vals(op, after, prefix, min(OMAP_PAGE, limit - len(values)))
                    self.ioctx.operate_read_op(op, oid)
                    page = [(key, bytes(value)) for key, value in iterator]
                if not page:
                    break
                values.update(page)
                after = page[-1][0]
        except rados.ObjectNotFound:
            return {}
        except rados.Error as exc:
            raise _translate(exc, f"reading {oid}") from exc
        return values

    @_uses_connection
    def omap_set(self, oid: str, values: dict[str, bytes]) -> None:
        with translated(f"writing {oid}"), rados.WriteOpCtx() as op:
            op.new(rados.LIBRADOS_CREATE_IDEMPOTENT)
            self.ioctx.set_omap(op, tuple(values), tuple(values.values()))
            self.ioctx.operate_write_op(op, oid)

    @_uses_connection
    def omap_remove(self, oid: str, keys: list[str]) -> None:
        try:
            with rados.WriteOpCtx() as op:
                self.ioctx.remove_omap_keys(op, tuple(keys))
                self.ioctx.operate_write_op(op, oid)
        except rados.ObjectNotFound:
            return
        except rados.Error as exc:
            raise _translate(exc, f"writing {oid}") from exc

    @_uses_connection
    def lock_exclusive(self, oid: str, name: str, cookie: str, description: str, seconds: int) -> bool:
        """Take or renew (same cookie) an exclusive RADOS lock lease; False when another client holds it.

        The lease expires by itself after ``seconds`` unless renewed, so a holder that died frees
        the lock without anyone's help.
        """
        may_renew = 1  # LIBRADOS_LOCK_FLAG_MAY_RENEW
        try:
            self.ioctx.lock_exclusive(oid, name, cookie, desc=description, duration=seconds, flags=may_renew)
        except rados.ObjectBusy:
            return False
        except rados.Error as exc:
            raise _translate(exc, f"locking {oid}") from exc
        return True

    @_uses_connection
    def unlock(self, oid: str, name: str, cookie: str) -> None:
        try:
            self.ioctx.unlock(oid, name, cookie)
        except rados.ObjectNotFound:
            return
        except rados.Error as exc:
            raise _translate(exc, f"unlocking {oid}") from exc

    def _rados_cli(self, *args: str) -> str:
        """The rados CLI, for the lock calls the Python binding lacks (lock info, lock break)."""
        argv = ["rados", "-c", self.config.conf, "--id", self.config.client_id, "-p", self.config.pool]
        if self.config.namespace:
            argv += ["--namespace", self.config.namespace]
        result = run([*argv, *args], timeout=self.config.timeout + 5, backend=BACKEND)
        if not result.ok:
            raise BackendError(BACKEND, f"rados {args[0]} {args[1]}: {result.error_text()}")
        return result.stdout

    def lock_lockers(self, oid: str, name: str) -> list[dict[str, str]]:
        """Who holds a RADOS lock: [{name: client.N, cookie, description, expiration, addr}]."""
        try:
            data = json.loads(self._rados_cli("lock", "info", oid, name, "--format", "json") or "{}")
        except BackendError as exc:
            if "No such file" in str(exc) or "(2)" in str(exc):
                return []
            raise
        return [dict(locker) for locker in data.get("lockers", [])]

    def break_lock(self, oid: str, name: str, locker: str, cookie: str) -> None:
        self._rados_cli("lock", "break", oid, name, locker, "--lock-cookie", cookie)

    @_uses_connection
    def remove_object(self, oid: str) -> None:
        try:
            self.ioctx.remove_object(oid)
        except rados.ObjectNotFound:
            return
        except rados.Error as exc:
            raise _translate(exc, f"removing {oid}") from exc
