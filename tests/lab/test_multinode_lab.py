"""The multi-node lab is part of the product: three nodes in their own namespaces (the last one an
observer), a VM made from inside a node with vmconsole, a node crash that the cluster fences and
recovers from, the node's return, a live migration back, and nothing left behind.

It runs beside the single-node lab (other sessions may be using it): it never takes the machine's
lab lock, only its own, which keeps two multi-node labs from ever running at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.test_lab_lifecycle import processes_mentioning
from vmconsole.lab import network
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml, disk_image

pytestmark = [pytest.mark.lab_lifecycle, pytest.mark.timeout(420)]

MULTINODE_LOCK = Path("/tmp/vmconsole-mlab.lock")  # one multi-node lab per machine


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def lab_cli(lab: Lab, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmconsole", "lab", "--dir", str(lab.paths.root), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
        check=False,
    )


def on_node(lab: Lab, node: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``vmconsole ARGS`` run inside ``node`` (where it reaches that node's pacemaker and libvirt)."""
    config = str(lab.paths.config_file)
    return lab.run_on(node, [sys.executable, "-m", "vmconsole", "--config", config, *args], timeout=timeout)


def vm_where(lab: Lab, node: str, vm: str, *, strict: bool = True) -> tuple[str, str | None]:
    """(status, node) of ``vm`` as vmconsole sees it from ``node``; while the cluster reshapes itself
    (``strict=False``) a refused read is only "not yet"."""
    result = on_node(lab, node, "vm", "status", vm, "--json", timeout=60)
    if not strict and result.returncode != 0:
        return f"unreadable (exit {result.returncode})", None
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return str(data["status"]), data.get("node")


