"""The Pacemaker primitive of a VM as vmconsole writes it: the write half (the read half is
``primitive``).

``PrimitiveSpec`` and the builders produce exactly the XML that vm_manager's ``enable_vm`` makes
through crmsh (same attributes, same operation timeouts, the ids crmsh would give), plus its
placement constraints. Pure: nothing here runs a tool.

The whole enable is applied as ONE CIB request (see ``enable_transaction``)::

    cibadmin --modify --scope configuration --xml-text '<configuration>
        <resources><primitive id="vm1" .../></resources>
        <constraints><rsc_location id="pin-vm1-onnode1" .../>...</constraints>
    </configuration>'

``--modify`` merges the fragment into ``<configuration>``: missing elements are created, elements
with the same tag and id are updated. The CIB manager validates the merged result against the
schema before it commits, so the primitive and its constraints land together in one epoch or not
at all. (``--create --scope configuration`` does not work: it refuses because ``<resources>``
already exists.) Because ``--modify`` merges, it would also update a primitive that already exists;
callers check first that the VM is not enabled (``primitive_query_argv``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from lxml import etree

from vmconsole.domain import units
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.model import EMPTY_MAP
from vmconsole.domain.primitive import DEFAULT_XML_DIR

# ------------------------------------------------------------------------------------------------
# Write side: what to create


@dataclass(frozen=True)
class ColocationSpec:
    """``add_colocation``: keep the VM with these resources (INFINITY when strong, else 700)."""

    resources: tuple[str, ...]
    strong: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.resources, tuple) or not self.resources:
            raise ValidationError("give a non-empty tuple of resource names", field="colocations")
        for resource in self.resources:
            _check_xml_id(resource, "colocations")
        _check_bool(self.strong, "colocations.strong")


def _frozen_map(value: Any, field_name: str) -> Mapping[str, str]:
    """Check a user map (plain str keys and values) and freeze a copy of it."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"expected a mapping of strings, got {type(value).__name__}", field=field_name)
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValidationError(f"key {key!r} is a {type(key).__name__}, not a string", field=field_name)
        if not units.NAME_PATTERN.fullmatch(key):
            raise ValidationError(
                f"{key!r} is not a valid attribute name (letters, digits, '_', '.', '-'; no leading digit)",
                field=field_name,
            )
        _check_text(item, f"{field_name}.{key}")
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class PrimitiveSpec:
    """Everything ``enable`` needs to write a VM's primitive and constraints.

    Defaults are vm_manager's (those of its ``enable_vm``). Every CIB value is a string,
    as vm_manager passes them. ``managed`` defaults to True: vm_manager creates the primitive
    unmanaged and manages it in a later commit only so that the cluster does not act before the
    constraints exist; one transaction makes that dance unnecessary. ``pinned_host`` wins over
    ``preferred_host`` when both are given, as in vm_manager.
    """

    name: str
    xml_dir: str = DEFAULT_XML_DIR
    stop_timeout: str = "30"
    migrate_to_timeout: str = "120"
    migration_downtime: str = "0"
    migration_user: str = "root"
    live_migration: bool = False
    priority: str = "0"
    target_role: str = "Started"
    managed: bool = True
    params: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    meta: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    utilization: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    remote_node: str | None = None
    remote_addr: str | None = None
    remote_port: str | None = None
    remote_connect_timeout: str | None = None
    pinned_host: str | None = None
    preferred_host: str | None = None
    banned_hosts: tuple[str, ...] = ()  # observer and remote nodes: cli-ban-<vm>-on-<node>
    colocations: tuple[ColocationSpec, ...] = ()

    def __post_init__(self) -> None:
        _check_vm_name(self.name)
        _check_text(self.xml_dir, "xml_dir")
        if not self.xml_dir.startswith("/"):
            raise ValidationError("must be an absolute directory", field="xml_dir")
        _check_duration(self.stop_timeout, "stop_timeout", "a duration such as 30, 30s or 2min")
        _check_duration(self.migrate_to_timeout, "migrate_to_timeout", "a duration such as 120 or 2min")
        _check_pattern(self.migration_downtime, "migration_downtime", _DIGITS_RE, "milliseconds (digits)")
        _check_pattern(self.migration_user, "migration_user", units.NAME_PATTERN, "a user name")
        _check_bool(self.live_migration, "live_migration")
        _check_pattern(self.priority, "priority", _PRIORITY_RE, "an integer")
        _check_text(self.target_role, "target_role")
        if self.target_role not in ("Started", "Stopped"):
            raise ValidationError("must be Started or Stopped", field="target_role")
        _check_bool(self.managed, "managed")

        object.__setattr__(self, "params", _frozen_map(self.params, "params"))
        object.__setattr__(self, "meta", _frozen_map(self.meta, "meta"))
        object.__setattr__(self, "utilization", _frozen_map(self.utilization, "utilization"))
        for reserved, instead in (("target-role", "target_role"), ("is-managed", "managed")):
            if reserved in self.meta:
                raise ValidationError(
                    f"custom meta may not set {reserved}", field="meta", hint=f"use {instead} instead"
                )
        for key, value in self.utilization.items():
            # Pacemaker ignores (with a log warning only) utilization values that are not integers.
            if not _DIGITS_RE.fullmatch(value):
                raise ValidationError("utilization values are integers", field=f"utilization.{key}")

        if self.remote_node is not None:
            _check_xml_id(self.remote_node, "remote_node")
        if self.remote_addr is not None:
            _check_pattern(self.remote_addr, "remote_addr", _HOST_RE, "a host name or address")
        if self.remote_port is not None:
            _check_pattern(self.remote_port, "remote_port", _DIGITS_RE, "a TCP port")
            if not 0 < int(self.remote_port) < 65536:
                raise ValidationError("must be between 1 and 65535", field="remote_port")
        if self.remote_connect_timeout is not None:
            _check_duration(self.remote_connect_timeout, "remote_connect_timeout", "a duration")
        for remote_field, meta_name in _REMOTE_META:
            value = getattr(self, remote_field)
            if value is not None and self.remote_node is None and remote_field != "remote_node":
                raise ValidationError("needs remote_node", field=remote_field)
            if value is not None and meta_name in self.meta:
                raise ValidationError(f"custom meta {meta_name} conflicts with {remote_field}", field="meta")

        for host_field in ("pinned_host", "preferred_host"):
            host = getattr(self, host_field)
            if host is not None:
                _check_pattern(host, host_field, _NODE_RE, "a node name")
        if not isinstance(self.banned_hosts, tuple):
            raise ValidationError("give a tuple of node names", field="banned_hosts")
        for host in self.banned_hosts:
            _check_pattern(host, "banned_hosts", _NODE_RE, "a node name")
        if not isinstance(self.colocations, tuple) or not all(isinstance(c, ColocationSpec) for c in self.colocations):
            raise ValidationError("give a tuple of ColocationSpec", field="colocations")

    @property
    def config_path(self) -> str:
        return f"{self.xml_dir.rstrip('/')}/{self.name}.xml"


