"""Snapshots beside vm_manager (real lab): vm_manager's own librbd call sequences on snapshots vmconsole
made, and vmconsole on snapshots made the vm_manager way, both directions.

``VmManager`` below performs the librbd calls of vm_manager's ``list_snapshots``, ``create_snapshot``,
``remove_snapshot``, ``rollback_snapshot`` (its disk part: the VMs here are disabled, so there is no
Pacemaker resource to take down) and ``purge_image`` (all, number, date), in vm_manager's order, with
one RADOS connection per operation as it does. It is written from the description of vm_manager's
behaviour, not copied.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
import rados
import rbd

from tests.integration.helpers import checksum, cli, cli_json, create_vm, write_pattern
from vmconsole.config import Config, SnapshotsSection, render_toml
from vmconsole.core import snapshots
from vmconsole.core.services import Services
from vmconsole.domain import naming
from vmconsole.domain.errors import ConflictError
from vmconsole.domain.model import VmStatus
from vmconsole.lab.lab import Lab

pytestmark = pytest.mark.lab


class VmManager:
    """vm_manager's snapshot functions as librbd call sequences (its ``RbdManager`` helpers inlined)."""

    def __init__(self, config: Config) -> None:
        self.conf = config.ceph.conf
        self.client = config.ceph.client_id
        self.pool = config.ceph.pool

    @contextmanager
    def _ioctx(self) -> Iterator[rados.Ioctx]:
        cluster = rados.Rados(conffile=self.conf, rados_id=self.client)
        cluster.connect(timeout=10)
        try:
            ioctx = cluster.open_ioctx(self.pool)
            try:
                yield ioctx
            finally:
                ioctx.close()
        finally:
            cluster.shutdown()

    @staticmethod
    def _disks(ioctx: rados.Ioctx, vm: str) -> list[str]:
        """``_get_all_disk_names``: the group's images, or the system disk alone without a group."""
        if vm in rbd.RBD().group_list(ioctx):
            return [i["name"] for i in rbd.Group(ioctx, vm).list_images()]
        return [naming.system_image(vm)]

    @staticmethod
    def _names(ioctx: rados.Ioctx, image: str) -> list[str]:
        """``list_image_snapshots``: ``Image.list_snaps()``, every namespace."""
        with rbd.Image(ioctx, image) as handle:
            return [s["name"] for s in handle.list_snaps()]

    @staticmethod
    def _remove(ioctx: rados.Ioctx, image: str, snap: str) -> None:
        """``remove_image_snapshot``: unprotect when protected, then remove."""
        with rbd.Image(ioctx, image) as handle:
            if handle.is_protected_snap(snap):
                handle.unprotect_snap(snap)
            handle.remove_snap(snap)

    @staticmethod
    def _purge_image(ioctx: rados.Ioctx, image: str) -> None:
        """``RbdManager.purge_image(force=False)``: every snapshot ``is_protected_snap`` says is not protected."""
        with rbd.Image(ioctx, image) as handle:
            for snapshot in handle.list_snaps():
                if not handle.is_protected_snap(snapshot["name"]):
                    handle.remove_snap(snapshot["name"])

    def list_snapshots(self, vm: str) -> list[str]:
        with self._ioctx() as ioctx:
            return self._names(ioctx, naming.system_image(vm))

    def protection_walk(self, vm: str) -> dict[str, bool]:
        """The sequence that broke on ``.group.*`` names: ``list_snaps()`` then ``is_protected_snap(name)``."""
        seen: dict[str, bool] = {}
        with self._ioctx() as ioctx:
            for image in self._disks(ioctx, vm):
                with rbd.Image(ioctx, image) as handle:
                    for snapshot in handle.list_snaps():
                        seen[f"{image}@{snapshot['name']}"] = bool(handle.is_protected_snap(snapshot["name"]))
        return seen

    def create_snapshot(self, vm: str, snap: str) -> None:
        with self._ioctx() as ioctx:
            disks = self._disks(ioctx, vm)
            for disk in disks:
                if snap in self._names(ioctx, disk):
                    raise RuntimeError(f"Snapshot {snap} already exists on image {disk}")
            for disk in disks:
                with rbd.Image(ioctx, disk) as handle:
                    handle.create_snap(snap)

    def remove_snapshot(self, vm: str, snap: str) -> None:
        with self._ioctx() as ioctx:
            for disk in self._disks(ioctx, vm):
                if snap in self._names(ioctx, disk):
                    self._remove(ioctx, disk, snap)

    def rollback_snapshot(self, vm: str, snap: str) -> None:
        with self._ioctx() as ioctx:
            disks = self._disks(ioctx, vm)
            for disk in disks:
                if snap not in self._names(ioctx, disk):
                    raise RuntimeError(f"Snapshot {snap} does not exist on disk {disk} of VM {vm}")
            for disk in disks:
                with rbd.Image(ioctx, disk) as handle:
                    handle.rollback_to_snap(snap)

    def purge_all(self, vm: str) -> None:
        with self._ioctx() as ioctx:
            for disk in self._disks(ioctx, vm):
                self._purge_image(ioctx, disk)

    def purge_number(self, vm: str, number: int) -> None:
        with self._ioctx() as ioctx:
            disks = self._disks(ioctx, vm)
            fewest = min(len(self._names(ioctx, d)) for d in disks)
            for disk in disks:
                names = self._names(ioctx, disk)
                count = number + (len(names) - fewest)
                if len(names) <= count:
                    self._purge_image(ioctx, disk)
                else:
                    for snap in names[:count]:
                        self._remove(ioctx, disk, snap)

    def purge_date(self, vm: str, date: datetime) -> None:
        with self._ioctx() as ioctx:
            for disk in self._disks(ioctx, vm):
                with rbd.Image(ioctx, disk) as handle:
                    listed = [{"name": s["name"], "id": s["id"]} for s in handle.list_snaps()]
                for snap in listed:
                    with rbd.Image(ioctx, disk) as handle:
                        stamp = handle.get_snap_timestamp(snap["id"])
                    if stamp.timestamp() < date.timestamp():
                        self._remove(ioctx, disk, str(snap["name"]))

    def timestamp(self, vm: str, snap: str) -> datetime:
        """A snapshot's time as librbd gives it (vm_manager compares dates in that frame)."""
        with self._ioctx() as ioctx, rbd.Image(ioctx, naming.system_image(vm)) as handle:
            snap_id = next(s["id"] for s in handle.list_snaps() if s["name"] == snap)
            stamp: datetime = handle.get_snap_timestamp(snap_id)
            return stamp


