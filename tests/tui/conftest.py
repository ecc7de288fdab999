"""Fixtures of the console's tests: a deterministic state (fixed data, fixed clock) and fake services."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tui_sample  # noqa: E402

from vmconsole.tui.app import VmConsoleApp  # noqa: E402


@pytest.fixture
def source() -> tui_sample.Source:
    return tui_sample.Source()


@pytest.fixture
def make_app(source: tui_sample.Source) -> Callable[..., VmConsoleApp]:
    def make(*, read_only: bool = False, services: Any = None, refresh: float = 60.0, **kwargs: Any) -> VmConsoleApp:
        return VmConsoleApp(tui_sample.config(refresh), read_only=read_only, services=services,
                            state_source=source, clock=tui_sample.clock, **kwargs)

    return make


@pytest.fixture
def fake_services(source: tui_sample.Source) -> tui_sample.FakeServices:
    return tui_sample.FakeServices(source)


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
