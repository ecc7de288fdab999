"""vmconsole on a real SEAPATH cluster: three nodes, the last one an observer, one lab for the module.

What an operator relies on there: every VM is banned from the observer (``cli-ban-<vm>-on-<observer>``,
as vm_manager's ``enable_vm`` writes it) whichever way its primitive was made or made again (create,
enable, clone, import, rollback, update); the observer is refused as a VM's host and shown as an
observer; move and migrate touch only the VM's own preference (every ban and every other tool's
constraint stays); live migration between the hypervisors, and the reasons a live migration is
refused; a node's standby drains it and says where each VM went; a node crash restarts its VMs on
the other hypervisor, and the console inside the surviving node shows it.

Every command runs inside a node (``Lab.run_on``), where vmconsole reaches that node's pacemaker and
libvirt. The lab is brought up once for the module and always taken down.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.test_multinode_lab import MULTINODE_LOCK, on_node, vm_where, wait_started_on
from vmconsole.domain import xmlsafe
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml, disk_image

pytestmark = [pytest.mark.lab_lifecycle, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
OBSERVER = "n3"
HYPERVISORS = ("n1", "n2")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def mlab() -> Iterator[Lab]:
    """One three-node lab (n3 the observer) for every test of the module, under the multi-node lock."""
    MULTINODE_LOCK.touch(exist_ok=True)
    with MULTINODE_LOCK.open("r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for {MULTINODE_LOCK}: another session runs a multi-node lab")
            fcntl.flock(handle, fcntl.LOCK_EX)
        lab = Lab(Path(f"/tmp/vmconsole-mlab-{uuid.uuid4().hex[:8]}"), log=_log)
        try:
            lab.up(nodes=3, observer=True)
            yield lab
        finally:
            lab.down()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], code: int) -> dict[str, Any]:
    """A refusal: its exit code, and its JSON document (the command was run with --json)."""
    assert result.returncode == code, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["changed"] is False
    return data


def constraints(lab: Lab, vm: str, node: str = "n1") -> dict[str, dict[str, str]]:
    """The CIB's constraints naming ``vm``, by id, with their attributes (read inside ``node``)."""
    text = ok(lab.run_on(node, ["cibadmin", "--query", "--scope", "constraints"], timeout=30))
    root = xmlsafe.parse(text, what="constraints")
    return {
        str(c.get("id")): {k: str(v) for k, v in c.attrib.items()}
        for c in root
        if c.get("rsc") == vm or c.get("with-rsc") == vm
    }


def assert_observer_ban(lab: Lab, vm: str) -> None:
    """The ban exactly as `crm_resource --ban` (vm_manager's `crm resource ban`) writes it."""
    ban = constraints(lab, vm).get(f"cli-ban-{vm}-on-{OBSERVER}")
    assert ban == {
        "id": f"cli-ban-{vm}-on-{OBSERVER}",
        "rsc": vm,
        "role": "Started",
        "node": OBSERVER,
        "score": "-INFINITY",
    }, constraints(lab, vm)


def create(lab: Lab, vm: str, *options: str, node: str = "n1") -> subprocess.CompletedProcess[str]:
    state = lab.state()
    assert state is not None
    xml = lab.paths.guests / f"{vm}.xml"
    xml.write_text(base_xml(lab, vm, state.domain_type))
    return on_node(
        lab,
        node,
        "vm",
        "create",
        vm,
        "--image",
        str(disk_image(lab)),
        "--xml",
        str(xml),
        "--pacemaker-params",
        "force_stop=true",
        *options,
        timeout=180,
    )


@pytest.fixture(scope="module")
def live_vm(mlab: Lab) -> str:
    """A Started VM that allows live migration, made with vmconsole inside n1."""
    vm = "ml" + uuid.uuid4().hex[:8]
    ok(create(mlab, vm, "--enable-live-migration"))
    wait_started_on(mlab, "n1", vm, set(HYPERVISORS), 60)
    return vm


def test_the_observer_is_shown_as_one_and_refused_as_a_vms_host(mlab: Lab) -> None:
    listed = json.loads(ok(on_node(mlab, "n1", "node", "list", "--json")))
    assert {n["name"]: n["kind"] for n in listed} == {"n1": "member", "n2": "member", "n3": "observer"}
    text = ok(on_node(mlab, "n1", "node", "list"))
    assert [line.split()[0] for line in text.splitlines() if "observer" in line] == [OBSERVER]

    vm = "mo" + uuid.uuid4().hex[:8]
    for option in ("--pinned-host", "--preferred-host"):
        error = refused(create(mlab, vm, option, OBSERVER, "--json"), 2)
        assert error["field"] == option[2:].replace("-", "_")
        assert f"{OBSERVER} is the cluster's observer: it never runs VMs" in error["message"]
        assert "n1" in error["hint"] and "n2" in error["hint"]
    assert refused(on_node(mlab, "n1", "vm", "status", vm, "--json"), 3)["reason"] == "not_found"


