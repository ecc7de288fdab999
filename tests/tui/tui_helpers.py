"""Helpers of the console's tests: drive an app headless, wait for its workers, read what a widget shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vmconsole.tui.app import VmConsoleApp


def drive(app: VmConsoleApp, scenario: Callable[[Any], Any], size: tuple[int, int] = (120, 40)) -> None:
    """Run ``scenario(pilot)`` (a coroutine function) against the app, headless (no pytest-asyncio here)."""
    import asyncio

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await scenario(pilot)

    asyncio.run(main())


async def settle(pilot: Any, app: VmConsoleApp) -> None:
    """Wait until the app's workers are done and their messages handled."""
    from contextlib import suppress

    from textual.worker import WorkerCancelled, WorkerFailed

    with suppress(WorkerFailed, WorkerCancelled):  # failures reach the app's error path anyway
        await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def shown(widget: Any, width: int = 200) -> str:
    """The plain text a ``Static`` shows (its Rich renderable printed without colours)."""
    import io

    from rich.console import Console

    content = widget.content
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(content)
    return console.export_text()
