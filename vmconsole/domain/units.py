"""Durations and names as Pacemaker and vm_manager spell them: the one duration parser and the one
name pattern every other module uses.

A duration is digits with an optional unit (``30``, ``30s``, ``2min``, ``500ms``); what a bare
number means depends on where it is written: seconds in the CIB's operation timeouts and in what an
operator types, milliseconds in crm_mon's failure intervals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A name that can become part of an XML id (an NCName), a user name or a Pacemaker attribute name:
# ASCII only, so that nothing a shell or an XPath expression could misread ever passes.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

SECONDS_PER_UNIT: dict[str, float] = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "ms": 0.001,
    "msec": 0.001,
    "us": 1e-6,
    "usec": 1e-6,
}
# The units of a whole number of seconds (what a Pacemaker timeout typed by an operator may use).
WHOLE_SECOND_UNITS = frozenset({"", "s", "sec", "m", "min", "h", "hr"})

MAX_DIGITS = 18  # a duration past a billion years is not one; int() refuses thousands of digits anyway
_DURATION = re.compile(r"(\s*)([0-9]+)(\s*)(ms|msec|us|usec|s|sec|m|min|h|hr)?(\s*)", re.IGNORECASE)


@dataclass(frozen=True)
class Duration:
    """A duration as written: its number and its unit (lower case, "" when none was written)."""

    amount: int
    unit: str

    def seconds(self, bare_unit: str = "s") -> float:
        """The duration in seconds; a bare number counts in ``bare_unit``."""
        return self.amount * SECONDS_PER_UNIT[self.unit or bare_unit]


def parse_duration(text: str | None, *, strict: bool = False) -> Duration | None:
    """``text`` as a duration, or None when it is not one.

    Lenient by default (spaces around the parts, any case: what people and tools write); ``strict``
    accepts exactly what vmconsole itself writes into the CIB: no spaces, lower-case units.
    """
    match = _DURATION.fullmatch(text or "")
    if match is None:
        return None
    before, digits, between, unit, after = match.groups()
    if len(digits) > MAX_DIGITS:
        return None
    unit = unit or ""
    if strict and (before or between or after or unit != unit.lower()):
        return None
    return Duration(int(digits), unit.lower())


def duration_seconds(text: str | None, default: float) -> float:
    """A CIB duration in seconds (a bare number is seconds), ``default`` when unreadable."""
    duration = parse_duration(text)
    return default if duration is None else duration.seconds()


def duration_ms(text: str | None) -> int:
    """crm_mon's intervals in milliseconds: "10000" (a bare number is ms) or "10000ms"; 0 when unreadable."""
    duration = parse_duration(text)
    return 0 if duration is None else round(duration.seconds(bare_unit="ms") * 1000)
