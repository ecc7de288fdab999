"""The settings shared by create, clone, update and import (vm_manager's 'shared block'): checked, then
turned into the primitive vm_manager's ``enable_vm`` would build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.steps import check_crm_config_cmd, primitive_spec
from vmconsole.domain import units, validate
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.settings import VmSettings

RESERVED_META = ("target-role", "is-managed")
# the agent's own parameters: where it reads the domain and which hypervisor it drives
RESERVED_PARAMS = ("config", "hypervisor")


@dataclass(frozen=True)
class VmOptions:
    """The settings shared by create and clone (vm_manager's 'shared block')."""

    pinned_host: str | None = None
    preferred_host: str | None = None
    live_migration: bool | None = None
    migration_user: str | None = None
    stop_timeout: str | int | None = None
    migrate_to_timeout: str | int | None = None
    migration_downtime: str | int | None = None
    priority: str | int | None = None
    pacemaker_meta: Mapping[str, Any] | None = None
    pacemaker_params: Mapping[str, Any] | None = None
    pacemaker_utilization: Mapping[str, Any] | None = None
    crm_config_cmd: Sequence[str] = ()
    metadata: Mapping[str, Any] | None = None
    enable: bool = True
    start: bool = True  # False: --nostart (enabled with target-role Stopped)


def check_options(services: Services, options: VmOptions, base: VmSettings, nodes: list[str]) -> VmSettings:
    """Validate the shared options and merge them over ``base``; nothing is changed on error."""
    changes: dict[str, Any] = {}
    # an empty string clears the setting (update in place); a node name sets it
    if options.pinned_host == "":
        changes["pinned_host"] = None
    elif options.pinned_host is not None:
        changes["pinned_host"] = validate.node_name(options.pinned_host, nodes, field="pinned_host")
        changes["preferred_host"] = None
    if options.preferred_host == "":
        changes["preferred_host"] = None
    elif options.preferred_host is not None:
        changes["preferred_host"] = validate.node_name(options.preferred_host, nodes, field="preferred_host")
        if not options.pinned_host:
            changes["pinned_host"] = None
    observer = services.observer() if options.pinned_host or options.preferred_host else None
    for host_field in ("pinned_host", "preferred_host"):
        if observer and getattr(options, host_field) == observer:
            raise ValidationError(
                f"{observer} is the cluster's observer: it never runs VMs (every VM is banned from it)",
                field=host_field,
                hint=f"pick a hypervisor: {', '.join(n for n in nodes if n != observer) or 'none is online'}",
            )
    if options.live_migration is not None:
        changes["live_migration"] = bool(options.live_migration)
    if options.migration_user is not None:
        if not isinstance(options.migration_user, str) or not units.NAME_PATTERN.fullmatch(options.migration_user):
            raise ValidationError("must be a user name (ASCII letters, digits, '_', '-', '.')", field="migration_user")
        changes["migration_user"] = options.migration_user
    for name in ("stop_timeout", "migrate_to_timeout"):
        value = getattr(options, name)
        if value is not None:
            changes[name] = validate.timeout_seconds(value, name)
    if options.migration_downtime is not None:
        changes["migration_downtime"] = str(validate.count(options.migration_downtime, "migration_downtime"))
    if options.priority is not None:
        text = str(options.priority)
        if isinstance(options.priority, bool) or not text.lstrip("-+").isdigit():
            raise ValidationError(f"must be an integer, got {options.priority!r}", field="priority")
        changes["priority"] = text
    for name in ("pacemaker_meta", "pacemaker_params", "pacemaker_utilization"):
        value = getattr(options, name)
        if value is not None:
            reserved = {"pacemaker_meta": RESERVED_META, "pacemaker_params": RESERVED_PARAMS}.get(name, ())
            changes[name] = validate.pacemaker_options(value, name, reserved=reserved)
    if options.crm_config_cmd:
        if isinstance(options.crm_config_cmd, str):
            raise ValidationError("give a list of commands", field="crm_config_cmd")
        for line in options.crm_config_cmd:
            if not isinstance(line, str) or not line.strip() or "\n" in line:
                raise ValidationError(f"each command is one non-empty line, got {line!r}", field="crm_config_cmd")
        if not services.pacemaker.crmsh_installed():
            raise ValidationError(
                "extra crm configuration needs crmsh ('crm'), which is not installed here", field="crm_config_cmd"
            )
        check_crm_config_cmd(options.crm_config_cmd)
        changes["crm_config_cmd"] = tuple(options.crm_config_cmd)
    merged = base.with_changes(**changes)
    # what is asked now must make a valid primitive (reserved meta, utilization integers...); stored
    # values another tool accepted are left out with a warning where the primitive is built instead
    primitive_spec(services, "probe", VmSettings().with_changes(**changes), start=False, remote_nodes=())
    return merged


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"expected key = value pairs, got {type(metadata).__name__}", field="metadata")
    return {
        validate.metadata_key(k, field="metadata"): validate.metadata_value(v, field=f"metadata.{k}")
        for k, v in metadata.items()
    }
