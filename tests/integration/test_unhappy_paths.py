"""The unhappy paths an operator meets at 3 a.m., on the real lab (issue 9's explicit cases):

- a rollback whose restart fails keeps its safety net: the VM stays as it is, the message names the
  safety snapshot and the command that goes back, and ``--undo`` brings back what was written since;
- a qcow2 whose data lives in a host file is refused by create and import, nothing made;
- two sessions racing: on the create of one name, a rollback against a remove, a purge during a clone.
  One wins, the other is refused with a clear error, nothing is lost.

What the fault matrix covers (a failure or a kill at every step, names that exist already) is not
repeated here.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import checksum, cli, create_vm, leftovers, make_spec, write_pattern
from vmconsole.config import Config
from vmconsole.core import snapshots, vms
from vmconsole.core.services import Services
from vmconsole.core.tasks import Task, TaskResult
from vmconsole.domain import naming
from vmconsole.domain.errors import (
    BackendError,
    ConflictError,
    LockedError,
    NotFoundError,
    OperationIncomplete,
    ValidationError,
)
from vmconsole.domain.model import VmStatus
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

EMULATOR = "<emulator>/usr/bin/qemu-system-x86_64</emulator>"


def snapshot_checksum(services: Services, image: str, snapshot: str) -> str:
    """The data of ``image`` as snapshot ``snapshot`` holds it (the same digest as helpers.checksum)."""
    size = services.rbd.image_size(image)
    digest = hashlib.sha256()
    step = 4 << 20
    for chunk in services.rbd.read_ranges(image, [(o, min(step, size - o)) for o in range(0, size, step)], snapshot):
        digest.update(chunk)
    return digest.hexdigest()


def snapshot_names(services: Services, vm: str) -> set[str]:
    return {s.name for s in services.vm(vm).snapshots}


@contextmanager
def holding(services: Services, task: Task, index: int = 0) -> Iterator[dict[str, Any]]:
    """Run ``task`` in a thread of its own, parked just before the work of step ``index`` (so holding
    its locks) while the body runs; afterwards it finishes. Yields where its outcome lands:
    ``{"result": TaskResult}`` or ``{"error": exception}``."""
    gate, release = threading.Event(), threading.Event()
    step = task.steps[index]
    work = step.run

    def parked(ctx: Any) -> None:
        gate.set()
        release.wait(60)
        work(ctx)

    step.run = parked
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = services.run(task)
        except BaseException as exc:  # reported by the test, never lost in the thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"holding {task.operation}")
    worker.start()
    try:
        assert gate.wait(120), f"{task.operation} never reached step {index + 1} ({step.name}): {outcome}"
        yield outcome
    finally:
        release.set()
        worker.join(300)
    assert not worker.is_alive(), f"{task.operation} did not finish once released"


# ---------------------------------------------------------------------------------------------- (a)
def test_a_rollback_whose_restart_fails_keeps_the_safety_snapshot_and_undo_returns(
    services: Services, lab: Lab, lab_config: Config, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, start=False)
    system = naming.system_image(vm_name)
    good = services.rbd.metadata(system)["xml"]
    assert EMULATOR in good
    # c1test records a configuration QEMU cannot start (its emulator has gone since, say)
    services.rbd.metadata_set_many(system, {"xml": good.replace(EMULATOR, "<emulator>/nonexistent/qemu</emulator>")})
    services.run(snapshots.plan_snapshot_create(services, vm_name, "c1test"))
    services.rbd.metadata_set_many(system, {"xml": good})
    at_c1test = checksum(services, system)
    write_pattern(services, system, b"written since c1test")
    since = checksum(services, system)
    assert since != at_c1test
    services.run(vms.plan_start(services, vm_name))
    assert services.vm(vm_name).status is VmStatus.STARTED

    failed = cli(lab_config, "snapshot", "rollback", vm_name, "c1test", "--yes")

    output = failed.stdout + failed.stderr
    assert failed.returncode == OperationIncomplete.exit_code, output
    nets = sorted(snapshot_names(services, vm_name) - {"c1test"})
    assert len(nets) == 1 and nets[0].startswith("safety-"), nets
    safety = nets[0]
    # the message tells the truth: what is left, the safety snapshot by name, the command that goes back
    assert safety in output, output
    assert f"vmconsole snapshot rollback {vm_name} --undo" in output, output
    assert "every completed step was undone" not in output, output
    # the VM stays as it is: still enabled, its disks rolled back; what was written since is in the net
    assert vm_name in services.primitives()
    assert services.vm(vm_name).enabled
    assert checksum(services, system) == at_c1test
    assert snapshot_checksum(services, system, safety) == since

    undo = cli(lab_config, "snapshot", "rollback", vm_name, "--undo", "--yes")

    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert checksum(services, system) == since, "--undo did not bring back what was written since c1test"
    assert services.rbd.metadata(system)["xml"] == good, "--undo did not restore the configuration"
    assert {"c1test", safety} <= snapshot_names(services, vm_name)
    # and the VM runs again, as before the rollback that is undone
    assert services.vm(vm_name).status is VmStatus.STARTED


# ---------------------------------------------------------------------------------------------- (b)
@pytest.fixture
def qcow2_on_a_host_file(tmp_path: Path) -> tuple[Path, Path]:
    """A qcow2 whose data lives in another (host) file: reading the qcow2 reads that file."""
    host_file = tmp_path / "host-secret.raw"
    host_file.write_bytes(b"host secret\n" * 1024)
    image = tmp_path / "external.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={host_file},data_file_raw=on", str(image), "1M"],
        check=True,
        timeout=30,
    )
    return image, host_file


def test_a_qcow2_keeping_its_data_in_a_host_file_is_refused_by_create(
    services: Services, lab: Lab, lab_config: Config, vm_name: str, qcow2_on_a_host_file: tuple[Path, Path]
) -> None:
    image, host_file = qcow2_on_a_host_file
    with pytest.raises(ValidationError) as caught:
        vms.plan_create(services, make_spec(lab, vm_name, image=str(image)))
    assert caught.value.field == "image"
    assert str(host_file) in caught.value.message and "data" in caught.value.message
    # as an operator meets it: exit 2, nothing made
    xml = lab.paths.guests / f"{vm_name}.xml"
    state = lab.state()
    assert state is not None
    xml.write_text(base_xml(lab, vm_name, state.domain_type))
    try:
        result = cli(lab_config, "vm", "create", vm_name, "--image", str(image), "--xml", str(xml), "--disable")
    finally:
        xml.unlink()
    assert result.returncode == ValidationError.exit_code, result.stdout + result.stderr
    assert "another file" in result.stderr
    assert leftovers(services, vm_name) == []  # nothing made (the lab is shared: only this VM's objects count)


def test_a_qcow2_keeping_its_data_in_a_host_file_is_refused_by_import(
    services: Services,
    lab: Lab,
    tmp_path: Path,
    vm_name: str,
    cleanup_vms: list[str],
    qcow2_on_a_host_file: tuple[Path, Path],
) -> None:
    image, host_file = qcow2_on_a_host_file
    state = lab.state()
    assert state is not None
    uri = services.config.libvirt.uri

    def define(driver: str) -> None:
        xml = base_xml(lab, vm_name, state.domain_type).replace(
            EMULATOR,
            EMULATOR + f"<disk type='file' device='disk'>{driver}<source file='{image}'/>"
            "<target dev='vda' bus='virtio'/></disk>",
        )
        domain_file = tmp_path / "domain.xml"
        domain_file.write_text(xml)
        subprocess.run(["virsh", "-q", "-c", uri, "define", str(domain_file)], check=True, timeout=60)

    def undefine() -> None:
        subprocess.run(["virsh", "-q", "-c", uri, "undefine", vm_name], check=False, capture_output=True, timeout=60)

    # the domain says qcow2: the image is read as qcow2, which points at a host file: refused, nothing made
    define("<driver name='qemu' type='qcow2'/>")
    try:
        with pytest.raises(ValidationError) as caught:
            vms.plan_import(services, vm_name, options=vms.VmOptions(enable=False))
        assert caught.value.field == "image"
        assert str(host_file) in caught.value.message and "another file" in caught.value.message
        with services.libvirt() as lv:
            assert lv.domain_xml(vm_name) is not None, "a refused import must leave the local domain defined"
    finally:
        undefine()
    assert leftovers(services, vm_name) == []

    # a domain without a <driver type> is raw to libvirt, so its guest sees the file's own bytes: the
    # import reads exactly that, never the host file the qcow2 header names
    cleanup_vms.append(vm_name)
    define("")
    try:
        services.run(vms.plan_import(services, vm_name, options=vms.VmOptions(enable=False)))
    finally:
        undefine()
    system = naming.system_image(vm_name)
    imported = services.rbd.read(system, 0, services.rbd.image_size(system))
    assert imported[: image.stat().st_size] == image.read_bytes()
    assert b"host secret" not in imported


# ---------------------------------------------------------------------------------------------- (c)
def test_two_sessions_creating_one_name_one_wins_the_other_is_refused(
    services: Services, lab: Lab, lab_config: Config, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    other = Services(lab_config)
    try:
        # both planned while the name is free, as two consoles would; then run at the same instant
        tasks = [(s, vms.plan_create(s, make_spec(lab, vm_name, enable=False))) for s in (services, other)]
        barrier = threading.Barrier(len(tasks))
        outcomes: list[TaskResult | BaseException | None] = [None] * len(tasks)

        def run(index: int) -> None:
            session, task = tasks[index]
            barrier.wait(30)
            try:
                outcomes[index] = session.run(task)
            except BaseException as exc:
                outcomes[index] = exc

        workers = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(300)
    finally:
        other.close()
    won = [o for o in outcomes if isinstance(o, TaskResult)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and len(refused) == 1, outcomes
    error = refused[0]
    assert isinstance(error, ConflictError | LockedError), repr(error)
    assert vm_name in error.message, error.message
    # nothing lost, nothing doubled: the winner's VM whole, nothing of the loser's
    vm = services.vm(vm_name)
    assert vm.status is VmStatus.DISABLED
    assert services.rbd.group_images(vm_name) == [naming.system_image(vm_name)]
    assert services.rbd.metadata(naming.system_image(vm_name))["vm_name"] == vm_name
    assert sorted(leftovers(services, vm_name)) == sorted([f"group {vm_name}", f"image {naming.system_image(vm_name)}"])


def test_a_create_is_not_disturbed_by_another_vm_removed_meanwhile(
    services: Services, lab: Lab, lab_config: Config, vm_name: str, cleanup_vms: list[str]
) -> None:
    """Seen on the shared lab: a create checks that its UUID is free by reading every VM's configuration;
    another operator removing some VM between the listing and the read must not fail the create."""
    gone = vm_name + "g"
    cleanup_vms += [vm_name, gone]
    create_vm(services, lab, gone, enable=False)
    gone_id = services.rbd.image_ids()[naming.system_image(gone)]
    task = vms.plan_create(services, make_spec(lab, vm_name, enable=False))
    other = Services(lab_config)
    read = services.rbd.header_metadata

    def read_after_the_other_removed_it(image_id: str) -> dict[str, str]:
        if image_id == gone_id and other.vm_exists(gone):
            other.run(vms.plan_remove(other, gone))  # a real removal, by another session, right then
        return read(image_id)

    services.rbd.header_metadata = read_after_the_other_removed_it  # type: ignore[method-assign]
    try:
        services.run(task)
    finally:
        services.rbd.header_metadata = read  # type: ignore[method-assign]
        other.close()
    assert services.vm(vm_name).status is VmStatus.DISABLED
    assert not services.vm_exists(gone) and leftovers(services, gone) == []


def test_a_rollback_and_a_remove_racing_one_wins_the_other_is_refused(
    services: Services, lab: Lab, lab_config: Config, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, enable=False)
    system = naming.system_image(vm_name)
    services.run(snapshots.plan_snapshot_create(services, vm_name, "before"))
    at_before = checksum(services, system)
    write_pattern(services, system, b"since before")
    since = checksum(services, system)
    other = Services(lab_config)
    try:
        # the rollback holds the VM: the remove another console planned meanwhile is refused
        remove = vms.plan_remove(other, vm_name)
        plan = snapshots.rollback_plan(services, vm_name, "before")
        assert plan.safety_snapshot is not None
        with holding(services, snapshots.plan_rollback(services, plan)) as rollback:
            with pytest.raises(LockedError) as caught:
                other.run(remove)
            assert vm_name in str(caught.value) and "snapshot-rollback" in str(caught.value)
        assert "error" not in rollback, rollback
        assert services.vm_exists(vm_name)
        assert checksum(services, system) == at_before
        assert snapshot_checksum(services, system, plan.safety_snapshot) == since
        assert {"before", plan.safety_snapshot} <= snapshot_names(services, vm_name)

        # the other way round: the remove holds the VM, the rollback is refused and touches nothing
        rollback_task = snapshots.plan_rollback(other, snapshots.rollback_plan(other, vm_name, plan.safety_snapshot))
        with holding(services, vms.plan_remove(services, vm_name)) as removal:
            with pytest.raises(LockedError) as caught:
                other.run(rollback_task)
            assert vm_name in str(caught.value) and "remove" in str(caught.value)
            assert checksum(services, system) == at_before, "a refused rollback touched the disk"
        assert "error" not in removal, removal
        assert leftovers(services, vm_name) == []
        with pytest.raises(NotFoundError):
            snapshots.rollback_plan(other, vm_name, "before")
    finally:
        other.close()


def test_a_purge_during_a_clone_is_refused_and_the_clone_is_whole(
    services: Services, lab: Lab, lab_config: Config, vm_name: str, cleanup_vms: list[str]
) -> None:
    clone = vm_name + "c"
    cleanup_vms += [clone, vm_name]
    create_vm(services, lab, vm_name, enable=False, data_disks=1)
    system, data = naming.system_image(vm_name), naming.data_image(vm_name, 0)
    write_pattern(services, system, b"source system")
    write_pattern(services, data, b"source data")
    for name in ("s1", "s2"):
        services.run(snapshots.plan_snapshot_create(services, vm_name, name))
    expected = {system: checksum(services, system), data: checksum(services, data)}
    task = vms.plan_clone(services, vms.CloneSpec(source=vm_name, name=clone, options=vms.VmOptions(enable=False)))
    copy = next(i for i, s in enumerate(task.steps) if s.name.startswith("copy "))
    other = Services(lab_config)
    try:
        with holding(services, task, copy) as cloning:
            purge = snapshots.plan_purge(other, snapshots.purge_plan(other, vm_name, all=True))
            with pytest.raises(LockedError) as caught:
                other.run(purge)
            assert vm_name in str(caught.value) and "clone" in str(caught.value)
        assert "error" not in cloning, cloning
        # nothing lost: the source's snapshots and data, the clone's copy
        assert {"s1", "s2"} <= snapshot_names(other, vm_name)
        assert checksum(services, naming.system_image(clone)) == expected[system]
        assert checksum(services, naming.data_image(clone, 0)) == expected[data]
        assert checksum(services, system) == expected[system]
        # once the clone is done, the purge goes through and the clone is untouched
        other.run(snapshots.plan_purge(other, snapshots.purge_plan(other, vm_name, all=True)))
        assert snapshot_names(other, vm_name) == set()
        assert checksum(services, naming.system_image(clone)) == expected[system]
    finally:
        other.close()


def test_a_disk_copy_that_fails_stops_the_others_and_the_clone_is_undone(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deep clone copies its disks at once: when one copy fails, the others are stopped, every copy
    (whole or partial) goes, and the source keeps its data and no temporary snapshot."""
    clone = vm_name + "c"
    cleanup_vms += [clone, vm_name]
    create_vm(services, lab, vm_name, enable=False, data_disks=1)
    system, data = naming.system_image(vm_name), naming.data_image(vm_name, 0)
    write_pattern(services, system, b"source system")
    expected = checksum(services, system)
    real_copy = services.rbd.deep_copy
    system_started = threading.Event()
    system_copied: list[bool] = []

    def copy(source: str, target: str, size: int, progress: Any, cancelled: Any) -> bool:
        if source.startswith("data_"):
            system_started.wait(30)
            raise BackendError("ceph", f"copy of {source} failed: injected")

        def watched() -> bool:
            system_started.set()
            return bool(cancelled())

        system_copied.append(real_copy(source, target, size, progress, watched))
        return system_copied[-1]

    monkeypatch.setattr(services.rbd, "deep_copy", copy)
    task = vms.plan_clone(services, vms.CloneSpec(source=vm_name, name=clone, options=vms.VmOptions(enable=False)))
    with pytest.raises(BackendError) as caught:
        services.run(task)
    assert "injected" in str(caught.value)
    assert system_copied == [False], "the system disk's copy was not stopped"
    assert "every completed step was undone" in str(caught.value.hint or "") + str(caught.value), caught.value
    assert leftovers(services, clone) == []
    assert checksum(services, system) == expected
    for image in (system, data):
        assert not [s for s in services.rbd.image_info(image).snapshots if s.name.startswith("vmconsole-clone-")]