_REMOTE_META = (
    ("remote_node", "remote-node"),
    ("remote_addr", "remote-addr"),
    ("remote_port", "remote-port"),
    ("remote_connect_timeout", "remote-connect-timeout"),
)

_VM_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_NODE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_HOST_RE = re.compile(r"[A-Za-z0-9_.:\[\]-]+")
_DIGITS_RE = re.compile(r"[0-9]+")
_PRIORITY_RE = re.compile(r"[-+]?([0-9]+|INFINITY)")
# Characters XML 1.0 cannot carry, plus the other C0 controls that have no business in a value.
_FORBIDDEN_CHARS_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def _check_text(value: Any, field_name: str) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"expected a string, got {type(value).__name__} {value!r}", field=field_name)
    if _FORBIDDEN_CHARS_RE.search(value):
        raise ValidationError("contains control characters", field=field_name)


def _check_pattern(value: Any, field_name: str, pattern: re.Pattern[str], what: str) -> None:
    _check_text(value, field_name)
    if not pattern.fullmatch(value):
        raise ValidationError(f"{value!r} is not {what}", field=field_name)


def _check_duration(value: Any, field_name: str, what: str) -> None:
    _check_text(value, field_name)
    if units.parse_duration(value, strict=True) is None:
        raise ValidationError(f"{value!r} is not {what}", field=field_name)


