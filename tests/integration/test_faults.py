"""Fault tests: a process killed mid-task, a daemon stopped mid-operation, a backend that hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.helpers import checksum, cli, cli_json, create_vm, leftovers, random_qcow2
from vmconsole.config import Config
from vmconsole.core import snapshots
from vmconsole.core.services import Services
from vmconsole.core.state import StateReader
from vmconsole.domain import naming
from vmconsole.domain.errors import OperationIncomplete
from vmconsole.domain.model import VmStatus
from vmconsole.lab.lab import Lab, daemon_pids, restart_osd

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_qcow2(tmp_path_factory.mktemp("images") / "random.qcow2", 512)


def start_cli(config: Config, *args: str) -> subprocess.Popen[str]:
    assert config.source is not None
    return subprocess.Popen(
        [sys.executable, "-m", "vmconsole", "--config", str(config.source), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_journal(services: Services, vm: str, key: str, timeout: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in services.journal.entries():
            if entry.get("vm") == vm and entry.get("data", {}).get(key):
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no journal entry of {vm} with {key} after {timeout} s")


def kill_and_recover(services: Services, config: Config, proc: subprocess.Popen[str], vm: str, key: str) -> None:
    entry = wait_for_journal(services, vm, key)
    time.sleep(0.3)  # well inside the copy
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    listing = cli_json(config, "recover")
    mine = [e for e in listing if e["task"] == entry["task"]]
    assert mine and not mine[0]["alive"], listing
    assert leftovers(services, vm) != [], "the killed task left something to recover"
    result = cli(config, "recover", str(entry["task"]), "--undo")
    assert result.returncode == 0, result.stderr
    assert "undone" in result.stdout
    assert leftovers(services, vm) == []
    assert all(e["task"] != entry["task"] for e in services.journal.entries())


def test_sigkill_mid_create_then_recover(
    services: Services, lab_config: Config, lab: Lab, vm_name: str, cleanup_vms: list[str], big_image: Path
) -> None:
    cleanup_vms.append(vm_name)
    state = lab.state()
    assert state is not None
    from vmconsole.lab.seed import base_xml

    xml = lab.paths.guests / f"{vm_name}.xml"
    xml.write_text(base_xml(lab, vm_name, state.domain_type))
    proc = start_cli(lab_config, "vm", "create", vm_name, "--image", str(big_image), "--xml", str(xml), "--disable")
    kill_and_recover(services, lab_config, proc, vm_name, "created_images")


def test_sigkill_mid_clone_then_recover(
    services: Services, lab_config: Config, lab: Lab, vm_name: str, cleanup_vms: list[str], big_image: Path
) -> None:
    clone = vm_name + "k"
    cleanup_vms += [clone, vm_name]
    create_vm(services, lab, vm_name, enable=False, image=str(big_image))
    source_sum = checksum(services, naming.system_image(vm_name))
    proc = start_cli(lab_config, "vm", "clone", vm_name, clone, "--disable")
    kill_and_recover(services, lab_config, proc, clone, "copied_images")
    # the source is untouched and unlocked
    assert checksum(services, naming.system_image(vm_name)) == source_sum
    assert cli(lab_config, "lock", "show", vm_name).stdout.strip().endswith("is not locked")


def test_osd_stopped_mid_rollback(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], lab_config: Config
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, data_disks=1)
    system = naming.system_image(vm_name)
    # the VM stays Started: the rollback must stop it itself
    services.run(snapshots.plan_snapshot_create(services, vm_name, "good"))
    plan = snapshots.rollback_plan(services, vm_name, "good", safety=False)
    assert plan.snapshot.kind == "image"  # the default kind: one disk after the other
    original = services.rbd.image_snap_rollback
    killed: list[int] = []

    def rollback_with_osd_gone(image: str, snapshot: str) -> None:
        if not killed:
            killed.append(daemon_pids(lab)["ceph-osd"])
            os.kill(killed[0], signal.SIGKILL)
        original(image, snapshot)

    services.rbd.image_snap_rollback = rollback_with_osd_gone  # type: ignore[method-assign]
    try:
        with pytest.raises(OperationIncomplete) as caught:
            services.run(snapshots.plan_rollback(services, plan))
    finally:
        services.rbd.image_snap_rollback = original  # type: ignore[method-assign]
        restart_osd(lab)
    message = str(caught.value)
    assert "left disabled" in message
    assert system in message and f"data_{vm_name}_0" in message
    assert f"vmconsole snapshot rollback {vm_name} good --no-safety" in message
    fresh = Services(lab_config)
    try:
        vm = fresh.vm(vm_name)
        assert vm.status is VmStatus.DISABLED, "after a partial rollback the VM must stay down"
        # finish as the message says
        result = cli(lab_config, "snapshot", "rollback", vm_name, "good", "--no-safety", "--yes")
        assert result.returncode == 0, result.stderr
        assert fresh.vm(vm_name).status is VmStatus.DISABLED  # it was left disabled: stays so
    finally:
        fresh.close()


def test_state_is_partial_not_hung_when_a_backend_stops(
    lab: Lab, lab_config: Config, services: Services, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, start=False)
    fast = replace(
        lab_config, ceph=replace(lab_config.ceph, timeout=3.0), pacemaker=replace(lab_config.pacemaker, timeout=3.0)
    )
    reader = StateReader(fast, timeout=6.0)
    try:
        healthy = reader.read()
        assert not healthy.problems and healthy.vms
        based = daemon_pids(lab)["pacemaker-based"]
        os.kill(based, signal.SIGSTOP)
        try:
            started = time.monotonic()
            degraded = reader.read()
            assert time.monotonic() - started < 10
            assert degraded.partial
            assert any("pacemaker" in p for p in degraded.problems), degraded.problems
            assert degraded.vms, "what Ceph knows is still shown"
        finally:
            os.kill(based, signal.SIGCONT)
        mon = daemon_pids(lab)["ceph-mon"]
        os.kill(mon, signal.SIGSTOP)
        try:
            started = time.monotonic()
            degraded = reader.read()
            assert time.monotonic() - started < 10
            assert any("ceph" in p or "monitor" in p for p in degraded.problems), degraded.problems
        finally:
            os.kill(mon, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while reader.read().problems:
            assert time.monotonic() < deadline, "the state did not recover"
            time.sleep(1)
    finally:
        reader.close()
