"""``bench/run``'s snapshot figures at a real cluster's monitor pace: a bulk snapshot of 50 VMs and a
purge of 100 snapshots, each against the serial way (one snapshot after another, as vm_manager loops).

Each RBD snapshot create or remove waits for one monitor commit (``paxos_propose_interval``: 1 s by
default; the lab runs at 0.05 s). The monitors are set to 1 s for the measurement only, and put back
to their value before on the way out, whatever happened (every user of the shared lab feels it
meanwhile: the window is kept to about a minute).

The 50 VMs are synthetic (vm_manager's layout: group, a 64 MiB system image, the metadata; no
primitive, so the shared CIB is left alone), ``benchsnapNNNN`` in pool ``bench``, namespace ``io``,
and removed at the end. The serial way is timed on a sample of the VMs with the same librbd calls
(no process per snapshot: the strict floor of a serial loop) and scaled to the whole.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

from common import paxos_interval
from io_figures import remove_vm_hard

from vmconsole.core import snapshots
from vmconsole.core.services import Services
from vmconsole.domain import naming
from vmconsole.domain.errors import VmConsoleError

Emit = Callable[..., None]

PREFIX = "benchsnap"
COUNT = 50
SAMPLE = 10  # VMs the serial way is timed on
REAL_INTERVAL = 1.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_vms(services: Services, count: int) -> list[str]:
    names = [f"{PREFIX}{i:04d}" for i in range(count)]
    existing = set(services.rbd.group_names())
    xml = "<domain type='kvm'><name>x</name><memory>65536</memory><devices/></domain>"
    for name in names:
        if name in existing:
            continue
        image = naming.system_image(name)
        services.rbd.create_image(image, 64 << 20)
        services.rbd.create_group(name)
        services.rbd.group_add(name, image)
        services.rbd.metadata_set_many(
            image, {"vm_name": name, "xml": xml, "_base_xml": xml, "_disk_bus": "virtio", "role": "bench"}
        )
    return names


def remove_vms(services: Services) -> None:
    for name in services.rbd.group_names():
        if name.startswith(PREFIX):
            remove_vm_hard(services, name)


def measure(services: Services, emit: Emit, count: int = COUNT, sample: int = SAMPLE) -> None:
    """Both figures; ``services`` on the io namespace."""
    try:
        names = make_vms(services, count)
        images = [naming.system_image(n) for n in names]
        picked = images[:sample]
        with paxos_interval(services, REAL_INTERVAL):
            started = time.perf_counter()
            services.rbd.image_snap_create(images[-1], "one")
            one_commit = time.perf_counter() - started
            services.rbd.image_snap_remove(images[-1], "one")

            started = time.perf_counter()
            for image in picked:
                services.rbd.image_snap_create(image, "serial")
            serial_create = (time.perf_counter() - started) / len(picked)
            started = time.perf_counter()
            for image in picked:
                services.rbd.image_snap_remove(image, "serial")
            serial_remove = (time.perf_counter() - started) / len(picked)

            started = time.perf_counter()
            result = services.run(snapshots.plan_bulk_snapshot(services, names, "bulk"))
            bulk = time.perf_counter() - started
            failed = {vm: r for vm, r in result.data["results"].items() if r != "ok"}
            if failed:
                raise RuntimeError(f"bulk snapshot failed on {failed}")
            result = services.run(snapshots.plan_bulk_snapshot(services, names, "second"))
            second_bulk = time.perf_counter() - started - bulk

            started = time.perf_counter()
            plans = [snapshots.purge_plan(services, name, all=True) for name in names]
            planned = time.perf_counter() - started
            removing = sum(len(p.remove) for p in plans)
            if removing != 2 * count:
                raise RuntimeError(f"the purge plans remove {removing} snapshots, not {2 * count}")
            started = time.perf_counter()
            services.run(snapshots.plan_purge_many(services, plans))
            purge = time.perf_counter() - started
        serial_bulk = serial_create * count
        emit(
            "bulk_snapshot_50_vms_vs_serial",
            count,
            value=bulk,
            unit="s",
            second_run=round(second_bulk, 2),
            in_commits=round(bulk / one_commit, 1),
            one_commit=round(one_commit, 3),
            baseline=serial_bulk,
            baseline_what=f"one snapshot after another with librbd, timed on {sample} VMs and scaled",
            ratio=serial_bulk / bulk,
            note=f"paxos_propose_interval {REAL_INTERVAL:g} s (Ceph's default, set for this figure only); "
            f"`snapshot bulk` of {count} stopped one-disk VMs (image kind: locks, records, one snapshot each) "
            f"in one task; second_run: the same again (the purge's second snapshot); in_commits: the bulk "
            "time in monitor commits",
        )
        serial_purge = serial_remove * 2 * count
        emit(
            "purge_100_snapshots_vs_serial",
            count,
            value=purge,
            unit="s",
            plans_seconds=round(planned, 2),
            in_commits=round(purge / one_commit, 1),
            one_commit=round(one_commit, 3),
            baseline=serial_purge,
            baseline_what=f"one removal after another with librbd, timed on {sample} snapshots and scaled",
            ratio=serial_purge / purge,
            note=f"paxos_propose_interval {REAL_INTERVAL:g} s; `snapshot purge --all` of {2 * count} snapshots "
            f"over {count} VMs in one task (value: the task; plans_seconds: the {count} purge plans before it)",
        )
    finally:
        with contextlib.suppress(VmConsoleError):
            remove_vms(services)