def _check_bool(value: Any, field_name: str) -> None:
    # bool only: the string "false" is truthy and would silently enable live migration.
    if not isinstance(value, bool):
        raise ValidationError(f"expected true or false, got {type(value).__name__} {value!r}", field=field_name)


def _check_xml_id(value: Any, field_name: str) -> None:
    _check_pattern(value, field_name, units.NAME_PATTERN, "a valid Pacemaker id")


def _check_vm_name(value: Any) -> None:
    _check_text(value, "name")
    if value == "xml":
        raise ValidationError("'xml' is a reserved word", field="name")
    if not _VM_NAME_RE.fullmatch(value):
        # vm_manager allows a leading digit, but the CIB schema refuses such an id.
        raise ValidationError(
            f"{value!r} is not a VM name (ASCII letters and digits, starting with a letter)", field="name"
        )


# ------------------------------------------------------------------------------------------------
# Builders


def _nvpair_block(tag: str, block_id: str, pairs: Mapping[str, str]) -> etree._Element:
    block = etree.Element(tag, id=block_id)
    for name, value in pairs.items():
        etree.SubElement(block, "nvpair", id=f"{block_id}-{name}", name=name, value=value)
    return block


def _merged(defaults: dict[str, str], custom: Mapping[str, str]) -> dict[str, str]:
    """Defaults first, in vm_manager's order; a custom value replaces the default in place."""
    merged = dict(defaults)
    merged.update(custom)
    return merged


def primitive_params(spec: PrimitiveSpec) -> dict[str, str]:
    """The instance attributes, in vm_manager's order, custom params last (or in place)."""
    return _merged(
        {
            "force_stop": "false",
            "migration_downtime": spec.migration_downtime,
            "config": spec.config_path,
            "hypervisor": "qemu:///system",
            "seapath": "true",
            "migration_transport": "ssh",
            "migration_user": spec.migration_user,
        },
        spec.params,
    )


def primitive_meta(spec: PrimitiveSpec) -> dict[str, str]:
    """The meta attributes: vm_manager's four, custom meta, then the remote-node fields."""
    meta = _merged(
        {
            "allow-migrate": "true" if spec.live_migration else "false",
            "is-managed": "true" if spec.managed else "false",
            "priority": spec.priority,
            "target-role": spec.target_role,
        },
        spec.meta,
    )
    for remote_field, meta_name in _REMOTE_META:
        value = getattr(spec, remote_field)
        if value is not None:
            meta[meta_name] = value
    return meta


def primitive_operations(spec: PrimitiveSpec) -> tuple[tuple[str, str, str], ...]:
    """(name, interval, timeout) of each op, as vm_manager declares them (seconds)."""
    return (
        ("start", "0s", "120"),
        ("stop", "0s", spec.stop_timeout),
        ("migrate_from", "0s", "60"),
        ("migrate_to", "0s", spec.migrate_to_timeout),
        ("monitor", "10", "60"),
    )


def build_primitive(spec: PrimitiveSpec) -> etree._Element:
    """``<primitive>`` as vm_manager's ``crm configure primitive`` creates it (ids as crmsh names them)."""
    vm = spec.name
    primitive = etree.Element("primitive", id=vm)
    # lxml keeps attribute order; set them in crmsh's order for readable diffs.
    primitive.set("class", "ocf")
    primitive.set("provider", "seapath")
    primitive.set("type", "VirtualDomain")
    primitive.append(_nvpair_block("instance_attributes", f"{vm}-instance_attributes", primitive_params(spec)))
    primitive.append(_nvpair_block("meta_attributes", f"{vm}-meta_attributes", primitive_meta(spec)))
    operations = etree.SubElement(primitive, "operations")
    for name, interval, timeout in primitive_operations(spec):
        etree.SubElement(operations, "op", id=f"{vm}-{name}-{interval}", name=name, interval=interval, timeout=timeout)
    if spec.utilization:
        primitive.append(_nvpair_block("utilization", f"{vm}-utilization", spec.utilization))
    return primitive


def build_pin_location(vm: str, node: str) -> etree._Element:
    """vm_manager's pin: ``pin-<vm>-on<node>``, INFINITY, probes only on that node."""
    _check_xml_id(vm, "name")
    _check_pattern(node, "pinned_host", _NODE_RE, "a node name")
    element = etree.Element("rsc_location", id=f"pin-{vm}-on{node}", rsc=vm)
    element.set("resource-discovery", "exclusive")
    element.set("score", "INFINITY")
    element.set("node", node)
    return element


