"""The state read's header decoding against librbd itself, on the lab: a VM with a system and a data
disk, group snapshots and a protected per-disk snapshot reads the same from its headers (one batch, no
image opened) as through librbd's public API (every image opened)."""

from __future__ import annotations

import contextlib

import pytest

from vmconsole.backends.rbd import RbdSession
from vmconsole.config import Config
from vmconsole.core.state import CephReader, _read_vm_slow, build_snapshots

pytestmark = pytest.mark.lab


def test_a_vm_reads_the_same_from_its_headers_as_through_librbd(lab_config: Config, vm_name: str) -> None:
    system, data = f"system_{vm_name}", f"data_{vm_name}_0"
    with RbdSession(lab_config.ceph) as session:
        try:
            session.create_group(vm_name)
            for image in (system, data):
                session.create_image(image, 16 << 20)
                session.group_add(vm_name, image)
            session.metadata_set_many(system, {"vm_name": vm_name, "role": "db", "note": "é ünïcode"})
            session.group_snap_create(vm_name, "nightly")
            session.image_snap_create(data, "before-upgrade")
            session.image_snap_protect(data, "before-upgrade", True)
            session.group_snap_create(vm_name, "weekly")

            part = CephReader().read(session, only={vm_name})
            members, infos = _read_vm_slow(session, vm_name)

            assert part.problems == ()
            assert part.groups[vm_name] == members
            for image, info in infos.items():
                mine = part.images[image]
                assert (mine.size, mine.metadata, mine.group) == (info.size, info.metadata, info.group)
                assert sorted(mine.snapshots, key=lambda s: s.snap_id) == sorted(
                    info.snapshots, key=lambda s: s.snap_id
                )
            shown = {s.name: s for s in build_snapshots(vm_name, list(part.images.values()), {})}
            assert set(shown) == {"nightly", "weekly", "before-upgrade"}
            assert shown["before-upgrade"].protected and shown["before-upgrade"].disks == (data,)
            assert all(s.created is not None for s in shown.values())
            assert session.omap_get_many([f"rbd_header.{vm_name}-none"]) == {f"rbd_header.{vm_name}-none": None}
        finally:
            with contextlib.suppress(Exception):
                session.image_snap_protect(data, "before-upgrade", False)
            for snapshot in ("nightly", "weekly"):
                with contextlib.suppress(Exception):
                    session.group_snap_remove(vm_name, snapshot)
            for image in (system, data):
                with contextlib.suppress(Exception):
                    session.group_remove_image(vm_name, image)
                with contextlib.suppress(Exception):
                    session.remove_image(image)
            with contextlib.suppress(Exception):
                session.remove_group(vm_name)
