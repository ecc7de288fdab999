"""The fault matrix, generated from each operation's own plan (real lab):

(a) every name the task would create already exists: refused, the existing object unchanged;
(b) a failure injected right after each step's work: afterwards the cluster is what it was, except
    what the message says was kept, and no safety snapshot ever disappears;
(c) the process SIGKILLed at each step: ``vmconsole recover`` finishes or undoes, nothing is lost.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fault_scenarios import SCENARIOS, Scenario, remove_everything
from tests.integration.helpers import cli, inject_failure
from vmconsole.config import Config
from vmconsole.core.services import Services
from vmconsole.domain import naming
from vmconsole.domain.errors import ConflictError, OperationIncomplete, VmConsoleError
from vmconsole.lab.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- the world
def sampled_checksum(services: Services, image: str) -> str:
    """4 KiB at the start of every 4 MiB object: enough to see data changed, fast on any size."""
    size = services.rbd.image_size(image)
    digest = hashlib.sha256(str(size).encode())
    ranges = [(offset, min(4096, size - offset)) for offset in range(0, size, 4 << 20)]
    for chunk in services.rbd.read_ranges(image, ranges):  # one open: librbd opens are not free
        digest.update(chunk)
    return digest.hexdigest()


def world(services: Services, names: list[str]) -> dict[str, Any]:
    """Everything of these VMs on the cluster, and every temporary object vmconsole could leave."""
    rbd = services.rbd

    def ours(item: str) -> bool:
        return item.startswith("vmconsole") or any(
            item in (vm, naming.system_image(vm)) or item.startswith(f"data_{vm}_") for vm in names
        )

    images = {}
    for image in sorted(i for i in rbd.image_ids() if ours(i) or "vmconsole" in i):
        info = rbd.image_info(image)
        images[image] = {
            "size": info.size,
            "metadata": dict(info.metadata),
            "snapshots": sorted((s.name, s.protected) for s in info.snapshots if s.namespace == "user"),
            "group": info.group,
            "data": sampled_checksum(services, image),
        }
    groups = {
        g: {"images": sorted(rbd.group_images(g)), "snapshots": sorted(rbd.group_snapshots(g))}
        for g in rbd.group_names()
        if ours(g)
    }
    primitives = {rid: p for rid, p in services.primitives().items() if ours(rid)}
    statuses = {vm: services.vm(vm).status.value for vm in names if vm in groups}
    records = {vm: sorted(rbd.omap_get(naming.snapshot_records_object(vm))) for vm in names}
    journal = sorted(e["task"] for e in services.journal.entries() if e.get("vm") in names)
    return {
        "images": images,
        "groups": groups,
        "primitives": primitives,
        "status": statuses,
        "records": records,
        "journal": journal,
    }


WORLD_APART = """
import base64, json, pickle, sys
from pathlib import Path
from vmconsole import config
from vmconsole.core.services import Services
from tests.integration.test_fault_matrix import world
services = Services(config.load_file(Path(sys.argv[1])))
try:
    state = world(services, json.loads(sys.argv[2]))
    state["primitives"] = {rid: repr(p) for rid, p in state["primitives"].items()}  # as compared: by value
finally:
    services.close()
