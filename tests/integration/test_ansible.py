"""The cluster_vm Ansible module and the install role, run by ansible-playbook against the lab.

A few playbook runs carry everything (each run costs a couple of seconds of Ansible start-up):
every command in check mode, for real and again; the example playbooks as written (only their
variables given); a purge by date repeated; the update skeleton rolling back; the install role
into a throwaway virtualenv whose module copy then drives the lab. ansible-doc and ansible-lint run
without the lab.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.helpers import cli_json
from vmconsole.config import Config
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml, disk_image

BIN = Path(sys.executable).parent
COLLECTION = ROOT / "ansible"
EXAMPLES = COLLECTION / "examples"
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def ansible_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """ansible-playbook's environment: the collection found as vmconsole.seapath, no user config."""
    home = tmp_path_factory.mktemp("ansible")
    collections = home / "collections" / "ansible_collections" / "vmconsole"
    collections.mkdir(parents=True)
    (collections / "seapath").symlink_to(COLLECTION)
    (home / "ansible.cfg").write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "VMCONSOLE_"))}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(home / "collections"),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_HOME=str(home),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_CONFIG=str(home / "ansible.cfg"),
        PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
    )
    return env


def inventory(path: Path, python: str) -> Path:
    path.write_text(f"[hypervisors]\nlocalhost ansible_connection=local ansible_python_interpreter={python}\n")
    return path