def test_every_path_that_makes_a_primitive_bans_the_observer(mlab: Lab, live_vm: str) -> None:
    vm = live_vm
    assert_observer_ban(mlab, vm)  # create (enabled, started)

    # disable drops the VM's constraints with its primitive; enable bans the observer again
    ok(on_node(mlab, "n1", "vm", "disable", vm, "--yes"))
    assert constraints(mlab, vm) == {}
    ok(on_node(mlab, "n1", "vm", "enable", vm))
    assert_observer_ban(mlab, vm)

    # clone (started by default)
    clone = vm + "c"
    ok(on_node(mlab, "n1", "vm", "clone", vm, clone, timeout=180))
    assert_observer_ban(mlab, clone)
    ok(on_node(mlab, "n1", "vm", "remove", clone, "--yes", timeout=180))
    assert constraints(mlab, clone) == {}

    # import (add-to-cluster) of a domain defined in n2's own libvirt, with a local disk file
    imported = "mi" + uuid.uuid4().hex[:8]
    state = mlab.state()
    assert state is not None
    disk = mlab.paths.guests / f"{imported}.qcow2"
    disk.write_bytes(disk_image(mlab).read_bytes())
    xml = base_xml(mlab, imported, state.domain_type).replace(
        "</devices>",
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>"
        "<target dev='vda' bus='virtio'/></disk></devices>",
    )
    ok(mlab.run_on("n2", ["virsh", "-c", "qemu:///system", "define", "/dev/stdin"], timeout=60, input_text=xml))
    ok(on_node(mlab, "n2", "vm", "import", imported, "--nostart", timeout=180))
    assert_observer_ban(mlab, imported)
    ok(on_node(mlab, "n2", "vm", "remove", imported, "--yes", timeout=180))


BREAK_DISK = """
import sys
from vmconsole import config
from vmconsole.core.services import Services
from vmconsole.domain import naming
services = Services(config.load())
image = naming.system_image(sys.argv[1])
xml = services.rbd.metadata(image)["xml"]
services.rbd.metadata_set_many(image, {"xml": xml.replace(f"rbd/{image}", "rbd/nosuchimage")})
services.close()
"""


def test_an_enable_that_is_undone_leaves_no_constraint(mlab: Lab) -> None:
    vm = "mu" + uuid.uuid4().hex[:8]
    ok(create(mlab, vm, "--disable"))
    # the VM's domain reads a disk that does not exist: it cannot start, and the enable is undone
    ok(mlab.run_on("n1", [sys.executable, "-c", BREAK_DISK, vm], timeout=60))
    enabled = on_node(mlab, "n1", "vm", "enable", vm, "--json", timeout=300)
    assert enabled.returncode == 8, enabled.stdout + enabled.stderr
    assert json.loads(enabled.stdout)["changed"] is False
    assert constraints(mlab, vm) == {}  # its primitive went, and the observer's ban with it
    assert vm_where(mlab, "n1", vm)[0] == "Disabled"
    ok(on_node(mlab, "n1", "vm", "remove", vm, "--yes", timeout=180))


def test_rollback_and_update_keep_the_observer_ban(mlab: Lab, live_vm: str) -> None:
    vm = live_vm
    ok(on_node(mlab, "n1", "snapshot", "create", vm, "before"))
    ok(on_node(mlab, "n1", "snapshot", "rollback", vm, "before", "--yes", timeout=240))
    assert vm_where(mlab, "n1", vm)[0] == "Started"  # back as it was
    assert_observer_ban(mlab, vm)

    # an update that rewrites the primitive (a new stop timeout) keeps it too
    ok(on_node(mlab, "n1", "vm", "update", vm, "--stop-timeout", "45", "--yes", timeout=240))
    assert_observer_ban(mlab, vm)
    status = json.loads(ok(on_node(mlab, "n1", "vm", "status", vm, "--json")))
    assert status["status"] == "Started"


