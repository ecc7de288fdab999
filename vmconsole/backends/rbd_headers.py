"""RBD's on-disk encodings that vmconsole reads straight from omap (one read instead of opening an
image): the group directory, group headers and image headers, decoded into plain records.

Just enough of Ceph's little-endian encoding (cls_rbd's) for what vmconsole reads; an encoding that
surprises raises ValueError, and the reader falls back to the public API.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class GroupSnapshotEntry:
    snapshot_id: str
    name: str
    complete: bool
    members: tuple[tuple[str, int], ...]  # (image id, image snapshot id)


@dataclass(frozen=True)
class GroupHeader:
    members: tuple[str, ...]  # image ids
    snapshots: tuple[GroupSnapshotEntry, ...]


@dataclass(frozen=True)
class SnapshotEntry:
    """One snapshot of an image, as its header's ``snapshot_<id>`` key holds it (``cls_rbd_snap``)."""

    snap_id: int
    name: str
    size: int
    protected: bool
    namespace: str  # "user", "group", "trash", "mirror", "other"
    group_snapshot_id: str | None  # for namespace "group": the id of the group's snapshot
    created: datetime | None


@dataclass(frozen=True)
class ImageHeader:
    image_id: str
    metadata: dict[str, str]
    size: int | None
    snapshot_ids: tuple[int, ...]
    snapshot_blob: bytes  # the raw snapshot entries: equal blobs mean an unchanged snapshot set
    # every snapshot with its timestamp, decoded from the header; None when an entry's encoding
    # surprises (an old format): the reader then opens the image instead
    snapshots: tuple[SnapshotEntry, ...] | None = None


_SNAP_NAMESPACES = {0: "user", 1: "group", 2: "trash", 3: "mirror"}
_HEAD = struct.Struct("<BBI")  # ENCODE_START: version, compat, length
_U32 = struct.Struct("<I")
_U32_U32 = struct.Struct("<II")
_U64_U32 = struct.Struct("<QI")
_U64 = struct.Struct("<Q")
# image size, protection status, flags, the namespace's ENCODE_START, its kind
_SNAP_MIDDLE = struct.Struct("<QBQBBII")


def decode_image_snapshot(raw: bytes) -> SnapshotEntry:
    """An image header's ``snapshot_<id>`` value: ``cls_rbd_snap``, encoding version 8 (Nautilus and
    later: what a cluster writes once every daemon is Nautilus or newer). Older encodings raise
    ValueError."""
    # straight struct reads, no decoder object: a 500-VM cluster has ten thousand of these
    try:
        version, compat, length = _HEAD.unpack_from(raw, 0)
        end = 6 + length
        if version < 8 or compat < 8 or end > len(raw):
            raise ValueError(f"snapshot encoding v{version} (compat {compat}) is not read from the header")
        snap_id, name_length = _U64_U32.unpack_from(raw, 6)
        pos = 18 + name_length
        name = raw[18:pos].decode()
        size, protection, _flags, _ns_version, _ns_compat, ns_length, kind = _SNAP_MIDDLE.unpack_from(raw, pos)
        ns_start = pos + 17 + 6
        group_snapshot_id = None
        if kind == 1:
            # the group's pool (u64), the group's id, the group snapshot's id (strings)
            (group_id_length,) = _U32.unpack_from(raw, ns_start + 4 + 8)
            at = ns_start + 4 + 8 + 4 + group_id_length
            (snap_length,) = _U32.unpack_from(raw, at)
            group_snapshot_id = raw[at + 4 : at + 4 + snap_length].decode()
        seconds, nanoseconds = _U32_U32.unpack_from(raw, ns_start + ns_length)
        if ns_start + ns_length + 8 > end:
            raise ValueError("snapshot entry longer than its length says")
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"unexpected snapshot encoding: {exc}") from exc
    del nanoseconds  # librbd reports whole seconds: the same time whichever way it is read
    created = datetime.fromtimestamp(seconds, tz=UTC) if seconds else None
    return SnapshotEntry(
        snap_id=snap_id,
        name=name,
        size=size,
        protected=protection == 2,  # 0 unprotected, 1 unprotecting, 2 protected (as is_protected_snap)
        namespace=_SNAP_NAMESPACES.get(kind, "other"),
        group_snapshot_id=group_snapshot_id,
        created=created,
    )


def decode_group_snapshot(raw: bytes) -> GroupSnapshotEntry:
    """A group header's ``snapshot_<id>`` value (``cls::rbd::GroupSnapshot``): its id, name, state and
    each member image's snapshot (the image's pool, id and snapshot id)."""
    # straight struct reads, as for image snapshots: five thousand of these on a 500-VM cluster
    (length,) = _U32.unpack_from(raw, 2)  # after ENCODE_START's version and compat
    end = 6 + length
    (id_length,) = _U32.unpack_from(raw, 6)
    pos = 10 + id_length
    snapshot_id = raw[10:pos].decode()
    (name_length,) = _U32.unpack_from(raw, pos)
    name = raw[pos + 4 : pos + 4 + name_length].decode()
    pos += 4 + name_length
    state = raw[pos]
    (count,) = _U32.unpack_from(raw, pos + 1)
    pos += 5
    members = []
    for _ in range(count):
        (member_length,) = _U32.unpack_from(raw, pos + 2)
        _pool, image_id_length = _U64_U32.unpack_from(raw, pos + 6)
        at = pos + 18
        image_id = raw[at : at + image_id_length].decode()
        (snap_id,) = _U64.unpack_from(raw, at + image_id_length)
        members.append((image_id, snap_id))
        pos += 6 + member_length
    if pos > end or end > len(raw):
        raise ValueError("group snapshot entry longer than its length says")
    return GroupSnapshotEntry(snapshot_id, name, state == 1, tuple(members))


def group_ids(directory: dict[str, bytes]) -> dict[str, str]:
    """Group name -> id, from the omap of the pool's ``rbd_group_directory``."""
    return {key[len("name_") :]: value[4:].decode() for key, value in directory.items() if key.startswith("name_")}


def group_header(raw: dict[str, bytes]) -> GroupHeader:
    """Members and snapshots of a group, from the omap of its ``rbd_group_header.<id>``."""
    members = tuple(key.split("_", 2)[2] for key in raw if key.startswith("image_"))
    try:
        snaps = tuple(decode_group_snapshot(v) for k, v in sorted(raw.items()) if k.startswith("snapshot_"))
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"unexpected group header encoding: {exc}") from exc
    return GroupHeader(members, snaps)


def image_header(image_id: str, raw: dict[str, bytes]) -> ImageHeader:
    """Metadata, size and snapshot ids of an image, from the omap of its ``rbd_header.<id>``."""
    metadata = {k[len("metadata_") :]: v.decode(errors="replace") for k, v in raw.items() if k.startswith("metadata_")}
    size_raw = raw.get("size")
    size = struct.unpack("<Q", size_raw[:8])[0] if size_raw and len(size_raw) >= 8 else None
    snap_keys = sorted(k for k in raw if k.startswith("snapshot_"))
    snapshots: tuple[SnapshotEntry, ...] | None
    try:
        snapshots = tuple(decode_image_snapshot(raw[k]) for k in snap_keys)
    except ValueError:
        snapshots = None
    return ImageHeader(
        image_id=image_id,
        metadata=metadata,
        size=size,
        snapshot_ids=tuple(int(k[len("snapshot_") :], 16) for k in snap_keys),
        snapshot_blob=b"".join(k.encode() + raw[k] for k in snap_keys),
        snapshots=snapshots,
    )
