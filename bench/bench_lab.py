"""How long the lab takes: ``lab up`` and ``lab down`` with 1 and 3 nodes, and on the three-node lab
(two hypervisors and an observer) a node crash until its VM runs on the other hypervisor (fencing
included), the node's rejoin and a live migration.

Each figure is one JSON line on stdout, measured through the CLI as a user runs it; the whole set is
kept in ``bench/results/bench_lab.json``. The labs live in their own directories. The single-node
figures need the machine's single-node lab to be down (two of them cannot share loopback's Ceph
ports): when it is up, that layout is skipped and a line says so.

    .venv/bin/python bench/bench_lab.py [--runs N] [--layouts 1,3]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vmconsole.lab.lab import Lab
from vmconsole.lab.paths import default_dir
from vmconsole.lab.seed import base_xml, disk_image

MACHINE_LAB_LOCK = Path("/tmp/vmconsole-lab.lock")  # the single-node lab's (tests/conftest.py)
MULTINODE_LOCK = Path("/tmp/vmconsole-mlab.lock")  # the multi-node lab's (tests/lab/test_multinode_lab.py)
RESULTS: list[dict[str, Any]] = []


def emit(**line: Any) -> None:
    record = {"benchmark": "lab", **line}
    RESULTS.append(record)
    print(json.dumps(record), flush=True)


def cli(lab_dir: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "vmconsole", "lab", "--dir", str(lab_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"lab {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
    return seconds, result


@contextmanager
def locked(path: Path) -> Iterator[bool]:
    """Hold ``path``'s lock if nobody else does; yields False (and holds nothing) otherwise."""
    path.touch(exist_ok=True)
    with path.open("r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def vm_status(lab: Lab, node: str, vm: str) -> tuple[str, str | None]:
    command = [sys.executable, "-m", "vmconsole", "--config", str(lab.paths.config_file), "vm", "status", vm, "--json"]
    result = lab.run_on(node, command, timeout=60)
    if result.returncode != 0:
        return "", None
    data = json.loads(result.stdout)
    return str(data["status"]), data.get("node")


def wait_started(lab: Lab, ask: str, vm: str, nodes: set[str], timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, node = vm_status(lab, ask, vm)
        if status == "Started" and node in nodes:
            return node
        time.sleep(0.1)
    raise RuntimeError(f"{vm} not Started on {sorted(nodes)} within {timeout} s")


def in_node(lab: Lab, node: str, *args: str) -> None:
    result = lab.run_on(node, list(args), timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:5])} on {node}: {result.stdout[-500:]} {result.stderr[-1500:]}")


def failover(lab: Lab, run: int) -> None:
    """A VM on a hypervisor; its node crashes; how long until it runs on the other one."""
    state = lab.state()
    assert state is not None
    vm = "bench" + uuid.uuid4().hex[:6]
    xml = lab.paths.guests / f"{vm}.xml"
    xml.write_text(base_xml(lab, vm, state.domain_type))
    vmconsole = [sys.executable, "-m", "vmconsole", "--config", str(lab.paths.config_file)]
    in_node(lab, "n1", *vmconsole, "vm", "create", vm, "--image", str(disk_image(lab)), "--xml", str(xml),
            "--enable-live-migration", "--pacemaker-params", "force_stop=true", "--nostart")  # fmt: skip
    in_node(lab, "n1", "crm_resource", "--ban", "--resource", vm, "--node", "n3")  # the observer
    in_node(lab, "n1", *vmconsole, "vm", "start", vm)
    first = wait_started(lab, "n1", vm, {"n1", "n2"})
    other = "n2" if first == "n1" else "n1"
    crashed = time.perf_counter()
    cli(lab.paths.root, "crash", first)
    wait_started(lab, other, vm, {other})
    emit(nodes=3, run=run, measure="failover_s", seconds=round(time.perf_counter() - crashed, 2))
    seconds, _ = cli(lab.paths.root, "rejoin", first)
    emit(nodes=3, run=run, measure="rejoin_s", seconds=round(seconds, 2))
    started = time.perf_counter()
    in_node(lab, other, *vmconsole, "vm", "migrate", vm, first)
    emit(nodes=3, run=run, measure="live_migration_s", seconds=round(time.perf_counter() - started, 2))


def layout(nodes: int, runs: int) -> None:
    for run in range(1, runs + 1):
        lab_dir = Path(f"/tmp/vmconsole-bench-lab-{uuid.uuid4().hex[:8]}")
        try:
            args = ["up"] if nodes == 1 else ["up", "--nodes", str(nodes), "--observer"]
            seconds, _ = cli(lab_dir, *args)
            emit(nodes=nodes, run=run, measure="up_s", seconds=round(seconds, 2))
            if nodes == 3:
                failover(Lab(lab_dir), run)
            seconds, _ = cli(lab_dir, "down")
            emit(nodes=nodes, run=run, measure="down_s", seconds=round(seconds, 2))
        finally:
            if lab_dir.exists():
                Lab(lab_dir).down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--layouts", default="1,3", help="node counts, comma-separated (1, 2 or 3)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_lab: run as root (the lab needs it)", file=sys.stderr)
        return 1
    for nodes in (int(n) for n in args.layouts.split(",")):
        if nodes == 1:
            with locked(MACHINE_LAB_LOCK) as mine:
                if not mine or Lab(default_dir()).state() is not None:
                    emit(nodes=1, skipped="the machine's single-node lab is in use (its lock is held, or it is up)")
                    continue
                layout(1, args.runs)
        else:
            with locked(MULTINODE_LOCK) as mine:
                if not mine:
                    emit(nodes=nodes, skipped=f"another session holds {MULTINODE_LOCK}")
                    continue
                layout(nodes, args.runs)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_lab.json").write_text(json.dumps(RESULTS, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
