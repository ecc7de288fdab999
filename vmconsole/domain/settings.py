"""A VM's configuration as vm_manager stores it: metadata keys on ``system_<vm>``.

``VmSettings`` decodes the internal ``_`` keys into typed fields and writes them back in exactly
vm_manager's format, so that VMs made by either tool stay usable by both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from vmconsole.domain.errors import ValidationError

# Keys vm_manager and vmconsole write themselves; every key starting with "_" is internal too.
RESERVED_KEYS = frozenset({"vm_name", "xml", "_base_xml"})

# metadata key -> attribute, for the plain string settings
_STRING_KEYS = {
    "_migration_user": "migration_user",
    "_stop_timeout": "stop_timeout",
    "_migrate_to_timeout": "migrate_to_timeout",
    "_migration_downtime": "migration_downtime",
    "_pinned_host": "pinned_host",
    "_preferred_host": "preferred_host",
    "_priority": "priority",
    "_disk_bus": "disk_bus",
    "_remote_node": "remote_node",
    "_remote_node_address": "remote_node_address",
    "_remote_node_port": "remote_node_port",
    "_remote_node_timeout": "remote_node_timeout",
}
_JSON_MAP_KEYS = {
    "_pacemaker_meta": "pacemaker_meta",
    "_pacemaker_params": "pacemaker_params",
    "_pacemaker_utilization": "pacemaker_utilization",
}
# vmconsole's own additions, in the same "_" namespace (vm_manager ignores keys it does not know)
COLOCATIONS_KEY = "_vmconsole_colocations"


def _frozen(value: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Colocation:
    resources: tuple[str, ...]
    strong: bool = False
    # the VM that made it: another tool's copy of the metadata (vm_manager's clone copies every key)
    # must not make its clone colocate as its source did
    owner: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"resources": list(self.resources), "strong": self.strong}
        if self.owner:
            data["owner"] = self.owner
        return data


@dataclass(frozen=True)
class VmSettings:
    live_migration: bool = False
    migration_user: str | None = None
    stop_timeout: str | None = None
    migrate_to_timeout: str | None = None
    migration_downtime: str | None = None
    pinned_host: str | None = None
    preferred_host: str | None = None
    crm_config_cmd: tuple[str, ...] = ()
    priority: str | None = None
    disk_bus: str | None = None
    pacemaker_meta: Mapping[str, str] = field(default_factory=_frozen)
    pacemaker_params: Mapping[str, str] = field(default_factory=_frozen)
    pacemaker_utilization: Mapping[str, str] = field(default_factory=_frozen)
    additional_disks: int = 0
    remote_node: str | None = None
    remote_node_address: str | None = None
    remote_node_port: str | None = None
    remote_node_timeout: str | None = None
    colocations: tuple[Colocation, ...] = ()

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> VmSettings:
        """Decode; a malformed value raises ValidationError naming the key (never silently dropped)."""
        values: dict[str, Any] = {}
        values["live_migration"] = metadata.get("_live_migration", "").strip().lower() == "true"
        for key, attr in _STRING_KEYS.items():
            if key in metadata:
                values[attr] = metadata[key]
        if metadata.get("_crm_config_cmd"):
            values["crm_config_cmd"] = tuple(line for line in metadata["_crm_config_cmd"].split("\n") if line)
        for key, attr in _JSON_MAP_KEYS.items():
            if key in metadata:
                values[attr] = _frozen(_json_map(metadata[key], key))
        if "_additional_disks" in metadata:
            try:
                count = json.loads(metadata["_additional_disks"])
            except ValueError as exc:
                raise ValidationError("is not a JSON integer", field="_additional_disks") from exc
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ValidationError("is not a non-negative integer", field="_additional_disks")
            values["additional_disks"] = count
        if COLOCATIONS_KEY in metadata:
            try:
                raw = json.loads(metadata[COLOCATIONS_KEY])
                values["colocations"] = tuple(
                    Colocation(
                        tuple(str(r) for r in item["resources"]),
                        bool(item.get("strong", False)),
                        str(item["owner"]) if item.get("owner") else None,
                    )
                    for item in raw
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValidationError("is not a list of colocations", field=COLOCATIONS_KEY) from exc
        return cls(**values)

    def to_metadata(self) -> dict[str, str]:
        """The ``_`` keys to write, in vm_manager's format (keys for unset values are absent)."""
        out: dict[str, str] = {}
        if self.live_migration:
            out["_live_migration"] = "true"
        for key, attr in _STRING_KEYS.items():
            value = getattr(self, attr)
            if value is not None:
                out[key] = value
        if self.pinned_host is not None:
            out.pop("_preferred_host", None)  # pinned wins, as in vm_manager
        if self.crm_config_cmd:
            out["_crm_config_cmd"] = "\n".join(self.crm_config_cmd)
        for key, attr in _JSON_MAP_KEYS.items():
            value = getattr(self, attr)
            if value:
                out[key] = json.dumps(dict(value), sort_keys=True)
        if self.additional_disks:
            out["_additional_disks"] = json.dumps(self.additional_disks)
        if self.colocations:
            out[COLOCATIONS_KEY] = json.dumps([c.to_json() for c in self.colocations])
        return out

    def managed_keys(self) -> set[str]:
        """Every internal key this class owns (to remove the ones an update unsets)."""
        return {
            "_live_migration",
            "_crm_config_cmd",
            "_additional_disks",
            COLOCATIONS_KEY,
            *_STRING_KEYS,
            *_JSON_MAP_KEYS,
        }

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = dict(value)
            elif f.name == "colocations":
                value = [c.to_json() for c in value]
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data

    def with_changes(self, **changes: Any) -> VmSettings:
        return replace(self, **changes)


def _json_map(text: str, key: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError("is not valid JSON", field=key) from exc
    if not isinstance(value, dict):
        raise ValidationError(f"must be a JSON object, found {type(value).__name__}", field=key)
    return {str(k): str(v) for k, v in value.items()}


def user_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The user's own keys: not reserved, not internal."""
    return {k: v for k, v in metadata.items() if k not in RESERVED_KEYS and not k.startswith("_")}
