"""The ``/`` filter and the column sort of the VM table (presentation only, no cluster logic).

Filter syntax: space-separated terms, all of which must match.

* ``web`` — the name contains "web" (case-insensitive);
* ``status:failed`` / ``node:vm`` / ``name:db`` — that field contains the value; ``status:failed``
  also matches a VM whose failed flag is set or whose last failure the console keeps on its row
  (until a success or a cleanup), ``status:blocked`` a blocked one;
* ``~^web[12]$`` / ``node:~^hv`` — a regular expression (Python syntax, case-insensitive);
* ``!term`` — negation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmconsole.domain.model import VmState, VmStatus

FIELDS = ("name", "status", "node")

# Sorting by status puts what needs attention first.
STATUS_ORDER = {
    VmStatus.FAILED: 0,
    VmStatus.STARTING: 1,
    VmStatus.STOPPING: 2,
    VmStatus.UNDEFINED: 3,
    VmStatus.STOPPED: 4,
    VmStatus.DISABLED: 5,
    VmStatus.STARTED: 6,
}


class FilterError(ValueError):
    """The filter text cannot be used (a bad regular expression, an unknown field)."""


@dataclass(frozen=True)
class Term:
    field: str
    matcher: Callable[[str], bool]
    negate: bool = False

    def values(self, vm: VmState, failed: bool = False) -> list[str]:
        if self.field == "name":
            return [vm.name]
        if self.field == "node":
            return [vm.node or "-"]
        values = [vm.status.value]
        if vm.failed or failed:
            values.append("failed")
        if vm.blocked:
            values.append("blocked")
        return values

    def match(self, vm: VmState, failed: bool = False) -> bool:
        hit = any(self.matcher(value) for value in self.values(vm, failed))
        return hit != self.negate


@dataclass(frozen=True)
class VmFilter:
    text: str = ""
    terms: tuple[Term, ...] = ()

    def match(self, vm: VmState, *, failed: bool = False) -> bool:
        """``failed``: the console keeps a failure on the VM's row (``status:failed`` matches it)."""
        return all(term.match(vm, failed) for term in self.terms)

    @property
    def active(self) -> bool:
        return bool(self.terms)


def _regex(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: pattern.search(value) is not None


def _substring(needle: str) -> Callable[[str], bool]:
    return lambda value: needle in value.lower()


def parse_filter(text: str) -> VmFilter:
    """Parse the filter text; ``FilterError`` names what is wrong."""
    terms: list[Term] = []
    for raw in text.split():
        negate = raw.startswith("!")
        body = raw[1:] if negate else raw
        field = "name"
        if ":" in body:
            head, rest = body.split(":", 1)
            if head.lower() in FIELDS:
                field, body = head.lower(), rest
            elif not head.startswith("~"):
                raise FilterError(f"unknown field {head!r} (use {', '.join(FIELDS)})")
        if not body:
            raise FilterError(f"{raw!r} has no value to match")
        if body.startswith("~"):
            try:
                pattern = re.compile(body[1:], re.IGNORECASE)
            except re.error as exc:
                raise FilterError(f"bad regular expression {body[1:]!r}: {exc}") from exc
            terms.append(Term(field, _regex(pattern), negate))
        else:
            terms.append(Term(field, _substring(body.lower()), negate))
    return VmFilter(text, tuple(terms))


# ---------------------------------------------------------------------------------------------- sorting
SORT_COLUMNS = ("name", "status", "node", "snaps", "latest", "size")

_OLDEST = datetime.min


def sort_value(vm: VmState, column: str) -> Any:
    """A sort key for one VM on one column; ties are broken by name."""
    if column == "status":
        return (STATUS_ORDER.get(vm.status, 9), not vm.failed, vm.name)
    if column == "node":
        return (vm.node is None, vm.node or "", vm.name)
    if column == "snaps":
        return (len(vm.snapshots), vm.name)
    if column == "latest":
        latest = vm.latest_snapshot
        created = latest.created if latest and latest.created else None
        return (created is not None, created.timestamp() if created else 0.0, vm.name)
    if column == "size":
        return (vm.total_size, vm.name)
    return (vm.name.lower(), vm.name)