def test_move_and_migrate_change_only_the_vms_own_preference(mlab: Lab, live_vm: str) -> None:
    vm = live_vm
    # another tool's constraint on the VM (a location of score 0: it changes no placement)
    other_tool = f"othertool-{vm}"
    ok(
        mlab.run_on(
            "n1",
            ["cibadmin", "--create", "--scope", "constraints", "--xml-text",
             f'<rsc_location id="{other_tool}" rsc="{vm}" node="n1" score="0"/>'],
            timeout=30,
        )
    )  # fmt: skip
    before = constraints(mlab, vm)
    assert set(before) == {f"cli-ban-{vm}-on-{OBSERVER}", other_tool}

    where = vm_where(mlab, "n1", vm)[1]
    assert where in HYPERVISORS
    target = "n2" if where == "n1" else "n1"
    migrated = ok(on_node(mlab, where, "vm", "migrate", vm, target))
    assert f"{vm} moved from {where} to {target} (live)" in migrated
    assert vm_where(mlab, target, vm) == ("Started", target)
    assert constraints(mlab, vm) == before  # every ban and the other tool's constraint; no cli-prefer left

    moved = ok(on_node(mlab, target, "vm", "move", vm, where))
    assert f"{vm} moved from {target} to {where} (live)" in moved
    assert vm_where(mlab, where, vm) == ("Started", where)
    assert constraints(mlab, vm) == before

    # refusals say why, and change nothing
    error = refused(on_node(mlab, where, "vm", "migrate", vm, OBSERVER, "--json"), 4)
    assert (
        error["message"]
        == f"cannot live-migrate {vm} to {OBSERVER}: {OBSERVER} is the cluster's observer, it never runs VMs"
    )
    assert refused(on_node(mlab, where, "vm", "migrate", vm, where, "--json"), 4)["reason"] == "already_there"

    still = "mn" + uuid.uuid4().hex[:8]  # live migration not enabled: migrate refuses, move stops and starts
    ok(create(mlab, still))
    there = wait_started_on(mlab, "n1", still, set(HYPERVISORS), 60)[0]
    elsewhere = "n2" if there == "n1" else "n1"
    error = refused(on_node(mlab, "n1", "vm", "migrate", still, elsewhere, "--json"), 4)
    assert error["message"].startswith(f"cannot live-migrate {still}: live migration is disabled on it")
    assert f"vmconsole vm move {still} {elsewhere}" in error["hint"]
    moved = ok(on_node(mlab, "n1", "vm", "move", still, elsewhere))
    assert f"{still} moved from {there} to {elsewhere}" in moved and "(live)" not in moved
    assert set(constraints(mlab, still)) == {f"cli-ban-{still}-on-{OBSERVER}"}

    ok(on_node(mlab, "n1", "vm", "stop", still))
    error = refused(on_node(mlab, "n1", "vm", "migrate", still, there, "--json"), 4)
    assert error["message"] == f"cannot live-migrate {still}: it is Stopped; only a Started VM can be moved"
    ok(on_node(mlab, "n1", "vm", "remove", still, "--yes", timeout=180))
    ok(mlab.run_on("n1", ["cibadmin", "--delete", "--xml-text", f'<rsc_location id="{other_tool}"/>'], timeout=30))


def test_standby_drains_a_node_and_says_where_each_vm_went(mlab: Lab, live_vm: str) -> None:
    vm = live_vm
    second = "md" + uuid.uuid4().hex[:8]
    ok(create(mlab, second, "--enable-live-migration", "--preferred-host", "n1"))
    for name in (vm, second):
        if vm_where(mlab, "n1", name)[1] != "n1":
            ok(on_node(mlab, "n1", "vm", "migrate", name, "n1"))
        assert vm_where(mlab, "n1", name) == ("Started", "n1")

    drained = json.loads(ok(on_node(mlab, "n2", "node", "standby", "n1", "--yes", "--json", timeout=300)))
    assert drained["changed"] is True
    assert drained["data"]["moves"] == {vm: {"from": "n1", "to": "n2"}, second: {"from": "n1", "to": "n2"}}
    assert drained["message"] == f"node n1 in standby; {', '.join(f'{n}: n1 -> n2' for n in sorted((vm, second)))}"
    nodes = {n["name"]: n for n in json.loads(ok(on_node(mlab, "n2", "node", "list", "--json")))}
    assert nodes["n1"]["status"] == "standby" and nodes["n1"]["vms"] == []
    assert sorted(nodes["n2"]["vms"]) == sorted([vm, second])
    error = refused(on_node(mlab, "n2", "vm", "migrate", vm, "n1", "--json"), 4)
    assert error["message"] == f"cannot live-migrate {vm} to n1: node n1 is standby"
    assert error["hint"] == "`vmconsole node online n1` brings it back"

    back = json.loads(ok(on_node(mlab, "n2", "node", "online", "n1", "--json", timeout=300)))
    assert back["changed"] is True and back["message"].startswith("node n1 online")
    nodes = {n["name"]: n for n in json.loads(ok(on_node(mlab, "n2", "node", "list", "--json")))}
    assert nodes["n1"]["status"] == "online"
    # the VM that prefers n1 goes back to it; the bans are all still there
    wait_started_on(mlab, "n2", second, {"n1"}, 60)
    assert_observer_ban(mlab, vm)
    assert_observer_ban(mlab, second)
    ok(on_node(mlab, "n1", "vm", "remove", second, "--yes", timeout=180))


