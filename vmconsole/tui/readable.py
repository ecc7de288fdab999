"""Settings and values as an operator reads them: yes/no, "not set", units, ``key = value``; never a
Python repr (``None``, ``False``, ``{'force_stop': 'true'}``, ``[]``).

The settings are the decoded ``_`` keys of a VM (``VmState.settings``, from ``VmSettings.to_json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from vmconsole.tui import text

# setting -> (label, what "not set" means, unit of a bare number)
SETTINGS: dict[str, tuple[str, str, str]] = {
    "pinned_host": ("Pinned host", "not set", ""),
    "preferred_host": ("Preferred host", "not set", ""),
    "live_migration": ("Live migration", "no", ""),
    "migration_user": ("Migration user", "not set (root)", ""),
    "migrate_to_timeout": ("Migrate-to timeout", "not set (120 s)", "s"),
    "migration_downtime": ("Migration downtime", "not set (0 ms)", "ms"),
    "stop_timeout": ("Stop timeout", "not set (30 s)", "s"),
    "priority": ("Priority", "not set (0)", ""),
    "disk_bus": ("Disk bus", "not set (virtio)", ""),
    "additional_disks": ("Data disks", "none", ""),
    "pacemaker_meta": ("Pacemaker meta", "none", ""),
    "pacemaker_params": ("Pacemaker params", "none", ""),
    "pacemaker_utilization": ("Pacemaker utilization", "none", ""),
    "crm_config_cmd": ("Extra constraints", "none", ""),
    "colocations": ("Colocations", "none", ""),
    "remote_node": ("Pacemaker remote", "none", ""),
}
# shown inside "Pacemaker remote", not on lines of their own
REMOTE_PARTS = ("remote_node_address", "remote_node_port", "remote_node_timeout")
STRONG_SCORE, WEAK_SCORE = "INFINITY", "700"


def is_set(value: object) -> bool:
    return value not in (None, "", False) and not (isinstance(value, Mapping | Sequence) and not value)


def yes_no(value: object) -> str:
    return "yes" if value else "no"


def with_unit(value: object, unit: str) -> str:
    """``30`` -> ``30 s``; a value that carries its own unit (``2min``) is left as written."""
    shown = text.safe(value)
    return f"{shown} {unit}" if unit and shown.isdigit() else shown


def pairs(values: Mapping[str, Any]) -> str:
    """``a = 1, b = 2`` (sorted by key)."""
    return ", ".join(f"{text.safe(k)} = {text.safe(v)}" for k, v in sorted(values.items()))


def colocations(values: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for item in values:
        resources = ", ".join(text.safe(r) for r in item.get("resources", ()))
        strong = bool(item.get("strong"))
        parts.append(f"with {resources} ({'strong, score ' + STRONG_SCORE if strong else 'score ' + WEAK_SCORE})")
    return "; ".join(parts)


def remote(settings: Mapping[str, Any]) -> str:
    name = settings.get("remote_node")
    if not name:
        return "none"
    out = f"{text.safe(name)} at {text.safe(settings.get('remote_node_address') or '?')}"
    if settings.get("remote_node_port"):
        out += f":{text.safe(settings['remote_node_port'])}"
    if settings.get("remote_node_timeout"):
        out += f" (connect timeout {with_unit(settings['remote_node_timeout'], 's')})"
    return out


def value(name: str, current: object, settings: Mapping[str, Any] | None = None) -> str:
    """One setting's value as an operator reads it."""
    _label, unset, unit = SETTINGS.get(name, (name, "not set", ""))
    if name == "live_migration":
        return yes_no(current)
    if name == "remote_node":
        return remote(settings or {"remote_node": current})
    if not is_set(current):
        return unset
    if isinstance(current, Mapping):
        return pairs(current)
    if name == "colocations" and isinstance(current, Sequence):
        return colocations(current)  # type: ignore[arg-type]
    if isinstance(current, Sequence) and not isinstance(current, str):
        return "; ".join(text.safe(item) for item in current)
    if isinstance(current, bool):
        return yes_no(current)
    return with_unit(current, unit)


def setting_rows(settings: Mapping[str, Any]) -> list[tuple[str, Text]]:
    """Every setting, labelled, in a fixed order; what is not set is dim."""
    rows: list[tuple[str, Text]] = []
    for name, (label, _unset, _unit) in SETTINGS.items():
        current = settings.get(name)
        shown = value(name, current, settings)
        rows.append((label, Text(shown, style="" if is_set(current) else "dim")))
    for name in sorted(set(settings) - set(SETTINGS) - set(REMOTE_PARTS)):
        rows.append((name, Text(value(name, settings[name]))))
    return rows
