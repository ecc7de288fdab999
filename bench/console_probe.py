"""One console, headless, on a real cluster: what a user waits for and what it costs the host.

Run by ``bench/run`` in a process of its own (so that its start-up, memory and CPU are the console's
alone); prints one JSON document:

* ``first_paint``: from the process start (imports included) to the main screen on the terminal;
* ``full_table``: ... to every VM's row in the table (``expected`` rows at least);
* ``refresh_main_thread``: the main-thread time of applying a new state to the screen, the state
  having 10 % of its VMs changed (status, node), ``rounds`` times: what the event loop cannot do
  meanwhile (the cluster read itself runs in a worker thread and is not counted here);
* ``idle_cpu``: the process's CPU time (every thread: the refresh reads included) over ``idle``
  seconds of wall time on the main screen, the console refreshing by itself, as a share of one core;
* ``rss``: resident memory at the end, and its peak.

    .venv/bin/python bench/console_probe.py CONFIG EXPECTED [IDLE_SECONDS]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from vmconsole import config as configuration  # noqa: E402
from vmconsole.domain.model import ClusterState, VmStatus  # noqa: E402
from vmconsole.tui.app import VmConsoleApp  # noqa: E402
from vmconsole.tui.widgets.vm_table import VmTable  # noqa: E402


def memory() -> dict[str, float]:
    values: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def changed(state: ClusterState, round_: int, share: float = 0.1) -> ClusterState:
    """The state with every tenth VM (a different tenth each round) flipped between Started and Stopped."""
    vms = list(state.vms)
    step = max(1, round(1 / share))
    for index in range(round_ % step, len(vms), step):
        vm = vms[index]
        started = vm.status is VmStatus.STARTED
        vms[index] = replace(
            vm,
            status=VmStatus.STOPPED if started else VmStatus.STARTED,
            node=None if started else (state.nodes[0].name if state.nodes else "vm"),
        )
    return replace(state, vms=tuple(vms))


GC_PAUSES: list[tuple[int, float]] = []  # (generation, seconds) of every collection


def _watch_gc() -> None:
    import gc

    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            GC_PAUSES.append((info.get("generation", -1), time.perf_counter() - started.pop()))

    gc.callbacks.append(callback)


async def probe(config_path: Path, expected: int, idle: float, rounds: int) -> dict[str, Any]:
    _watch_gc()
    config = configuration.load_file(config_path)
    result: dict[str, Any] = {"imports": time.perf_counter() - STARTED}
    app = VmConsoleApp(config, check_recovery=False)
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.screen.query_one(VmTable)
        result["first_paint"] = time.perf_counter() - STARTED
        deadline = time.monotonic() + 120
        while table.row_count < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        result["full_table"] = time.perf_counter() - STARTED
        result["rows"] = table.row_count
        await pilot.pause()
        # refresh main-thread time: a state with 10 % of the VMs changed, applied as the refresher does
        state = app.state
        assert state is not None
        samples = []
        cpu_samples = []
        for round_ in range(rounds):
            new = changed(state, round_)
            t0, c0 = time.perf_counter(), time.thread_time()
            app._show_state(new)  # what the refresher runs on the main thread with a new state
            samples.append(time.perf_counter() - t0)
            cpu_samples.append(time.thread_time() - c0)
            await pilot.pause()
        result["refresh_main_thread"] = {
            "max": max(samples),
            "median": statistics.median(samples),
            "samples": [round(s, 4) for s in samples],
            # the main thread's own CPU time: the wall time less what the machine's other work took
            "cpu_max": max(cpu_samples),
            "cpu_median": statistics.median(cpu_samples),
        }
        app._show_state(state)
        await pilot.pause()
        # idle: the console left on the main screen, refreshing by itself
        await asyncio.sleep(4)  # past any first-read catch-up
        cpu0, wall0 = time.process_time(), time.perf_counter()
        reader = app.services.reader
        counts = {"reads": 0, "whole": 0, "pacemaker": 0, "crm_mon_all": 0, "crm_mon_some": 0}
        read_ceph, pacemaker_part = reader._read_ceph, reader.pacemaker_part

        def counted_ceph(only: set[str] | None) -> Any:
            counts["whole"] += 1
            return read_ceph(only)

        def counted_pacemaker() -> Any:
            counts["reads"] += 1
            before = reader._pacemaker.version
            part = pacemaker_part()
            if reader._pacemaker.version != before:
                counts["pacemaker"] += 1
                asked = reader._pacemaker.asked
                if asked == "all":
                    counts["crm_mon_all"] += 1
                elif asked != "none":
                    counts["crm_mon_some"] += 1
            return part

        reader._read_ceph = counted_ceph  # type: ignore[method-assign]
        reader.pacemaker_part = counted_pacemaker  # type: ignore[method-assign]
        await asyncio.sleep(idle)
        result["idle_reads"] = counts
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        result["idle_cpu"] = {"seconds": wall, "cpu_seconds": cpu, "share_of_one_core": cpu / wall}
        result["refresh_interval"] = app.refresher.interval
        result["last_read_seconds"] = app.refresher.last_read_seconds
        result["memory_mib"] = memory()
        full = [p for g, p in GC_PAUSES if g == 2]
        result["gc"] = {"collections": len(GC_PAUSES), "gen2": len(full), "gen2_max": max(full, default=0.0)}
    return result


def main() -> int:
    config_path = Path(sys.argv[1])
    expected = int(sys.argv[2])
    idle = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
    result = asyncio.run(probe(config_path, expected, idle, rounds=10))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