def wait_started_on(lab: Lab, asking: str, vm: str, nodes: set[str], timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    seen: tuple[str, str | None] = ("", None)
    while time.monotonic() - started < timeout:
        seen = vm_where(lab, asking, vm, strict=False)
        if seen[0] == "Started" and seen[1] in nodes:
            return str(seen[1]), time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{vm} not Started on {sorted(nodes)} within {timeout} s (last seen: {seen})")


def host_snapshot() -> dict[str, object]:
    """What a node could have written on the host if its namespaces leaked."""

    def listing(path: str) -> list[str] | None:
        return sorted(os.listdir(path)) if os.path.isdir(path) else None

    kvm = os.stat("/dev/kvm") if os.path.exists("/dev/kvm") else None
    return {
        "kvm": (kvm.st_mode, kvm.st_uid, kvm.st_gid) if kvm else None,
        "etc": listing("/etc"),
        "etc_ceph": listing("/etc/ceph"),
        "etc_pacemaker": listing("/etc/pacemaker"),
        "etc_ssh": listing("/etc/ssh"),
        "etc_corosync": listing("/etc/corosync"),
        "root_ssh": listing("/root/.ssh"),
        "root_crm": (listing("/root/.config/crm"), listing("/root/.cache/crm")),
        "var_lib_pacemaker": sorted(str(p) for p in Path("/var/lib/pacemaker").rglob("*")),
        "var_lib_corosync": sorted(str(p) for p in Path("/var/lib/corosync").rglob("*")),
        "ocf": listing("/usr/lib/ocf/resource.d"),
        "fence_agents": sorted(n for n in os.listdir("/usr/sbin") if n.startswith("fence_")),
        "run_netns": listing("/run/netns"),
    }


def node_pids(lab: Lab) -> list[int]:
    state = lab.state()
    assert state is not None
    return [pid for node in state.nodes for pid in [node.holder, *node.pids.values()] if pid]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def assert_nothing_left(lab_dir: Path, before: dict[str, object], pids: list[int], vm: str | None = None) -> None:
    assert not lab_dir.exists(), f"{lab_dir} still exists"
    assert processes_mentioning(str(lab_dir)) == []
    assert [p for p in pids if alive(p)] == [], "a node's daemon outlived the lab"
    for mounts in Path("/proc").glob("[0-9]*/mounts"):
        try:
            text = mounts.read_text()
        except OSError:
            continue
        assert str(lab_dir) not in text, f"{mounts} still mounts the lab"
    assert not Path(network.netns_path("hub")).exists()
    assert not Path(f"/sys/class/net/{network.HOST_LINK}").exists()
    assert host_snapshot() == before
    if vm:  # the VM's QEMU, or its traces would be in the host's libvirt and pacemaker directories, or its cgroups
        assert processes_mentioning(f"guest={vm},") == []
        assert not Path(f"/etc/pacemaker/{vm}.xml").exists()
        assert not Path(f"/var/log/libvirt/qemu/{vm}.log").exists()
        assert not list(Path("/sys/fs/cgroup").glob(f"*/machine/*-{vm}.libvirt-qemu"))


@pytest.fixture
def multinode_dir() -> Iterator[Path]:
    MULTINODE_LOCK.touch(exist_ok=True)
    with MULTINODE_LOCK.open("r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for {MULTINODE_LOCK}: another session runs a multi-node lab")
            fcntl.flock(handle, fcntl.LOCK_EX)
        path = Path(f"/tmp/vmconsole-mlab-{uuid.uuid4().hex[:8]}")
        try:
            yield path
        finally:
            if path.exists():  # a failed assertion must not leave a running lab behind
                Lab(path).down()


def test_three_nodes_crash_fence_rejoin_migrate(multinode_dir: Path) -> None:
    before = host_snapshot()
    lab = Lab(multinode_dir)
    up = lab_cli(lab, "up", "--nodes", "3", "--observer")
    assert up.returncode == 0, up.stderr
    _log(up.stdout.strip())

    status = lab_cli(lab, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["up"] is True
    roles = {n["name"]: n["role"] for n in report["nodes"]}
    assert roles == {"n1": "hypervisor", "n2": "hypervisor", "n3": "observer"}
    assert all(n["online"] and n["up"] for n in report["nodes"]), report["nodes"]
    assert set(report["nodes"][2]["daemons"]) == {"corosync", "pacemakerd"}  # no libvirt on the observer
    assert {c["name"] for c in report["components"]} >= {"ceph-mon", "ceph-mgr", "ceph-osd"}

    # /etc/cluster.conf as SEAPATH writes it, inside the nodes only
    conf = lab_cli(lab, "exec", "n1", "--", "cat", "/etc/cluster.conf")
    assert conf.returncode == 0, conf.stderr
    assert conf.stdout.splitlines() == ["[machines]", "hypervisor1 = n1", "hypervisor2 = n2", "observer = n3"]
    assert lab_cli(lab, "exec", "n2", "--", "hostname").stdout.strip() == "n2"
    assert not Path("/etc/cluster.conf").exists()
    assert lab.run_on("n3", ["virsh", "-c", "qemu:///system", "version"], timeout=30).returncode != 0

    # a VM made from inside n1 with vmconsole, banned from the observer as vm_manager does
    vm = "mt" + uuid.uuid4().hex[:8]
    state = lab.state()
    assert state is not None
    xml = lab.paths.guests / f"{vm}.xml"
    xml.write_text(base_xml(lab, vm, state.domain_type))
    created = on_node(
        lab,
        "n1",
        "vm",
        "create",
        vm,
        "--image",
        str(disk_image(lab)),
        "--xml",
        str(xml),
        "--enable-live-migration",
        "--pacemaker-params",
        "force_stop=true",
        "--nostart",
    )
    assert created.returncode == 0, created.stdout + created.stderr
    constraints = lab.run_on("n1", ["cibadmin", "--query", "--scope", "constraints"], timeout=60)
    assert f'id="cli-ban-{vm}-on-n3"' in constraints.stdout, constraints.stdout + constraints.stderr
    started = on_node(lab, "n1", "vm", "start", vm)
    assert started.returncode == 0, started.stdout + started.stderr
    first, _ = wait_started_on(lab, "n1", vm, {"n1", "n2"}, 60)
    other = "n2" if first == "n1" else "n1"
    _log(f"{vm} Started on {first}")

    # crash its node: the others fence it and restart the VM on the other hypervisor
    crash = lab_cli(lab, "crash", first)
    assert crash.returncode == 0, crash.stderr
    crashed_at = time.monotonic()
    where, _ = wait_started_on(lab, other, vm, {other}, 60)
    _log(f"{vm} Started on {where} {time.monotonic() - crashed_at:.1f} s after {first} crashed")
    history = lab.run_on(other, ["stonith_admin", "--history", first], timeout=30)
    assert f"reboot of {first} successful" in history.stdout, history.stdout + history.stderr
    report = json.loads(lab_cli(lab, "status", "--json").stdout)
    assert report["up"] is False
    assert {n["name"]: n["up"] for n in report["nodes"]}[first] is False

    # the node comes back, and the VM goes live to it
    rejoin = lab_cli(lab, "rejoin", first)
    assert rejoin.returncode == 0, rejoin.stderr
    report = json.loads(lab_cli(lab, "status", "--json").stdout)
    assert report["up"] is True, report
    migrate = on_node(lab, other, "vm", "migrate", vm, first)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "(live)" in migrate.stdout, migrate.stdout
    assert vm_where(lab, first, vm) == ("Started", first)

    pids = node_pids(lab)
    down = lab_cli(lab, "down")
    assert down.returncode == 0, down.stderr
    assert_nothing_left(multinode_dir, before, pids, vm)
    assert lab_cli(lab, "status", "--json").returncode == 1


def test_down_cleans_up_after_a_broken_multinode_up(multinode_dir: Path) -> None:
    before = host_snapshot()
    lab = Lab(multinode_dir)
    up = lab_cli(lab, "up", "--nodes", "2", env={"VMCONSOLE_LAB_FAIL_AFTER": "nodes"})
    assert up.returncode != 0
    assert "failing on purpose" in up.stderr
    pids = node_pids(lab)
    assert [p for p in pids if alive(p)] != []  # it really left nodes running
    down = lab_cli(lab, "down")
    assert down.returncode == 0, down.stderr
    assert_nothing_left(multinode_dir, before, pids)
