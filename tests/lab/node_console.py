"""The console, driven headless by Textual's Pilot, inside one node of the multi-node lab.

Not a test module: ``test_multinode_lab.py`` runs it inside a surviving node (``Lab.run_on``), since
vmconsole reaches a node's pacemaker and libvirt only from inside that node::

    python tests/lab/node_console.py CONFIG VM VICTIM OTHER GO_FILE [REFRESH_INTERVAL]

It opens the console as an operator would (its own refresh loop, libvirt lifecycle events), waits
until the table shows VM Started on VICTIM, prints ``READY``, then waits for GO_FILE, where the test
writes the wall-clock time (``time.time()``) of the crash of VICTIM. From that instant it watches what
the operator sees: the cluster pane's line of VICTIM, and the table's row of VM. It prints one JSON
line: the seconds after the crash when the pane first showed VICTIM down, and when the table first
showed VM Started on OTHER, with what they showed; and, for comparison, when Pacemaker itself
(``crm_mon``, polled beside the console) first said so.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from vmconsole import config as configuration
from vmconsole.backends import crm_mon
from vmconsole.tui.app import VmConsoleApp

DOWN_WORDS = ("offline", "unclean")


def pane_line(app: VmConsoleApp, node: str) -> str:
    """The cluster pane's line of ``node``, as rendered."""
    pane = app.screen.query_one("#cluster")
    text = pane.render().plain  # type: ignore[union-attr]
    return next((line for line in text.splitlines() if line.startswith(f"● {node} ")), "")


def table_row(app: VmConsoleApp, vm: str) -> list[str]:
    """The VM table's row of ``vm``, as rendered (empty when the table has no such row)."""
    table: Any = app.screen.query_one("#vms")
    try:
        return [cell.plain for cell in table.get_row(vm)]
    except Exception:  # a row not there yet reads as nothing
        return []


def poll_cluster(vm: str, victim: str, other: str, crashed_at: float, result: dict[str, Any]) -> None:
    """When Pacemaker itself first said VICTIM is down and VM Started on OTHER (one crm_mon a 0.2 s)."""
    deadline = time.monotonic() + 60
    while ("cluster_node_down" not in result or "cluster_vm_moved" not in result) and time.monotonic() < deadline:
        try:
            text = subprocess.run(
                ["crm_mon", "--output-as=xml"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
            snapshot = crm_mon.parse_crm_mon(text)
        except Exception:  # a cluster reshaping itself may not answer: try again
            time.sleep(0.2)
            continue
        now = time.time() - crashed_at
        node = snapshot.node(victim)
        if "cluster_node_down" not in result and node is not None and node.status.value in DOWN_WORDS:
            result["cluster_node_down"] = now
        resource = snapshot.resource(vm)
        started = resource is not None and resource.role == "Started" and list(resource.nodes) == [other]
        if "cluster_vm_moved" not in result and started:
            result["cluster_vm_moved"] = now
        time.sleep(0.2)


async def watch(config_path: str, vm: str, victim: str, other: str, go_file: Path, interval: float) -> dict[str, Any]:
    config = configuration.load_file(Path(config_path))
    if interval:
        config = replace(config, console=replace(config.console, refresh_interval=interval))
    app = VmConsoleApp(config, check_recovery=False)
    result: dict[str, Any] = {}
    async with app.run_test(size=(140, 40)) as pilot:
        deadline = time.monotonic() + 90
        while not (victim in pane_line(app, victim) and "online" in pane_line(app, victim)) or not (
            "Started" in table_row(app, vm) and victim in table_row(app, vm)
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"before the crash: pane {pane_line(app, victim)!r}, row {table_row(app, vm)}")
            await pilot.pause(0.1)
        result["before"] = {"pane": pane_line(app, victim), "row": table_row(app, vm)}
        print("READY", flush=True)
        deadline = time.monotonic() + 120
        while not go_file.exists() or not go_file.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"{go_file} never came")
            await pilot.pause(0.05)
        crashed_at = float(go_file.read_text())
        threading.Thread(target=poll_cluster, args=(vm, victim, other, crashed_at, result), daemon=True).start()
        deadline = time.monotonic() + 60
        while "node_down" not in result or "vm_moved" not in result:
            now = time.time() - crashed_at
            line = pane_line(app, victim)
            row = table_row(app, vm)
            if "node_down" not in result and any(word in line for word in DOWN_WORDS):
                result["node_down"] = now
                result["pane"] = line
            if "vm_moved" not in result and "Started" in row and other in row:
                result["vm_moved"] = now
                result["row"] = row
            if time.monotonic() > deadline:
                result["timed_out"] = {"pane": line, "row": row}
                break
            await pilot.pause(0.05)
    return result


def main() -> int:
    config_path, vm, victim, other, go_file = sys.argv[1:6]
    interval = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    result = asyncio.run(watch(config_path, vm, victim, other, Path(go_file), interval))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