def playbook(
    env: dict[str, str],
    inv: Path,
    *playbooks: Path,
    extra: dict[str, object] | None = None,
    label: str,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "ansible-playbook"), "-i", str(inv), *map(str, playbooks)]
    if extra:
        argv += ["-e", json.dumps(extra)]
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    TIMES[label] = time.monotonic() - started
    print(f"ansible-playbook {label}: {TIMES[label]:.1f} s", file=sys.stderr)
    if check:
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return result


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The PLAY RECAP counters of the last play (ok, changed, failed...)."""
    lines = [line for line in result.stdout.splitlines() if line.startswith("localhost ") and "ok=" in line]
    assert lines, result.stdout
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}


@pytest.fixture
def lab_env(ansible_env: dict[str, str], lab: Lab, lab_config: Config) -> dict[str, str]:
    assert lab_config.source is not None
    return {**ansible_env, "VMCONSOLE_CONFIG": str(lab_config.source)}


@pytest.fixture
def vm_xml(lab: Lab, tmp_path: Path) -> Path:
    state = lab.state()
    assert state is not None
    path = tmp_path / "vm.xml"
    path.write_text(base_xml(lab, "template", state.domain_type))
    return path


def _names(vm_name: str, cleanup_vms: list[str]) -> tuple[str, str]:
    a, b = vm_name, vm_name + "b"
    cleanup_vms += [a, b]
    return a, b


@pytest.mark.lab
def test_every_command_in_check_mode_for_real_and_again(
    lab_env: dict[str, str],
    lab: Lab,
    lab_config: Config,
    vm_xml: Path,
    tmp_path: Path,
    vm_name: str,
    cleanup_vms: list[str],
) -> None:
    a, b = _names(vm_name, cleanup_vms)
    inv = inventory(tmp_path / "inventory", sys.executable)
    started = datetime.now(UTC)
    extra = {"vm_a": a, "vm_b": b, "image": str(disk_image(lab)), "xml": str(vm_xml)}
    result = playbook(lab_env, inv, ROOT / "tests" / "ansible" / "commands.yaml", extra=extra, label="commands")
    assert recap(result)["failed"] == 0
    done = {r["operation"] for r in history_since(lab_config, started, {a, b}) if r.get("vm") == a}
    assert {"create", "start", "stop", "snapshot-rollback", "colocate", "remote-add", "remove"} <= done


def history_since(config: Config, started: datetime, vms: set[str]) -> list[dict[str, Any]]:
    """The history records of ``vms`` written since ``started``, read minute by minute (one omap read returns
    at most 1024 entries: `vmconsole history` misses the newer records of a busy month, reported)."""
    from vmconsole.core.services import Services
    from vmconsole.domain import naming

    svc = Services(config)
    records = []
    try:
        minute = started.replace(second=0, microsecond=0)
        while minute <= datetime.now(UTC):
            oid = f"{naming.HISTORY_PREFIX}{minute:%Y-%m}"
            for raw in svc.rbd.omap_get(oid, prefix=f"{minute:%Y-%m-%dT%H:%M}").values():
                record = json.loads(raw)
                if record.get("vm") in vms:
                    records.append(record)
            minute += timedelta(minutes=1)
    finally:
        svc.close()
    for record in records:
        assert record["args"].get("via") == "ansible cluster_vm", record
        assert record["who"].endswith("@" + socket.gethostname()), record
    return records


def _config(env: dict[str, str]) -> Config:
    from vmconsole import config as configuration

    return configuration.load_file(Path(env["VMCONSOLE_CONFIG"]))


@pytest.mark.lab
def test_the_example_playbooks_as_written(
    lab_env: dict[str, str], lab: Lab, vm_xml: Path, tmp_path: Path, vm_name: str, cleanup_vms: list[str]
) -> None:
    a, b = _names(vm_name, cleanup_vms)
    inv = inventory(tmp_path / "inventory", sys.executable)
    image = disk_image(lab)
    playbook(
        lab_env,
        inv,
        EXAMPLES / "create.yaml",
        extra={"vm_name": a, "vm_xml": str(vm_xml), "disk_path": str(image)},
        label="examples: create",
    )
    assert cli_json(_config(lab_env), "vm", "status", a)["status"] == "Disabled"
    # the clone runs (created Started), is snapshotted, purged, snapshotted again, stopped, rolled back,
    # started, and its snapshots older than now are purged; the scheduled purge then finds nothing more
    # (a lab guest ignores ACPI: each stop of a running one waits for its 30 s stop timeout)
    flow = [
        "clone.yaml",
        "create_snapshots.yaml",
        "purge.yaml",
        "create_snapshots.yaml",
        "stop.yaml",
        "rollback.yaml",
        "start.yaml",
        "purge_by_date.yaml",
    ]
    extra = {"src_vm": a, "vm_name": b, "keep_days": 0}
    playbook(lab_env, inv, *(EXAMPLES / f for f in flow), extra=extra, label="examples: clone to purge by date")
    left = [s["name"] for s in cli_json(_config(lab_env), "snapshot", "list", b, "--fast")]
    assert len(left) == 1 and left[0].startswith("safety-"), left  # the safety net of the last rollback stays
    again = playbook(lab_env, inv, EXAMPLES / "purge_by_date.yaml", extra=extra, label="examples: purge by date again")
    assert recap(again)["changed"] == 0, again.stdout
    assert [s["name"] for s in cli_json(_config(lab_env), "snapshot", "list", b, "--fast")] == left

    # the update skeleton: the update's test fails, the VM is rolled back to the snapshot taken first
    failed = playbook(
        lab_env,
        inv,
        EXAMPLES / "update_skeleton.yaml",
        extra={"vm_name": b, "guest_host": "localhost", "update_command": "true", "test_command": "false"},
        label="examples: update skeleton",
        check=False,
    )
    assert failed.returncode == 2, failed.stdout[-4000:]
    assert "it was rolled back to update-" in failed.stdout
    counts = recap(failed)
    assert (counts["rescued"], counts["failed"]) == (1, 1)
    status = cli_json(_config(lab_env), "vm", "status", b)
    assert status["status"] == "Started"
    snaps = {s["name"] for s in cli_json(_config(lab_env), "snapshot", "list", b, "--fast")}
    assert any(s.startswith("update-") for s in snaps)

    playbook(
        lab_env,
        inv,
        EXAMPLES / "disable.yaml",
        EXAMPLES / "enable.yaml",
        extra={"vm_name": b, "vm_nostart": True},
        label="examples: disable, enable",
    )
    playbook(lab_env, inv, EXAMPLES / "remove.yaml", extra={"vm_names": [b, a]}, label="examples: remove")
    assert not {a, b} & {vm["name"] for vm in cli_json(_config(lab_env), "vm", "list")["vms"]}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    TIMES["wheel"] = time.monotonic() - started
    (found,) = out.glob("vmconsole-*.whl")
    return found


def test_the_wheel_holds_vmconsole_and_its_entry_point(wheel: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "vmconsole/cli/cluster_vm.py" in names
    assert "vmconsole/lab/ra/VirtualDomain" in names  # the lab's agent ships, the lab's Debian packages never
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vmconsole = vmconsole.cli.main:run" in zipfile.ZipFile(wheel).read(entry).decode()
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not [r for r in requires if "ansible" in r or "pytest" in r], requires


@pytest.mark.lab
def test_the_install_role_puts_vmconsole_and_the_module_on_a_hypervisor(
    ansible_env: dict[str, str], lab_config: Config, wheel: Path, tmp_path: Path
) -> None:
    venv, modules = tmp_path / "venv", tmp_path / "modules"
    inv = inventory(tmp_path / "inventory", "/usr/bin/python3")
    extra = {
        "vmconsole_hosts": "hypervisors",
        "vmconsole_become": False,
        "vmconsole_wheel": str(wheel),
        "vmconsole_venv": str(venv),
        "vmconsole_bin_link": "",
        "vmconsole_module_dir": str(modules),
        "vmconsole_install_packages": False,
    }
    install = COLLECTION / "playbooks" / "install.yaml"
    playbook(ansible_env, inv, install, extra=extra, label="install role")
    again = playbook(ansible_env, inv, install, extra=extra, label="install role again")
    assert recap(again)["changed"] == 0, again.stdout
    assert (modules / "cluster_vm.py").read_text() == (COLLECTION / "plugins/modules/cluster_vm.py").read_text()

    assert lab_config.source is not None
    listed = subprocess.run(
        [str(venv / "bin" / "vmconsole"), "--config", str(lab_config.source), "vm", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode in (0, 10), listed.stderr
    assert "vms" in listed.stdout

    # the module copy on the hypervisor, run by Debian's Python: it finds vmconsole in the virtualenv
    env = {
        **ansible_env,
        "ANSIBLE_LIBRARY": str(modules),
        "VMCONSOLE_VENV": str(venv),
        "VMCONSOLE_CONFIG": str(lab_config.source),
    }
    started = time.monotonic()
    adhoc = subprocess.run(
        [str(BIN / "ansible"), "-i", str(inv), "hypervisors", "-m", "cluster_vm", "-a", "command=status name=nosuchvm"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    TIMES["module from the installed venv"] = time.monotonic() - started
    assert adhoc.returncode == 0, adhoc.stdout + adhoc.stderr
    assert '"status": "Undefined"' in adhoc.stdout


def test_ansible_doc_renders_without_warnings(ansible_env: dict[str, str]) -> None:
    for argv in (
        ["ansible-doc", "vmconsole.seapath.cluster_vm"],
        ["ansible-doc", "-M", str(COLLECTION / "plugins" / "modules"), "cluster_vm"],
    ):
        result = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]], env=ansible_env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == "", result.stderr
        assert "purge_date" in result.stdout and "EXAMPLES" in result.stdout


def test_ansible_lint_passes_on_the_examples_and_the_role(ansible_env: dict[str, str]) -> None:
    if shutil.which("ansible-lint", path=str(BIN)) is None:
        pytest.fail("ansible-lint is a dev dependency: scripts/bootstrap installs it")
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "ansible-lint"), "--offline", "--nocolor", "examples", "playbooks", "roles"],
        cwd=COLLECTION,
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    TIMES["ansible-lint"] = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stderr + result.stdout


@pytest.fixture(scope="module", autouse=True)
def report_times() -> Iterator[None]:
    yield
    if TIMES:
        print("\n" + "\n".join(f"  {k}: {v:.1f} s" for k, v in TIMES.items()), file=sys.stderr)


def test_the_install_role_documents_its_arguments(ansible_env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "role", "vmconsole.seapath.vmconsole"],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    for option in ("vmconsole_wheel", "vmconsole_venv", "vmconsole_packages", "vmconsole_wheelhouse"):
        assert option in result.stdout, result.stdout