@pytest.fixture
def vm_manager(lab_config: Config) -> VmManager:
    return VmManager(lab_config)


def names(services: Services, vm: str) -> list[str]:
    return [s.name for s in services.vm(vm).snapshots]


def group_config(lab_config: Config, tmp_path: Path) -> Config:
    """The lab's configuration with ``[snapshots] kind = "group"``, and a file of it for the CLI."""
    assert lab_config.source is not None
    path = tmp_path / "group.toml"
    grouped = replace(lab_config, snapshots=SnapshotsSection(kind="group"), source=path)
    path.write_text(render_toml(grouped))
    path.chmod(0o600)
    return grouped


# ------------------------------------------------------------------------------------------ vm_manager on vmconsole's
def test_vm_manager_lists_rolls_back_removes_and_purges_vmconsole_snapshots(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], vm_manager: VmManager, lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False, data_disks=1)
    system, data = naming.system_image(vm_name), naming.data_image(vm_name, 0)
    sums = {}
    for index, snap in enumerate(("s1", "s2", "s3")):
        write_pattern(services, system, f"system-{index}".encode())
        write_pattern(services, data, f"data-{index}".encode())
        sums[snap] = (checksum(services, system), checksum(services, data))
        assert cli(lab_config, "snapshot", "create", vm_name, snap).returncode == 0
    listing = cli_json(lab_config, "snapshot", "list", vm_name)
    assert [(s["name"], s["kind"], s["disks"], s["config_recorded"]) for s in listing] == [
        (snap, "image", [system, data], True) for snap in ("s1", "s2", "s3")
    ]
    # a vmconsole rollback leaves its safety snapshot: the same kind, on every disk
    result = cli_json(lab_config, "snapshot", "rollback", vm_name, "s1", "--yes")
    safety = result["data"]["snapshot_taken"]
    assert safety.startswith("safety-")
    assert (checksum(services, system), checksum(services, data)) == sums["s1"]
    assert vm_manager.list_snapshots(vm_name) == ["s1", "s2", "s3", safety]  # no `.group.*` name
    walk = vm_manager.protection_walk(vm_name)  # raised ImageNotFound on group snapshots
    assert sorted(walk) == sorted(f"{d}@{s}" for d in (system, data) for s in ("s1", "s2", "s3", safety))
    assert not any(walk.values())

    vm_manager.rollback_snapshot(vm_name, "s2")
    assert (checksum(services, system), checksum(services, data)) == sums["s2"]
    vm_manager.remove_snapshot(vm_name, "s3")
    assert names(services, vm_name) == ["s1", "s2", safety]
    assert "s3" not in cli(lab_config, "snapshot", "list", vm_name).stdout
    # a new snapshot that takes the name of one vm_manager removed is not given the old one's record
    vm_manager.create_snapshot(vm_name, "s3")
    (again,) = [s for s in cli_json(lab_config, "snapshot", "list", vm_name) if s["name"] == "s3"]
    assert not again["config_recorded"]
    assert not snapshots.rollback_plan(services, vm_name, "s3").restores_config
    vm_manager.remove_snapshot(vm_name, "s3")

    vm_manager.purge_number(vm_name, 1)  # the oldest, on every disk
    assert names(services, vm_name) == ["s2", safety]
    time.sleep(1.1)  # snapshot times have a one-second resolution
    assert cli(lab_config, "snapshot", "create", vm_name, "late").returncode == 0
    vm_manager.purge_date(vm_name, vm_manager.timestamp(vm_name, "late"))
    assert names(services, vm_name) == ["late"]
    assert all(not s.missing_on for s in services.vm(vm_name).snapshots)

    # protection set by vmconsole is RBD's own: vm_manager's purge-all keeps it
    assert cli(lab_config, "snapshot", "protect", vm_name, "late").returncode == 0
    assert cli(lab_config, "snapshot", "create", vm_name, "extra").returncode == 0
    vm_manager.purge_all(vm_name)
    assert names(services, vm_name) == ["late"]
    assert vm_manager.protection_walk(vm_name) == {f"{system}@late": True, f"{data}@late": True}