sys.stdout.write(base64.b64encode(pickle.dumps(state)).decode())
"""


def world_apart(config: Config, names: list[str]) -> dict[str, Any]:
    """``world`` read by a process of its own. In the whole suite, reading a linked clone's images in this
    long-lived process was ended three times by a native abort inside librbd (CI, the linked-clone
    scenarios); a reader of its own that dies is tried again, with what it printed, instead of taking
    the whole suite down with it."""
    assert config.source is not None
    for attempt in range(1, 4):
        result = subprocess.run(
            [sys.executable, "-c", WORLD_APART, str(config.source), json.dumps(names)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        if result.returncode == 0:
            state: dict[str, Any] = pickle.loads(base64.b64decode(result.stdout))
            return state
        assert result.returncode < 0, f"reading the world failed: {result.stderr[-3000:]}"
        print(
            f"the world's reader died of signal {-result.returncode} (attempt {attempt}): {result.stderr[-3000:]}",
            file=sys.stderr,
        )
    raise AssertionError("the world's reader died three times in a row")


def safety_snapshots(state: dict[str, Any]) -> set[tuple[str, str]]:
    """(group or image, name) of every safety snapshot: a group's, or a disk's own (the kinds of snapshot)."""
    grouped = {(g, s) for g, value in state["groups"].items() for s in value["snapshots"] if s.startswith("safety-")}
    per_image = {
        (i, s) for i, value in state["images"].items() for s, _ in value["snapshots"] if s.startswith("safety-")
    }
    return grouped | per_image


def nets_named(message: str) -> set[str]:
    """The safety snapshots a message names as kept on purpose."""
    return set(re.findall(r"the safety snapshot (safety-[0-9a-f-]+)", message))


def without(state: dict[str, Any], nets: set[str]) -> dict[str, Any]:
    """The world without the safety nets kept on purpose (a safety snapshot, its record, the rollback's)."""
    if not nets:
        return state
    groups = {g: {**v, "snapshots": [s for s in v["snapshots"] if s not in nets]} for g, v in state["groups"].items()}
    images = {
        i: {**v, "snapshots": [(s, p) for s, p in v["snapshots"] if s not in nets]} for i, v in state["images"].items()
    }
    records = {vm: [r for r in rs if r not in nets and r != "__rollback__"] for vm, rs in state["records"].items()}
    return {**state, "groups": groups, "images": images, "records": records}


# ---------------------------------------------------------------------------------------------- (b)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_failure_at_every_step_leaves_what_the_message_says(
    services: Services, lab: Lab, lab_config: Config, vm_name: str, cleanup_vms: list[str], scenario: str
) -> None:
    case: Scenario = SCENARIOS[scenario]
    names = case.vms(vm_name)
    cleanup_vms += names
    case.setup(services, lab, vm_name)
    steps = len(case.plan(services, lab, vm_name).steps)
    assert steps >= 1
    for index in range(steps):
        case.setup(services, lab, vm_name)
        before = world_apart(lab_config, names)
        task = case.plan(services, lab, vm_name)
        assert len(task.steps) == steps, f"{scenario}: the world was not put back ({len(task.steps)} steps now)"
        with pytest.raises(VmConsoleError) as caught:
            services.run(inject_failure(task, index))
        message = caught.value.message
        after = world_apart(lab_config, names)
        where = f"{scenario}, failure after step {index + 1}/{steps} ({task.steps[index].name}): {message}"
        assert "injected failure" in message, where
        assert safety_snapshots(before) <= safety_snapshots(after), f"a safety snapshot disappeared: {where}"
        if isinstance(caught.value, OperationIncomplete):
            # past a point of no return: the message says what stays and gives the command
            assert "`vmconsole " in message, where
            remove_everything(services, [n for n in names if n != vm_name] if scenario != "create" else names)
        else:
            if index > 0:
                assert "every completed step was undone" in message, where
            nets = nets_named(message)
            assert without(after, nets) == without(before, nets), where


# ---------------------------------------------------------------------------------------------- (a)
def _orphan_with_protected_snapshot(services: Services, image: str) -> str:
    services.rbd.create_image(image, 8 << 20)
    services.rbd.write(image, 0, b"precious" * 512)
    services.rbd.image_snap_create(image, "keep")
    services.rbd.image_snap_protect(image, "keep", True)
    return sampled_checksum(services, image)


