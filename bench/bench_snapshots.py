"""Snapshot work at a real cluster's monitor pace: bulk snapshot of 50 VMs, purge of 100 snapshots.

The purge removes 100 snapshots spread over the 50 VMs in one task. (The snapshots of a single image
are removed one after the other by librbd whatever the caller does; that figure is printed too.)

Each RBD snapshot create/remove waits for one monitor commit (paxos_propose_interval: 1 s by default;
the lab runs at 0.05 s). This benchmark sets the real 1 s for its run and compares vmconsole's parallel
bulk snapshot and purge with the serial way (one snapshot after another, as vm_manager loops), the
serial way measured on a sample in the same run and scaled.

    .venv/bin/python bench/bench_snapshots.py
"""

from __future__ import annotations

import time

from common import bench_services, make_synthetic_vms, paxos_interval, report

from vmconsole.core import snapshots


def main() -> int:
    with bench_services() as services:
        names = make_synthetic_vms(services, 50)
        services.pacemaker.wait_idle(600)
        with paxos_interval(services, 1.0):
            # one commit, for scale
            t0 = time.perf_counter()
            services.rbd.group_snap_create(names[0], "one")
            one_commit = time.perf_counter() - t0
            services.rbd.group_snap_remove(names[0], "one")

            sample = names[:5]
            t0 = time.perf_counter()
            for name in sample:
                services.rbd.group_snap_create(name, "serial")
            serial_per_vm = (time.perf_counter() - t0) / len(sample)
            for name in sample:
                services.rbd.group_snap_remove(name, "serial")

            t0 = time.perf_counter()
            result = services.run(snapshots.plan_bulk_snapshot(services, names, "bulk"))
            bulk = time.perf_counter() - t0
            assert all(v == "ok" for v in result.data["results"].values()), result.data

            # purge: 100 snapshots over 50 VMs (2 each: "bulk" and one more), in one task
            services.run(snapshots.plan_bulk_snapshot(services, names, "second"))
            count = 2 * len(names)
            t0 = time.perf_counter()
            for name in sample:
                services.rbd.group_snap_remove(name, "second")
            serial_remove = (time.perf_counter() - t0) / len(sample)
            for name in sample:
                services.rbd.group_snap_create(name, "second")
            plans = [snapshots.purge_plan(services, name, all=True) for name in names]
            assert sum(len(p.remove) for p in plans) == count
            t0 = time.perf_counter()
            services.run(snapshots.plan_purge_many(services, plans))
            purge = time.perf_counter() - t0

            # one VM's snapshots: librbd serializes snapshot operations of one image (for the record)
            vm = names[0]
            for index in range(10):
                services.rbd.group_snap_create(vm, f"one{index}")
            t0 = time.perf_counter()
            services.run(snapshots.plan_purge(services, snapshots.purge_plan(services, vm, all=True)))
            one_vm_purge = time.perf_counter() - t0
        report(
            "snapshots",
            {
                "paxos_propose_interval": 1.0,
                "one_commit_seconds": round(one_commit, 2),
                "bulk_vms": len(names),
                "bulk_seconds": round(bulk, 2),
                "bulk_serial_seconds_estimate": round(serial_per_vm * len(names), 1),
                "bulk_in_commits": round(bulk / one_commit, 1),
                "ratio_serial_over_bulk": round(serial_per_vm * len(names) / bulk, 1),
                "purge_snapshots": count,
                "purge_seconds": round(purge, 2),
                "purge_serial_seconds_estimate": round(serial_remove * count, 1),
                "purge_in_commits": round(purge / one_commit, 1),
                "ratio_serial_over_purge": round(serial_remove * count / purge, 1),
                "purge_one_vm_10_snapshots_seconds": round(one_vm_purge, 2),
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
