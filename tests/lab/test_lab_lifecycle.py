"""The lab is part of the product: it must come up healthy and leave nothing behind when it goes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmconsole.lab.lab import WATCHED, Lab
from vmconsole.lab.paths import default_dir

pytestmark = [pytest.mark.lab_lifecycle, pytest.mark.timeout(300)]


def vmconsole(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmconsole", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
        check=False,
    )


def host_snapshot() -> dict[str, object]:
    """What the lab may touch on the host, as it is now."""
    return {
        "kvm": os.stat("/dev/kvm").st_mode if os.path.exists("/dev/kvm") else None,
        "kvm_owner": (os.stat("/dev/kvm").st_uid, os.stat("/dev/kvm").st_gid) if os.path.exists("/dev/kvm") else None,
        "watched": {d: sorted(os.listdir(d)) for d in WATCHED if os.path.isdir(d)},
        "var_lib_pacemaker": sorted(str(p) for p in Path("/var/lib/pacemaker").rglob("*")),
        "var_lib_corosync": sorted(str(p) for p in Path("/var/lib/corosync").rglob("*")),
        "ocf": sorted(os.listdir("/usr/lib/ocf/resource.d")),
    }


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue  # already dead, waiting for PID 1 to reap it
        if text in cmd:
            found.append(f"{entry.name}: {cmd}")
    return found


def assert_nothing_left(lab_dir: Path, before: dict[str, object]) -> None:
    assert not lab_dir.exists(), f"{lab_dir} still exists"
    assert processes_mentioning(str(lab_dir)) == []
    # no mount namespace anywhere still holds the lab's binds
    for mounts in Path("/proc").glob("[0-9]*/mounts"):
        try:
            text = mounts.read_text()
        except OSError:
            continue
        assert str(lab_dir) not in text, f"{mounts} still mounts the lab"
    assert host_snapshot() == before


@pytest.fixture
def lab_dir(lab_lock: None) -> Iterator[Path]:
    shared = Lab(default_dir())
    if shared.state() is not None and not shared.is_up():
        shared.down()  # the remains of a lab whose processes were killed: clean them first
    if shared.state() is not None:
        if os.environ.get("VMCONSOLE_REUSE_LAB") == "1":
            pytest.skip(f"VMCONSOLE_REUSE_LAB=1 keeps the lab of {shared.paths.root} up: no lifecycle test beside it")
        pytest.fail(
            f"a lab is already running in {shared.paths.root}: lifecycle tests need the machine to themselves"
            " (take it down, or set VMCONSOLE_REUSE_LAB=1 to run the other tests on it)",
            pytrace=False,
        )
    path = Path(f"/tmp/vmconsole-lifecycle-{uuid.uuid4().hex[:8]}")
    yield path
    if path.exists():  # a failed assertion must not leave a running lab behind
        Lab(path).down()


def test_up_status_down_leaves_nothing(lab_dir: Path) -> None:
    before = host_snapshot()
    up = vmconsole("lab", "--dir", str(lab_dir), "up")
    assert up.returncode == 0, up.stderr
    assert "lab up in" in up.stdout  # how long it took is measured by bench/, not asserted here

    status = vmconsole("lab", "--dir", str(lab_dir), "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["up"] is True
    components = {c["name"]: c for c in report["components"]}
    assert set(components) == {"ceph-mon", "ceph-mgr", "ceph-osd", "virtlogd", "libvirtd", "corosync", "pacemaker"}
    assert all(c["up"] and c["pid"] for c in components.values()), components
    assert components["ceph-mon"]["health"] == "HEALTH_OK"
    assert (lab_dir / "vmconsole.toml").exists()

    again = vmconsole("lab", "--dir", str(lab_dir), "up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    still = json.loads(vmconsole("lab", "--dir", str(lab_dir), "status", "--json").stdout)
    assert [c["pid"] for c in still["components"]] == [c["pid"] for c in report["components"]]

    down = vmconsole("lab", "--dir", str(lab_dir), "down")
    assert down.returncode == 0, down.stderr
    assert "lab down in" in down.stdout
    assert_nothing_left(lab_dir, before)
    gone = vmconsole("lab", "--dir", str(lab_dir), "status", "--json")
    assert gone.returncode == 1
    assert json.loads(gone.stdout)["up"] is False


@pytest.mark.parametrize("failing_step", ["libvirt", "pacemaker"])
def test_down_cleans_up_after_a_broken_up(lab_dir: Path, failing_step: str) -> None:
    before = host_snapshot()
    up = vmconsole("lab", "--dir", str(lab_dir), "up", env={"VMCONSOLE_LAB_FAIL_AFTER": failing_step})
    assert up.returncode != 0
    assert "failing on purpose" in up.stderr
    assert "lab down" in up.stderr  # the message says how to clean up
    assert processes_mentioning(str(lab_dir)) != []  # it really left daemons running
    down = vmconsole("lab", "--dir", str(lab_dir), "down")
    assert down.returncode == 0, down.stderr
    assert_nothing_left(lab_dir, before)
