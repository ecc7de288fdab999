"""The process the kill matrix kills: plans a fault scenario's task and parks right after the work of
one of its steps, until SIGKILL. ``python -m tests.integration.kill_runner CONFIG SCENARIO VM STEP MARKER``
writes the task's id into MARKER once parked."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.fault_scenarios import SCENARIOS
from vmconsole import config as configuration
from vmconsole.core.services import Services
from vmconsole.lab.lab import Lab


def main(config_path: str, scenario: str, name: str, index: str, marker: str) -> int:
    config = configuration.load_file(Path(config_path))
    assert config.lab_dir is not None
    services = Services(config)
    task = SCENARIOS[scenario].plan(services, Lab(Path(config.lab_dir)), name)
    step = task.steps[int(index)]
    work = step.run

    def park(ctx: Any) -> None:
        work(ctx)
        Path(marker).write_text(task.task_id)
        while True:
            time.sleep(1)

    step.run = park
    services.run(task)
    print("the task ended before its step was reached", file=sys.stderr)
    return 3


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:6]))