@pytest.mark.parametrize("scenario", ["create", "deep-clone", "linked-clone"])
def test_a_name_that_exists_already_is_refused_and_left_alone(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str], scenario: str
) -> None:
    case = SCENARIOS[scenario]
    cleanup_vms += case.vms(vm_name)
    case.setup(services, lab, vm_name)
    for image in case.creates_images(vm_name):
        # at plan time: refused, the orphan untouched
        data = _orphan_with_protected_snapshot(services, image)
        try:
            with pytest.raises(ConflictError, match="already exist"):
                case.plan(services, lab, vm_name)
            # under the lock: the plan was made before the orphan appeared
            services.rbd.image_snap_protect(image, "keep", False)
            services.rbd.image_snap_remove(image, "keep")
            services.rbd.remove_image(image)
            task = case.plan(services, lab, vm_name)
            data = _orphan_with_protected_snapshot(services, image)
            with pytest.raises(ConflictError, match="already exist"):
                services.run(task)
            info = services.rbd.image_info(image)
            assert sampled_checksum(services, image) == data
            assert [(s.name, s.protected) for s in info.snapshots] == [("keep", True)]
            assert info.group is None
        finally:
            services.rbd.image_snap_protect(image, "keep", False)
            services.rbd.image_snap_remove(image, "keep")
            services.rbd.remove_image(image)


def test_a_safety_name_taken_since_the_plan_is_refused(
    services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    from vmconsole.core import snapshots

    cleanup_vms.append(vm_name)
    SCENARIOS["rollback"].setup(services, lab, vm_name)
    plan = snapshots.rollback_plan(services, vm_name, "point")
    assert plan.safety_snapshot is not None
    other = snapshots.rollback_plan(services, vm_name, "point")
    assert other.safety_snapshot != plan.safety_snapshot  # unique even within one second
    services.run(snapshots.plan_snapshot_create(services, vm_name, plan.safety_snapshot))
    with pytest.raises(ConflictError, match="already has a snapshot"):
        services.run(snapshots.plan_rollback(services, plan))
    assert any(s.name == plan.safety_snapshot for s in services.vm(vm_name).snapshots)


# ---------------------------------------------------------------------------------------------- (c)
def run_until_step(config: Config, scenario: str, name: str, index: int, marker: Path) -> subprocess.Popen[str]:
    """The kill runner: plans the scenario's task in a process of its own and parks at step ``index``,
    right after its work, until it is killed."""
    assert config.source is not None
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.kill_runner",
            str(config.source),
            scenario,
            name,
            str(index),
            str(marker),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    "scenario", ["create", "deep-clone", "linked-clone", "rollback", "remove", "force-replace", "snapshot-create"]
)
def test_a_kill_at_every_step_is_recovered(
    services: Services,
    lab: Lab,
    lab_config: Config,
    vm_name: str,
    cleanup_vms: list[str],
    scenario: str,
    tmp_path: Path,
) -> None:
    case = SCENARIOS[scenario]
    names = case.vms(vm_name)
    cleanup_vms += names
    case.setup(services, lab, vm_name)
    steps = len(case.plan(services, lab, vm_name).steps)
    for index in range(steps):
        case.setup(services, lab, vm_name)
        before = world_apart(lab_config, names)
        assert len(case.plan(services, lab, vm_name).steps) == steps, f"{scenario}: the world was not put back"
        marker = tmp_path / f"{scenario}-{index}"
        proc = run_until_step(lab_config, scenario, vm_name, index, marker)
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, f"the runner ended early: {proc.communicate()}"
            assert time.monotonic() < deadline, "the runner never reached its step"
            time.sleep(0.05)
        task_id = marker.read_text().strip()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        where = f"{scenario}, killed after step {index + 1}/{steps}"
        result = cli(lab_config, "recover", task_id, "--undo")
        assert result.returncode == 0, f"{where}: {result.stdout}{result.stderr}"
        after = world_apart(lab_config, names)
        assert safety_snapshots(before) <= safety_snapshots(after), f"a safety snapshot disappeared: {where}"
        assert after["journal"] == [], f"{where}: the journal entry stayed"
        if "finished" in result.stdout:
            remove_everything(services, [n for n in names if n != vm_name] if scenario != "create" else names)
        else:
            nets = {s for _, s in safety_snapshots(after) - safety_snapshots(before)}
            assert without(after, nets) == without(before, nets), f"{where}: {result.stdout}"
