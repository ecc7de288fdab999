"""The one duration parser and the one name pattern."""

from __future__ import annotations

import pytest

from vmconsole.domain import units


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("30s", 30.0), (" 30 sec ", 30.0), ("2min", 120.0), ("2M", 120.0), ("1h", 3600.0), ("500ms", 0.5)],
)
def test_lenient_durations(text: str, seconds: float) -> None:
    duration = units.parse_duration(text)
    assert duration is not None and duration.seconds() == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "1.5s", "10 days", "s", None])
def test_not_durations(text: str | None) -> None:
    assert units.parse_duration(text) is None


@pytest.mark.parametrize(
    ("text", "ok"), [("30", True), ("2min", True), ("500ms", True), (" 30", False), ("30 s", False), ("30S", False)]
)
def test_strict_durations_are_what_vmconsole_writes(text: str, ok: bool) -> None:
    assert (units.parse_duration(text, strict=True) is not None) is ok


def test_bare_numbers_count_in_the_unit_of_their_place() -> None:
    assert units.duration_seconds("30", 7) == 30 and units.duration_seconds("x", 7) == 7
    assert units.duration_ms("10000") == 10000 and units.duration_ms("10s") == 10000 and units.duration_ms("?") == 0


@pytest.mark.parametrize(
    ("name", "ok"), [("vm1", True), ("_x.y-z", True), ("1vm", False), ("é", False), ("a b", False), ("", False)]
)
def test_the_name_pattern(name: str, ok: bool) -> None:
    assert (units.NAME_PATTERN.fullmatch(name) is not None) is ok