def test_vm_manager_purges_a_vm_whose_rollback_left_a_safety_snapshot(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], vm_manager: VmManager, lab_config: Config
) -> None:
    """The case that stopped SEAPATH's scheduled purge: every mode on a VM holding a safety snapshot."""
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    for mode in ("number", "date", "all"):
        services.run(snapshots.plan_snapshot_create(services, vm_name, f"before-{mode}"))
        services.run(snapshots.plan_rollback(services, snapshots.rollback_plan(services, vm_name, f"before-{mode}")))
        (safety,) = [n for n in names(services, vm_name) if n.startswith("safety-")]
        assert vm_manager.list_snapshots(vm_name) == [f"before-{mode}", safety]
        if mode == "number":
            vm_manager.purge_number(vm_name, 2)
        elif mode == "date":
            time.sleep(1.1)
            vm_manager.create_snapshot(vm_name, "cutoff")
            vm_manager.purge_date(vm_name, vm_manager.timestamp(vm_name, "cutoff"))
            vm_manager.remove_snapshot(vm_name, "cutoff")
        else:
            vm_manager.purge_all(vm_name)
        assert names(services, vm_name) == [], mode


# ------------------------------------------------------------------------------------------ vmconsole on vm_manager's
def test_vmconsole_operates_snapshots_made_the_vm_manager_way(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], vm_manager: VmManager, lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    system = naming.system_image(vm_name)
    sums = {}
    for index, snap in enumerate(("m1", "m2", "m3", "m4")):
        write_pattern(services, system, f"vmm-{index}".encode())
        sums[snap] = checksum(services, system)
        vm_manager.create_snapshot(vm_name, snap)  # on system_<vm> only: the VM has no other disk
        time.sleep(1.1 if snap == "m2" else 0)
    write_pattern(services, system, b"now")
    now = checksum(services, system)
    listing = cli_json(lab_config, "snapshot", "list", vm_name)
    assert [(s["name"], s["kind"], s["disks"], s["config_recorded"]) for s in listing] == [
        (snap, "image", [system], False) for snap in ("m1", "m2", "m3", "m4")
    ]
    plan = snapshots.rollback_plan(services, vm_name, "m2")
    assert not any("per disk" in w for w in plan.warnings)  # one disk: nothing to be inconsistent with
    assert not plan.restores_config
    result = cli_json(lab_config, "snapshot", "rollback", vm_name, "m2", "--yes")
    safety = result["data"]["snapshot_taken"]
    assert checksum(services, system) == sums["m2"]
    assert vm_manager.list_snapshots(vm_name) == ["m1", "m2", "m3", "m4", safety]
    assert cli(lab_config, "snapshot", "rollback", vm_name, "--undo", "--yes").returncode == 0
    assert checksum(services, system) == now

    assert cli(lab_config, "snapshot", "remove", vm_name, "m4", "--yes").returncode == 0
    assert vm_manager.list_snapshots(vm_name) == ["m1", "m2", "m3", safety]
    assert cli(lab_config, "snapshot", "purge", vm_name, "--oldest", "1", "--yes").returncode == 0
    assert vm_manager.list_snapshots(vm_name) == ["m2", "m3", safety]
    cutoff = next(s.created for s in services.vm(vm_name).snapshots if s.name == "m3")
    assert cutoff is not None
    assert cli(lab_config, "snapshot", "purge", vm_name, "--before", cutoff.isoformat(), "--yes").returncode == 0
    assert vm_manager.list_snapshots(vm_name) == ["m3", safety]
    # once more, to keep a safety snapshot that is the last rollback's
    again = cli_json(lab_config, "snapshot", "rollback", vm_name, "m3", "--yes")["data"]["snapshot_taken"]
    purge = cli_json(lab_config, "snapshot", "purge", vm_name, "--all", "--yes")
    assert purge["changed"]
    # vmconsole's purge keeps the safety snapshot of the last rollback (for --undo); vm_manager's takes it
    assert vm_manager.list_snapshots(vm_name) == [again]
    vm_manager.purge_all(vm_name)
    assert names(services, vm_name) == []


