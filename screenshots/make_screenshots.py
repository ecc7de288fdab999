"""Write SVG screenshots of the console on the deterministic test state (fixed data, fixed clock).

    .venv/bin/python screenshots/make_screenshots.py

Writes, next to this script: ``main.svg`` (the main screen, a failure kept on its row with its cause),
``rollback-pick.svg`` and ``rollback-impact.svg`` (the guided rollback), ``clone-progress.svg`` (a
running clone), ``timeline.svg`` (the on-call timeline), ``create-form.svg`` (every option of a new
VM, on a taller terminal so that the whole form shows) and ``vm-detail.svg`` (a failed VM's detail
with the cause of its failure).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "tui"))

import tui_sample  # noqa: E402
from textual.widgets import Input  # noqa: E402

from vmconsole.tui.app import VmConsoleApp  # noqa: E402
from vmconsole.tui.handlers.snapshot import show_rollback_impact  # noqa: E402
from vmconsole.tui.memory import KeptFailure  # noqa: E402
from vmconsole.tui.screens.create import CreateScreen  # noqa: E402
from vmconsole.tui.screens.progress import TaskScreen  # noqa: E402
from vmconsole.tui.widgets.vm_table import VmTable  # noqa: E402

SIZE = (120, 40)
TALL = (120, 58)  # the whole create form at once
CAUSE = "qemu-system-x86_64: -blockdev: error connecting: Permission denied (the QEMU log on hv2)"


def console() -> VmConsoleApp:
    source = tui_sample.Source()
    services = tui_sample.FakeServices(source)
    services.records = list(tui_sample.HISTORY)
    return VmConsoleApp(tui_sample.config(60.0), state_source=source, clock=tui_sample.clock, services=services)


async def steady(app: VmConsoleApp, pilot: object) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
    for box in app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()  # type: ignore[attr-defined]


async def shoot() -> list[str]:
    app = console()
    written: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await steady(app, pilot)

        async def save(name: str) -> None:
            await steady(app, pilot)
            written.append(app.save_screenshot(f"{name}.svg", str(HERE)))

        app.failures.remember(
            "legacy",
            KeptFailure(
                tui_sample.NOW,
                "start",
                "legacy is Failed: start on hv2: Failed to start virtual domain legacy. (rc=1)",
                cause=CAUSE,
            ),
        )
        app.screen.query_one(VmTable).move_to("db1")
        await save("main")
        await pilot.press("R", "up")  # guided rollback, 1/3: the timeline, one snapshot back
        await save("rollback-pick")
        await pilot.press("escape")
        show_rollback_impact(app, tui_sample.rollback_plan())  # 2/3: the impact, as the service plans it
        await pilot.pause()
        await pilot.press("d", "b")
        await save("rollback-impact")
        await pilot.press("escape")
        app.push_screen(TaskScreen(tui_sample.clone_record()))
        await save("clone-progress")
        await pilot.press("escape")
        app.events.host = "hv1"
        app.events.lifecycle("web1", "stopped", tui_sample.NOW)
        await pilot.press("T")
        await save("timeline")
        await pilot.press("escape")
        app.screen.query_one(VmTable).move_to("legacy")
        await pilot.press("enter")
        await save("vm-detail")
    written.append(await shoot_create_form())
    return written


async def shoot_create_form() -> str:
    xml = Path("/tmp/vmconsole-screenshots/web3.xml")
    xml.parent.mkdir(exist_ok=True)
    xml.write_text("<domain type='kvm'><name>web3</name><memory unit='MiB'>512</memory><devices/></domain>")
    image = xml.parent / "debian-12.qcow2"
    image.write_bytes(b"QFI\xfb")
    app = console()
    async with app.run_test(size=TALL) as pilot:
        await steady(app, pilot)
        state = app.state
        assert state is not None
        app.push_screen(CreateScreen("web3", str(image), str(xml), nodes=state.nodes))
        await pilot.pause()
        form = app.screen
        for selector, value in {
            "#vs-stop-timeout": "2min",
            "#vs-priority": "10",
            "#vs-migration-downtime": "soon",
            "#vs-pacemaker-params": "force_stop=true",
            "#vs-pacemaker-utilization": "cpu=2 memory=512",
            "#vs-metadata": "owner=ops tier=gold",
        }.items():
            form.query_one(selector, Input).value = value
        await steady(app, pilot)
        return app.save_screenshot("create-form.svg", str(HERE))


if __name__ == "__main__":
    for path in asyncio.run(shoot()):
        print(path)
