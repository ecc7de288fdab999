"""Snapshot work at a real cluster's monitor pace, on its own: bulk snapshot of 50 VMs and a purge of
100 snapshots against the serial way. The same figures as ``bench/run --figures snapshots`` (the logic
is in ``snapshot_figures.py``); this prints them as JSON lines and keeps nothing.

    .venv/bin/python bench/bench_snapshots.py
"""

from __future__ import annotations

import json
import sys
from typing import Any

import io_figures
import snapshot_figures

from vmconsole import config as configuration
from vmconsole.lab.lab import Lab


def main() -> int:
    lab = Lab(log=lambda m: print(m, file=sys.stderr))
    started = False
    if not lab.is_up():
        lab.up()
        started = True
    lines: list[dict[str, Any]] = []

    def emit(figure: str, vms: int | None, **fields: Any) -> None:
        line = {"figure": figure, "vms": vms, **fields}
        lines.append(line)
        print(json.dumps(line), flush=True)

    try:
        with io_figures.io_services(lab, configuration.load_file(lab.paths.config_file)) as services:
            snapshot_figures.measure(services, emit)
    finally:
        if started:
            lab.down()
    return 0 if len(lines) == 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
