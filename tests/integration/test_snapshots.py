"""Snapshots against the real lab: consistency, configuration restore, previous state, undo, purge."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.helpers import another_operator_holds, checksum, cli, cli_json, create_vm, write_pattern
from vmconsole.config import Config
from vmconsole.core import snapshots, vms
from vmconsole.core.services import Services
from vmconsole.domain import naming
from vmconsole.domain.errors import ConflictError, LockedError, NotFoundError, ValidationError
from vmconsole.domain.model import VmStatus
from vmconsole.lab.lab import Lab

pytestmark = pytest.mark.lab


def snap(services: Services, vm: str, name: str) -> None:
    services.run(snapshots.plan_snapshot_create(services, vm, name))


def test_rollback_restores_both_disks_consistently(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False, data_disks=1)
    system, data = naming.system_image(vm_name), f"data_{vm_name}_0"
    write_pattern(services, system, b"system-1")
    write_pattern(services, data, b"data-1")
    expected = (checksum(services, system), checksum(services, data))
    snap(services, vm_name, "s1")
    write_pattern(services, system, b"system-2")
    write_pattern(services, data, b"data-2")
    changed = (checksum(services, system), checksum(services, data))
    assert changed != expected
    info = {i.snapshot.name: i for i in snapshots.list_snapshots(services, vm_name)}
    assert info["s1"].snapshot.kind == "image"  # the default: per-image snapshots vm_manager can use
    assert info["s1"].snapshot.disks == (system, data)
    assert info["s1"].written_since is not None
    services.run(snapshots.plan_rollback(services, snapshots.rollback_plan(services, vm_name, "s1")))
    assert (checksum(services, system), checksum(services, data)) == expected
    # and the rollback itself can be undone
    services.run(snapshots.plan_rollback_undo(services, vm_name))
    assert (checksum(services, system), checksum(services, data)) == changed


def test_rollback_restores_configuration_and_previous_state(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, start=False, priority=3)
    snap(services, vm_name, "before")
    image = naming.system_image(vm_name)
    services.rbd.metadata_set_many(image, {"_priority": "9", "_live_migration": "true"})
    plan = snapshots.rollback_plan(services, vm_name, "before")
    assert plan.status is VmStatus.STOPPED and not plan.will_stop and not plan.restart_after
    assert plan.restores_config and plan.safety_snapshot
    services.run(snapshots.plan_rollback(services, plan))
    meta = services.rbd.metadata(image)
    assert meta["_priority"] == "3" and "_live_migration" not in meta
    vm = services.vm(vm_name)
    assert vm.status is VmStatus.STOPPED, "a stopped VM stays stopped"
    assert vm.enabled
    # a Started VM is stopped, rolled back and started again
    services.run(vms.plan_start(services, vm_name))
    plan = snapshots.rollback_plan(services, vm_name, "before", safety=False)
    assert plan.will_stop and plan.restart_after and plan.safety_snapshot is None
    services.run(snapshots.plan_rollback(services, plan))
    assert services.vm(vm_name).status is VmStatus.STARTED


def test_rollback_refusals(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False, data_disks=1)
    system = naming.system_image(vm_name)
    # a vm_manager-style snapshot missing on one disk: refused before anything changes
    services.rbd.image_snap_create(system, "partial")
    with pytest.raises(ConflictError, match="missing on") as caught:
        snapshots.rollback_plan(services, vm_name, "partial")
    assert caught.value.field == "snapshot"
    with pytest.raises(NotFoundError):
        snapshots.rollback_plan(services, vm_name, "nosuch")
    # rollback while another task holds the lock
    snap(services, vm_name, "s1")
    with another_operator_holds(services, lab_config, vm_name, {"a": "1"}) as other:
        plan = snapshots.rollback_plan(other, vm_name, "s1")
        with pytest.raises(LockedError):
            other.run(snapshots.plan_rollback(other, plan))
    assert [s.name for s in services.vm(vm_name).snapshots] == ["partial", "s1"]


def test_reads_vm_manager_snapshots(services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False, data_disks=1)
    disks = [naming.system_image(vm_name), f"data_{vm_name}_0"]
    write_pattern(services, disks[0], b"one")
    for disk in disks:  # what vm_manager's create_snapshot does: the same name on each disk in turn
        services.rbd.image_snap_create(disk, "vmm1")
    services.rbd.image_snap_protect(disks[1], "vmm1", True)
    write_pattern(services, disks[0], b"two")
    (found,) = [s for s in services.vm(vm_name).snapshots if s.name == "vmm1"]
    assert found.kind == "image" and found.disks == tuple(disks) and found.protected and not found.missing_on
    info = {i.snapshot.name: i for i in snapshots.list_snapshots(services, vm_name)}
    assert info["vmm1"].written_since and info["vmm1"].written_since > 0
    with pytest.raises(ConflictError, match="protected"):
        snapshots.plan_snapshot_remove(services, vm_name, "vmm1")
    services.run(snapshots.plan_snapshot_protect(services, vm_name, "vmm1", False))
    plan = snapshots.rollback_plan(services, vm_name, "vmm1", safety=False)
    assert any("per disk" in w for w in plan.warnings)
    services.run(snapshots.plan_snapshot_remove(services, vm_name, "vmm1"))
    assert services.vm(vm_name).snapshots == ()


def test_protect_and_duplicate_and_bad_names(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    snap(services, vm_name, "keep")
    with pytest.raises(ConflictError, match="already has"):
        snapshots.plan_snapshot_create(services, vm_name, "keep")
    for bad in ("with space", "[red]x[/red]", "\x1b[2Jx", ".group.x", "", "a" * 65):
        with pytest.raises(ValidationError) as caught:
            snapshots.plan_snapshot_create(services, vm_name, bad)
        assert caught.value.field == "snapshot"
    services.run(snapshots.plan_snapshot_protect(services, vm_name, "keep", True))
    assert services.vm(vm_name).snapshots[0].protected
    with pytest.raises(ConflictError, match="protected"):
        snapshots.plan_snapshot_remove(services, vm_name, "keep")
    plan = snapshots.purge_plan(services, vm_name, all=True)
    assert plan.remove == () and plan.keep[0][1] == "protected"
    with pytest.raises(NotFoundError):
        snapshots.plan_snapshot_create(services, vm_name + "x", "s")


def test_every_purge_mode_does_what_its_dry_run_said(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    for index in range(6):
        snap(services, vm_name, f"p{index}")
    services.run(snapshots.plan_snapshot_protect(services, vm_name, "p1", True))

    def names() -> list[str]:
        return [s.name for s in services.vm(vm_name).snapshots]

    dry = cli_json(lab_config, "snapshot", "purge", vm_name, "--oldest", "2", "--dry-run")
    assert [s["name"] for s in dry["plans"][0]["remove"]] == ["p0", "p2"]
    assert {"name": "p1", "reason": "protected"} in dry["plans"][0]["keep"]
    assert names() == [f"p{i}" for i in range(6)]
    done = cli(lab_config, "snapshot", "purge", vm_name, "--oldest", "2", "--yes")
    assert done.returncode == 0, done.stderr
    assert names() == ["p1", "p3", "p4", "p5"]

    time.sleep(1.1)  # snapshot times have a one-second resolution
    snap(services, vm_name, "late")
    cutoff = next(s.created for s in services.vm(vm_name).snapshots if s.name == "late")
    assert cutoff is not None
    plan = snapshots.purge_plan(services, vm_name, before=cutoff)
    assert sorted(s.name for s in plan.remove) == ["p3", "p4", "p5"]
    services.run(snapshots.plan_purge(services, plan))
    assert names() == ["p1", "late"]

    plan = snapshots.purge_plan(services, vm_name, all=True)
    services.run(snapshots.plan_purge(services, plan))
    assert names() == ["p1"]

    for bad in (["--oldest", "-1"], ["--before", "not a date"], ["--before", "2999-01-01T00:00Z"]):
        result = cli(lab_config, "snapshot", "purge", vm_name, *bad, "--yes")
        assert result.returncode == ValidationError.exit_code, (bad, result.stderr)
    naive = cli(lab_config, "snapshot", "purge", vm_name, "--before", "2000-01-01 10:00", "--dry-run")
    assert "local time" in naive.stdout


def test_retention_prune(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    for index in range(4):
        snap(services, vm_name, f"r{index}")
    cli_json(lab_config, "snapshot", "policy", vm_name, "--keep-last", "2")
    plan = snapshots.prune_plan(services, vm_name, snapshots.RetentionPolicy(keep_last=2))
    assert len(plan.remove) == 2
    result = cli(lab_config, "snapshot", "prune", vm_name, "--yes")
    assert result.returncode == 0, result.stderr
    assert len(services.vm(vm_name).snapshots) == 2
    cli_json(lab_config, "snapshot", "policy", vm_name, "--keep-last", "0", "--keep-daily", "0")
    assert vm_name not in snapshots.policies(services)


def test_bulk_snapshot_with_one_vm_locked(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    names = [vm_name + suffix for suffix in ("a", "b", "c")]
    cleanup_vms += names
    for name in names:
        create_vm(services, lab, name, enable=False)
    with another_operator_holds(services, lab_config, names[1], {"x": "1"}) as other:
        result = other.run(snapshots.plan_bulk_snapshot(other, names, "bulk"))
    assert result.data["results"][names[0]] == "ok" and result.data["results"][names[2]] == "ok"
    assert "locked by" in result.data["results"][names[1]]
    assert "FAILED" in result.message and names[1] in result.message
    assert [s.name for s in services.vm(names[0]).snapshots] == ["bulk"]
    assert services.vm(names[1]).snapshots == ()


def test_snapshot_of_a_running_vm_and_cli_list(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name)
    result = cli(lab_config, "snapshot", "create", vm_name, "live")
    assert result.returncode == 0, result.stderr
    assert "crash-consistent" in result.stderr  # no guest agent in the lab guests: said, not hidden
    listing = cli_json(lab_config, "snapshot", "list", vm_name)
    assert listing[0]["name"] == "live" and listing[0]["config_recorded"]
    created = datetime.fromisoformat(listing[0]["created"])
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)
    assert services.vm(vm_name).status is VmStatus.STARTED
