"""Write SVG screenshots of the console on the deterministic test state (fixed data, fixed clock).

    .venv/bin/python screenshots/make_screenshots.py

Writes, next to this script: ``main.svg`` (the main screen), ``rollback-pick.svg`` and
``rollback-impact.svg`` (the guided rollback) and ``clone-progress.svg`` (a running clone).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "tui"))

import tui_sample  # noqa: E402

from vmconsole.tui.app import VmConsoleApp  # noqa: E402
from vmconsole.tui.screens.progress import TaskScreen  # noqa: E402
from vmconsole.tui.widgets.vm_table import VmTable  # noqa: E402

SIZE = (120, 40)


async def shoot() -> list[str]:
    app = VmConsoleApp(tui_sample.config(60.0), state_source=tui_sample.Source(), clock=tui_sample.clock)
    written: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()

        async def save(name: str) -> None:
            await pilot.pause()
            written.append(app.save_screenshot(f"{name}.svg", str(HERE)))

        app.screen.query_one(VmTable).move_to("db1")
        await save("main")
        await pilot.press("R", "up")  # guided rollback, 1/3: the timeline, one snapshot back
        await save("rollback-pick")
        await pilot.press("escape")
        app.show_rollback_impact(tui_sample.rollback_plan())  # 2/3: the impact, as the service plans it
        await pilot.pause()
        await pilot.press("d", "b")
        await save("rollback-impact")
        await pilot.press("escape")
        app.push_screen(TaskScreen(tui_sample.clone_record()))
        await save("clone-progress")
    return written


if __name__ == "__main__":
    for path in asyncio.run(shoot()):
        print(path)