def build_prefer_location(vm: str, node: str) -> etree._Element:
    """``cli-prefer-<vm>``, exactly as ``crm_resource --move`` (vm_manager's preferred host) makes it."""
    _check_xml_id(vm, "name")
    _check_pattern(node, "preferred_host", _NODE_RE, "a node name")
    return etree.Element("rsc_location", id=f"cli-prefer-{vm}", rsc=vm, role="Started", node=node, score="INFINITY")


def build_ban_location(vm: str, node: str) -> etree._Element:
    """``cli-ban-<vm>-on-<node>``, exactly as ``crm_resource --ban`` makes it."""
    _check_xml_id(vm, "name")
    _check_pattern(node, "banned_hosts", _NODE_RE, "a node name")
    return etree.Element(
        "rsc_location", id=f"cli-ban-{vm}-on-{node}", rsc=vm, role="Started", node=node, score="-INFINITY"
    )


def colocation_id(vm: str, resources: tuple[str, ...], strong: bool) -> str:
    return f"colocation-{'strong-' if strong else ''}{vm}-with{'-'.join(resources)}"


def build_colocation(vm: str, resources: tuple[str, ...], strong: bool = False) -> etree._Element:
    """vm_manager's ``colocation colocation-[strong-]<vm>-with<r1-r2> <inf|700>: <vm> ( <r1> ... )``.

    crmsh turns the parenthesised list into a non-sequential resource set; the VM's own set comes
    first, so it follows the others (Pacemaker places later sets first).
    """
    _check_xml_id(vm, "name")
    ColocationSpec(tuple(resources), strong)  # validates the names
    constraint_id = colocation_id(vm, tuple(resources), strong)
    element = etree.Element("rsc_colocation", id=constraint_id, score="INFINITY" if strong else "700")
    own = etree.SubElement(element, "resource_set", id=f"{constraint_id}-0")
    etree.SubElement(own, "resource_ref", id=vm)
    others = etree.SubElement(element, "resource_set", id=f"{constraint_id}-1", sequential="false")
    for resource in resources:
        etree.SubElement(others, "resource_ref", id=resource)
    return element


def build_constraints(spec: PrimitiveSpec) -> list[etree._Element]:
    """Every constraint enable_vm would make: bans, then pin (or prefer), then colocations."""
    constraints = [build_ban_location(spec.name, host) for host in spec.banned_hosts]
    if spec.pinned_host is not None:
        constraints.append(build_pin_location(spec.name, spec.pinned_host))
    elif spec.preferred_host is not None:
        constraints.append(build_prefer_location(spec.name, spec.preferred_host))
    constraints.extend(build_colocation(spec.name, c.resources, c.strong) for c in spec.colocations)
    return constraints


def build_enable_fragment(spec: PrimitiveSpec) -> etree._Element:
    """``<configuration><resources>primitive</resources><constraints>...</constraints></configuration>``."""
    configuration = etree.Element("configuration")
    resources = etree.SubElement(configuration, "resources")
    resources.append(build_primitive(spec))
    constraints = build_constraints(spec)
    if constraints:
        section = etree.SubElement(configuration, "constraints")
        section.extend(constraints)
    return configuration


@dataclass(frozen=True)
class CibTransaction:
    """One CIB request that writes a primitive and all its constraints together."""

    xml_text: str

    @property
    def argv(self) -> tuple[str, ...]:
        return ("cibadmin", "--modify", "--scope", "configuration", "--xml-text", self.xml_text)


def enable_transaction(spec: PrimitiveSpec) -> CibTransaction:
    """The single ``cibadmin --modify`` that enables a VM (see the module docstring)."""
    return CibTransaction(etree.tostring(build_enable_fragment(spec), encoding="unicode"))


def primitive_query_argv(vm: str) -> tuple[str, ...]:
    """``cibadmin --query`` for one primitive: rc 0 when it exists, rc 105 (ENXIO) when it does not."""
    _check_xml_id(vm, "name")
    return ("cibadmin", "--query", "--xpath", f"/cib/configuration/resources//primitive[@id='{vm}']")
