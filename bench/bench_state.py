"""Gathering the whole cluster's state: 500 VMs in under a second, against the per-VM way.

"gather" is a refresh of a running console (connection open, caches warm, the CIB unchanged since the
last refresh: no crm_mon call needed); "cold" is a first read by a new process.

The per-VM way is what vm_manager's status() and cockpit do for a table: for each VM a new RADOS
connection and a group check, plus one Pacemaker status call. It is measured on a sample of VMs in the
same run and scaled to the whole set.

    .venv/bin/python bench/bench_state.py [COUNT]
"""

from __future__ import annotations

import sys
import time

from common import bench_services, make_synthetic_vms, report, timed

from vmconsole.backends.pacemaker import PacemakerClient
from vmconsole.backends.rbd import RbdSession
from vmconsole.core.state import StateReader


def per_vm_status(services: object, names: list[str]) -> None:
    config = services.config  # type: ignore[attr-defined]
    client = PacemakerClient(config.pacemaker)
    for name in names:
        with RbdSession(config.ceph) as session:
            session.group_exists(name)
        client.crm_mon_xml()


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with bench_services() as services:
        t0 = time.perf_counter()
        names = make_synthetic_vms(services, count)
        setup = time.perf_counter() - t0
        # Pacemaker probes every new primitive once: measure a settled cluster
        services.pacemaker.wait_idle(900)

        def cold() -> None:
            fresh = StateReader(services.config)
            fresh.read()
            fresh.close()

        gather_cold = timed(cold, repeat=3)
        reader = StateReader(services.config)
        reader.read()  # the first read fills the caches (snapshot timestamps, an unchanged CIB)
        gather = timed(reader.read, repeat=5)
        state = reader.read()
        assert sum(1 for vm in state.vms if vm.name.startswith("bench")) == count, "not every VM was read"
        sample = names[:20]
        per_vm = timed(lambda: per_vm_status(services, sample)) / len(sample)
        reader.close()
        report(
            "state",
            {
                "vms": count,
                "vms_in_state": len(state.vms),
                "setup_seconds": round(setup, 1),
                "gather_seconds": round(gather, 3),
                "gather_seconds_cold": round(gather_cold, 3),
                "target_seconds": 1.0,
                "meets_target": gather < 1.0,
                "per_vm_way_seconds_per_vm": round(per_vm, 4),
                "per_vm_way_seconds_for_all": round(per_vm * len(state.vms), 2),
                "ratio_per_vm_way_over_gather": round(per_vm * len(state.vms) / gather, 1),
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