def test_a_vm_manager_snapshot_missing_on_a_disk(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    """On system_<vm> only while the VM has a data disk: listed as one, removable, purgeable; never
    rolled back on some disks only (vm_manager refuses it too)."""
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False, data_disks=1)
    system = naming.system_image(vm_name)
    for snap in ("only1", "only2"):
        services.rbd.image_snap_create(system, snap)
    (listed, _) = cli_json(lab_config, "snapshot", "list", vm_name)
    assert listed["disks"] == [system] and listed["missing_on"] == [naming.data_image(vm_name, 0)]
    text = cli(lab_config, "snapshot", "list", vm_name).stdout
    assert "MISSING on" in text
    with pytest.raises(ConflictError, match="missing on"):
        snapshots.rollback_plan(services, vm_name, "only1")
    assert cli(lab_config, "snapshot", "remove", vm_name, "only1", "--yes").returncode == 0
    assert cli(lab_config, "snapshot", "purge", vm_name, "--all", "--yes").returncode == 0
    assert services.rbd.image_snap_names(system) == []


# ---------------------------------------------------------------------------------------------- the two kinds
def test_group_kind_is_kept_and_image_kind_operates_group_snapshots(
    services: Services,
    lab: Lab,
    vm_name: str,
    cleanup_vms: list[str],
    vm_manager: VmManager,
    lab_config: Config,
    tmp_path: Path,
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False, data_disks=1)
    system, data = naming.system_image(vm_name), naming.data_image(vm_name, 0)
    grouped = group_config(lab_config, tmp_path)
    group_services = Services(grouped)
    try:
        write_pattern(services, system, b"g1")
        at_g1 = checksum(services, system)
        assert cli(grouped, "snapshot", "create", vm_name, "g1").returncode == 0
        group_services.run(snapshots.plan_snapshot_create(group_services, vm_name, "g2"))
        assert sorted(services.rbd.group_snapshots(vm_name)) == ["g1", "g2"]
        assert services.rbd.image_snap_names(system) == []
        write_pattern(services, system, b"after")
        # a rollback with kind "group" leaves a group safety snapshot
        group_services.run(
            snapshots.plan_rollback(group_services, snapshots.rollback_plan(group_services, vm_name, "g1"))
        )
        assert checksum(services, system) == at_g1
        group_safety = next(n for n in services.rbd.group_snapshots(vm_name) if n.startswith("safety-"))
    finally:
        group_services.close()
    # vm_manager cannot use them: this is why they are an explicit choice
    assert any(n.startswith(".group.") for n in vm_manager.list_snapshots(vm_name))
    with pytest.raises(rbd.ImageNotFound):
        vm_manager.purge_all(vm_name)

    # with the default kind, vmconsole lists, rolls back, protects, removes and purges them
    listing = cli_json(lab_config, "snapshot", "list", vm_name)
    assert [(s["name"], s["kind"]) for s in listing] == [("g1", "group"), ("g2", "group"), (group_safety, "group")]
    assert all(s["disks"] == [system, data] for s in listing)
    result = cli_json(lab_config, "snapshot", "rollback", vm_name, "g2", "--yes")
    image_safety = result["data"]["snapshot_taken"]
    assert services.rbd.image_snap_names(system) == [image_safety]  # the safety follows the configured kind
    assert services.rbd.image_snap_names(data) == [image_safety]
    assert cli(lab_config, "snapshot", "protect", vm_name, "g2").returncode == 0
    assert cli(lab_config, "snapshot", "remove", vm_name, "g2", "--yes").returncode == 4  # protected: refused
    assert cli(lab_config, "snapshot", "unprotect", vm_name, "g2").returncode == 0
    assert cli(lab_config, "snapshot", "remove", vm_name, "g2", "--yes").returncode == 0
    purge = cli_json(lab_config, "snapshot", "purge", vm_name, "--all", "--yes")
    assert purge["changed"]
    assert services.rbd.group_snapshots(vm_name) == []
    assert names(services, vm_name) == [image_safety]  # kept: the safety snapshot of the last rollback
    # nothing of a group snapshot is left: vm_manager works on the VM again
    vm_manager.purge_all(vm_name)
    assert names(services, vm_name) == []


