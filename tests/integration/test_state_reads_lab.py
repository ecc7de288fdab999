"""The state read's header decoding against librbd itself, on the lab: a VM with a system and a data
disk, group snapshots and a protected per-disk snapshot reads the same from its headers (one batch, no
image opened) as through librbd's public API (every image opened). And Pacemaker's side read again after
each change, asking crm_mon about the changed resources alone, against crm_mon's whole answer."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import replace

import pytest

from vmconsole.backends.pacemaker import PacemakerClient
from vmconsole.backends.rbd import RbdSession
from vmconsole.config import Config
from vmconsole.core.pacemaker_state import PacemakerReader
from vmconsole.core.state import CephReader, _read_vm_slow, build_snapshots
from vmconsole.domain.pacemaker_status import CrmMonSnapshot

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


def _comparable(snapshot: CrmMonSnapshot) -> CrmMonSnapshot:
    return replace(snapshot, failures=tuple(sorted(snapshot.failures, key=repr)))


def test_pacemaker_asked_about_what_changed_answers_as_crm_mon_about_everything(
    lab_config: Config, vm_name: str
) -> None:
    """After each change made the way operators and Pacemaker make them, the state read asks crm_mon about
    the changed resources alone, and what it then holds equals crm_mon's answer about the whole cluster."""
    client = PacemakerClient(lab_config.pacemaker)
    first, second = f"{vm_name}-a", f"{vm_name}-b"
    prop = f"{vm_name}-probe"

    def tool(*argv: str) -> None:
        subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=60)

    def read_after_settling() -> tuple[str | frozenset[str], CrmMonSnapshot]:
        assert client.wait_idle(120)
        part = reader.read()
        assert _comparable(part.status) == _comparable(client.status())
        return reader.asked, part.status

    def primitive(name: str) -> str:
        return (
            f'<primitive id="{name}" class="ocf" provider="pacemaker" type="Dummy">'
            f'<meta_attributes id="{name}-meta"><nvpair id="{name}-target-role" name="target-role" value="Stopped"/>'
            f'</meta_attributes><operations><op id="{name}-monitor" name="monitor" interval="10s"/></operations>'
            "</primitive>"
        )

    try:
        for name in (first, second):
            tool(lab_config.pacemaker.cibadmin, "--create", "--scope", "resources", "--xml-text", primitive(name))
        assert client.wait_idle(120)  # Pacemaker probed them
        reader = PacemakerReader(client)
        reader.read()
        assert reader.asked == "all"
        assert read_after_settling()[0] == "none"

        tool(lab_config.pacemaker.crm_resource, "--resource", first, "--meta", "--set-parameter", "target-role",
             "--parameter-value", "Started")  # fmt: skip
        asked, status = read_after_settling()
        assert asked == frozenset({first})
        started = status.resource(first)
        assert started is not None and started.active

        # a failure Pacemaker records (its history and a fail count on the node), then its recovery
        node = started.nodes[0]
        tool(lab_config.pacemaker.crm_resource, "--fail", "--resource", first, "--node", node)
        asked, status = read_after_settling()
        assert asked == frozenset({first})
        failed = status.resource(first)
        assert failed is not None and failed.fail_count >= 1

        tool(lab_config.pacemaker.crm_resource, "--cleanup", "--resource", first)
        asked, status = read_after_settling()
        assert asked == "all"  # a cleanup also sets a cluster option (last-lrm-refresh), which all share
        cleaned = status.resource(first)
        assert cleaned is not None and cleaned.fail_count == 0 and cleaned.active

        tool(lab_config.pacemaker.cibadmin, "--delete", "--xml-text", f'<primitive id="{second}"/>')
        asked, status = read_after_settling()
        assert asked == frozenset({second}) and status.resource(second) is None

        # a cluster option: what every resource shares, so crm_mon is asked about everything
        tool(lab_config.pacemaker.crm_attribute, "--type", "crm_config", "--name", prop, "--update", "1")
        asked, _ = read_after_settling()
        assert asked == "all"
        # back to one resource's change after that
        tool(lab_config.pacemaker.crm_resource, "--resource", first, "--meta", "--set-parameter", "target-role",
             "--parameter-value", "Stopped")  # fmt: skip
        asked, status = read_after_settling()
        stopped = status.resource(first)
        assert asked == frozenset({first}) and stopped is not None and not stopped.active
    finally:
        with contextlib.suppress(Exception):
            tool(lab_config.pacemaker.crm_attribute, "--type", "crm_config", "--name", prop, "--delete")
        for name in (first, second):
            with contextlib.suppress(Exception):
                tool(lab_config.pacemaker.crm_resource, "--resource", name, "--meta", "--set-parameter",
                     "target-role", "--parameter-value", "Stopped")  # fmt: skip
        with contextlib.suppress(Exception):
            client.wait_idle(120)
        for name in (first, second):
            with contextlib.suppress(Exception):
                tool(lab_config.pacemaker.cibadmin, "--delete", "--xml-text", f'<primitive id="{name}"/>')
            with contextlib.suppress(Exception):
                tool(lab_config.pacemaker.crm_resource, "--cleanup", "--resource", name)
