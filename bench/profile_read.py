"""A first read of the whole cluster, timed call by call on its thread: where a cold read's time goes.

Each run is a new process, as ``vm list`` or a console start is. It prints, per run, the imports, every
call a read makes (the RADOS connection, the Ceph read and its batches, ``cibadmin``, ``crm_mon``, the
parses, the VMs built), each with its thread and its start and end from the process start; the
process's own CPU and its children's (the Pacemaker tools); and the CPU the CIB daemon and the OSD spent
meanwhile (from ``/proc``). ``--json`` prints one JSON document per run instead.

    .venv/bin/python bench/profile_read.py CONFIG [--runs N] [--json]

With the scale fixture: ``bench/fixture.py seed 500`` and ``primitives 500``, then CONFIG
``/tmp/vmconsole-bench/vmconsole-500.toml``. What the timelines showed so far: ``bench/PROFILES.md``
(3b, 3c).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vmconsole.lab.lab import Lab, daemon_pids

# Runs in the measured process: wraps the calls of a read, then reads once.
PROBE = r"""
import json, resource, sys, threading, time
T0 = time.perf_counter()
from pathlib import Path
from vmconsole import config
import vmconsole.core.state as state
from vmconsole.backends import cib, crm_mon, pacemaker, rbd
IMPORTS = time.perf_counter() - T0
calls = []

def wrap(owner, name, label):
    original = getattr(owner, name)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            calls.append((label, started - T0, time.perf_counter() - T0, threading.current_thread().name))
    setattr(owner, name, timed)

for owner, name, label in (
    (rbd.RbdSession, "__init__", "RADOS connection"),
    (state.CephReader, "read", "Ceph read (every header)"),
    (pacemaker.PacemakerClient, "cib_xml", "cibadmin --query"),
    (pacemaker.PacemakerClient, "cib_header", "CIB version"),
    (pacemaker.PacemakerClient, "cib_status_xml", "cibadmin --query --scope status"),
    (pacemaker.PacemakerClient, "crm_mon_xml", "crm_mon"),
    (cib, "parse_cib", "CIB parsed"),
    (cib, "parse_cib_configuration", "CIB configuration parsed"),
    (crm_mon, "parse_crm_mon", "crm_mon parsed"),
):
    wrap(owner, name, label)
for name, label in (("ceph_side", "Ceph side of a VM"), ("build_vm", "VM built")):
    wrap(state, name, label)

from vmconsole.cli.main import settle
settle()  # as the vmconsole command does once its modules are imported
reader = state.StateReader(config.load_file(Path(sys.argv[1])))
own0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
started = time.perf_counter()
cluster = reader.read()
ended = time.perf_counter()
own1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
reader.close()
print(json.dumps({
    "imports": IMPORTS,
    "read_start": started - T0,
    "read": ended - started,
    "vms": len(cluster.vms),
    "problems": list(cluster.problems),
    "cpu": own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime,
    "children_cpu": kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime,
    "calls": calls,
}))
"""

REPEATED = {"Ceph side of a VM", "VM built"}  # summed, not listed one by one
DAEMONS = {"pacemaker-based": "CIB daemon", "ceph-osd": "OSD"}


def lab_daemons() -> dict[str, int]:
    """The lab's CIB daemon and OSD, by what they are to a read (the lab's own record of its daemons)."""
    return {DAEMONS[name]: pid for name, pid in daemon_pids(Lab()).items() if name in DAEMONS}


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(config: Path) -> dict[str, Any]:
    daemons = lab_daemons()
    before = {name: cpu_seconds(pid) for name, pid in daemons.items()}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)], capture_output=True, text=True, timeout=300, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"the read failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    data["wall"] = wall
    data["daemons_cpu"] = {name: cpu_seconds(pid) - before[name] for name, pid in daemons.items()}
    return data


def show(run: int, data: dict[str, Any]) -> None:
    print(
        f"run {run}: {data['vms']} VMs, {data['wall']:.3f} s from launch to exit; imports {data['imports']:.3f} s, "
        f"the read {data['read']:.3f} s from {data['read_start']:.3f} s"
    )
    daemons = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in data["daemons_cpu"].items())
    print(f"  CPU: this process {data['cpu']:.2f} s, its tools {data['children_cpu']:.2f} s, {daemons}")
    for label in sorted(REPEATED):
        calls = [c for c in data["calls"] if c[0] == label]
        if calls:
            total = sum(end - start for _, start, end, _ in calls)
            first, last = min(c[1] for c in calls), max(c[2] for c in calls)
            print(f"  {label:30} x{len(calls)}  {first:.3f} → {last:.3f}  ({total:.3f} s in all)")
    for label, start, end, thread in sorted((c for c in data["calls"] if c[0] not in REPEATED), key=lambda c: c[1]):
        print(f"  {label:30} {start:.3f} → {end:.3f}  ({end - start:.3f} s)  {thread}")
    if data["problems"]:
        print(f"  problems: {data['problems']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a vmconsole configuration (the fixture's, for a size)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON document per run")
    args = parser.parse_args()
    for run in range(1, args.runs + 1):
        data = one_run(args.config)
        if args.json:
            print(json.dumps(data))
        else:
            show(run, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