# ---------------------------------------------------------------------------------------------- a running VM
def test_a_running_vm_is_paused_for_its_snapshot_and_the_pause_is_reported(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config, vm_manager: VmManager
) -> None:
    other = vm_name + "b"
    cleanup_vms += [vm_name, other]
    create_vm(services, lab, vm_name, data_disks=1)
    create_vm(services, lab, other, data_disks=1)
    result = cli(lab_config, "snapshot", "create", vm_name, "live")
    assert result.returncode == 0, result.stderr
    assert "paused" in result.stdout and "crash-consistent" in result.stderr  # lab guests have no agent
    document = cli_json(lab_config, "snapshot", "create", vm_name, "live2")
    instant = document["data"]["instant"]
    assert instant["method"] == "paused" and not instant["consistent"]
    assert 0 < instant["seconds"] < 5, instant
    assert f"paused {instant['seconds']:.3f} s" in document["message"]
    vm = services.vm(vm_name)
    assert vm.status is VmStatus.STARTED
    with services.libvirt() as lv:
        assert lv.domain_state(vm_name) == "running", "the VM was resumed"
    assert vm_manager.list_snapshots(vm_name) == ["live", "live2"]
    assert all(s.disks == (naming.system_image(vm_name), naming.data_image(vm_name, 0)) for s in vm.snapshots)

    bulk = cli_json(lab_config, "snapshot", "bulk", vm_name, other, "--snapshot", "both", "--yes")
    assert bulk["data"]["results"] == {vm_name: "ok", other: "ok"}
    assert {i["method"] for i in bulk["data"]["instants"].values()} == {"paused"}
    assert "kept still, longest" in bulk["message"]
    with services.libvirt() as lv:
        assert lv.domain_state(vm_name) == "running" and lv.domain_state(other) == "running"
    assert vm_manager.list_snapshots(other) == ["both"]


PARK_WHILE_PAUSED = """
import sys, time
from pathlib import Path
from vmconsole import config
from vmconsole.core import snapshots
from vmconsole.core.services import Services

services = Services(config.load_file(Path(sys.argv[1])))
create = services.rbd.image_snap_create
marker = Path(sys.argv[4])

def park(image, snapshot):
    create(image, snapshot)
    marker.write_text("paused")
    while True:
        time.sleep(1)

services.rbd.image_snap_create = park
services.run(snapshots.plan_snapshot_create(services, sys.argv[2], sys.argv[3]))
"""


def test_a_vmconsole_killed_while_the_vm_is_paused_is_recovered(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config, tmp_path: Path
) -> None:
    """Killed between the pause and the resume: `recover --undo` resumes the VM and takes the partial
    snapshot away; nothing of vm_manager's view is left behind."""
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, data_disks=1)
    marker = tmp_path / "parked"
    assert lab_config.source is not None
    proc = subprocess.Popen(
        [sys.executable, "-c", PARK_WHILE_PAUSED, str(lab_config.source), vm_name, "cut", str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the snapshot never started"
            time.sleep(0.05)
        with services.libvirt() as lv:
            assert lv.domain_state(vm_name) == "paused"
    finally:
        proc.kill()
        proc.wait(30)
    (entry,) = [e for e in services.journal.entries() if e.get("vm") == vm_name]
    result = cli(lab_config, "recover", str(entry["task"]), "--undo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resumed {vm_name}" in result.stdout
    with services.libvirt() as lv:
        assert lv.domain_state(vm_name) == "running"
    assert names(services, vm_name) == []
    assert services.rbd.omap_get(naming.snapshot_records_object(vm_name)) == {}