def test_a_crashed_node_s_vm_restarts_elsewhere_and_the_console_shows_it(mlab: Lab, live_vm: str) -> None:
    vm = live_vm
    victim = vm_where(mlab, "n1", vm)[1]
    assert victim in HYPERVISORS
    survivor = "n2" if victim == "n1" else "n1"
    go = mlab.paths.root / f"crash-{uuid.uuid4().hex[:6]}"
    # the console, inside the surviving node, set to read the cluster as often as it allows (0.5 s):
    # what is measured is how fast it shows what the cluster does, not the gap between two reads
    console = subprocess.Popen(
        mlab.node_argv(
            survivor,
            [sys.executable, "tests/lab/node_console.py", str(mlab.paths.config_file), vm, victim, survivor,
             str(go), "0.5"],
            cwd=str(ROOT),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**__import__("os").environ, **mlab.node_env()},
    )  # fmt: skip
    try:
        assert console.stdout is not None
        ready = console.stdout.readline()
        assert ready.strip() == "READY", ready + console.stderr.read() if console.stderr else ready
        crashed_at = time.time()
        mlab.crash(victim)
        go.write_text(repr(crashed_at))
        out, err = console.communicate(timeout=120)
    finally:
        if console.poll() is None:
            console.kill()
            console.wait(10)
    assert console.returncode == 0, err[-3000:]
    seen: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    _log(f"crash of {victim}: {seen}")
    assert "timed_out" not in seen, seen
    # the cluster pane shows the node down, the table the VM Started on the survivor
    assert seen["pane"].startswith(f"● {victim} ") and ("offline" in seen["pane"] or "unclean" in seen["pane"])
    assert seen["row"][1:4] == [vm, "Started", survivor]
    assert seen["node_down"] <= 10.0, seen
    # the VM's restart is the cluster's own time (token loss, fencing, then a start); the console adds
    # at most a second to it
    assert seen["vm_moved"] - seen["cluster_vm_moved"] <= 1.0, seen
    assert seen["vm_moved"] <= 10.0, seen
    assert vm_where(mlab, survivor, vm) == ("Started", survivor)
    assert_observer_ban(mlab, vm)
    error = refused(on_node(mlab, survivor, "vm", "migrate", vm, victim, "--json"), 4)
    assert error["message"] == f"cannot live-migrate {vm} to {victim}: node {victim} is offline"

    mlab.rejoin(victim)
    nodes = {n["name"]: n["status"] for n in json.loads(ok(on_node(mlab, survivor, "node", "list", "--json")))}
    assert nodes[victim] == "online"


def test_a_multi_disk_vm_running_on_the_other_node_is_paused_there_for_its_snapshot(mlab: Lab) -> None:
    # vmconsole on one hypervisor, the VM on the other: the guest is kept still through its own node's
    # libvirt (over SSH), every disk snapshotted at that one instant, and the VM runs on after
    vm = "md" + uuid.uuid4().hex[:8]
    ok(create(mlab, vm, "--data-disk", str(disk_image(mlab)), "--pinned-host", "n2"))
    wait_started_on(mlab, "n1", vm, {"n2"}, 90)
    try:
        document = json.loads(ok(on_node(mlab, "n1", "snapshot", "create", vm, "both", "--json", timeout=120)))
        instant = document["data"]["instant"]
        assert instant["method"] == "paused" and not instant["consistent"], instant
        assert 0 < instant["seconds"] < 5, instant
        assert f"{vm} paused on n2 for {instant['seconds']:.3f} s" in instant["detail"]
        listed = json.loads(ok(on_node(mlab, "n1", "snapshot", "list", vm, "--json")))
        assert [s["name"] for s in listed] == ["both"], listed
        states = ok(mlab.run_on("n2", ["virsh", "-c", "qemu:///system", "domstate", vm], timeout=30))
        assert states.strip() == "running"
        assert vm_where(mlab, "n1", vm) == ("Started", "n2")
    finally:
        ok(on_node(mlab, "n1", "vm", "remove", vm, "--yes", timeout=240))
