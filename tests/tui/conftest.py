"""Fixtures of the console's tests: a deterministic state (fixed data, fixed clock) and fake services."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tui_sample

from vmconsole.tui.app import VmConsoleApp


@pytest.fixture(autouse=True)
def instant_buttons(monkeypatch: pytest.MonkeyPatch) -> None:
    """A button ignores clicks during its press animation: tests click faster than people do."""
    from textual.widgets import Button

    monkeypatch.setattr(Button, "_start_active_affect", lambda self: None)


@pytest.fixture
def source() -> tui_sample.Source:
    return tui_sample.Source()


@pytest.fixture
def make_app(source: tui_sample.Source) -> Callable[..., VmConsoleApp]:
    def make(*, read_only: bool = False, services: Any = None, refresh: float = 60.0, **kwargs: Any) -> VmConsoleApp:
        return VmConsoleApp(
            tui_sample.config(refresh),
            read_only=read_only,
            services=services,
            state_source=source,
            clock=tui_sample.clock,
            **kwargs,
        )

    return make


@pytest.fixture
def fake_services(source: tui_sample.Source) -> tui_sample.FakeServices:
    return tui_sample.FakeServices(source)
