"""Read the CIB (``cibadmin --query``): the primitives with their constraints, the cluster name, the
resource ids, and a VM's own elements (to put them back).

Written against Pacemaker 2.1.5; the fixtures in ``tests/fixtures/pacemaker`` are real outputs of
its tools. Pure functions: text in, frozen records out. All parsing goes through ``xmlsafe.parse``
(no entities, no DTD, no network). The helpers both Pacemaker parsers share live here too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from lxml import etree

from vmconsole.domain import xmlsafe
from vmconsole.domain.errors import BackendError, ValidationError
from vmconsole.domain.primitive import (
    INFINITY,
    ColocationConstraint,
    LocationConstraint,
    OperationConfig,
    PrimitiveConfig,
    pacemaker_bool,
)

BACKEND = "pacemaker"
CONTAINERS = ("group", "clone", "bundle")


# ------------------------------------------------------------------------------------------------
# Helpers of both parsers


def flag(element: etree._Element, name: str, default: bool = False) -> bool:
    return pacemaker_bool(element.get(name), default)


def integer(text: str | None, default: int = 0) -> int:
    """An integer attribute ("-5", "12ms"...); "INFINITY" is Pacemaker's 1000000."""
    if text is None:
        return default
    word = text.strip()
    if word.upper() in ("INFINITY", "+INFINITY"):
        return INFINITY
    match = re.match(r"-?[0-9]+", word)
    return int(match.group()) if match else default


def parse_tool_output(text: str | bytes, what: str, *, compact: bool = False) -> etree._Element:
    """Output of a cluster tool: not XML is the tool's failure, not the user's input error."""
    try:
        return xmlsafe.parse(text, what=what, compact=compact)
    except ValidationError as exc:
        raise BackendError(BACKEND, exc.message) from exc


# ------------------------------------------------------------------------------------------------
# CIB configuration


def _nvpairs(blocks: Iterable[etree._Element]) -> Mapping[str, str]:
    """Merge nvpair blocks; the first value of a name wins, as Pacemaker does for equal scores.

    Rules inside blocks are not evaluated: a rule-bound value is read like any other.
    """
    values: dict[str, str] = {}
    for block in blocks:
        for pair in block.iterfind("nvpair"):
            name, value = pair.get("name"), pair.get("value")
            if name is not None and value is not None and name not in values:
                values[name] = value
    return MappingProxyType(values)


def _operations(primitive: etree._Element) -> tuple[OperationConfig, ...]:
    operations = []
    for op in primitive.iterfind("operations/op"):
        extra = {k: v for k, v in op.attrib.items() if k not in ("id", "name", "interval", "timeout")}
        operations.append(
            OperationConfig(
                op_id=op.get("id", ""),
                name=op.get("name", ""),
                interval=op.get("interval", "0"),
                timeout=op.get("timeout"),
                attributes=MappingProxyType({str(k): str(v) for k, v in extra.items()}),
            )
        )
    return tuple(operations)


def _set_members(constraint: etree._Element) -> list[tuple[str, ...]]:
    return [
        tuple(ref.get("id", "") for ref in resource_set.iterfind("resource_ref"))
        for resource_set in constraint.iterfind("resource_set")
    ]


def _locations(constraints: etree._Element | None) -> list[LocationConstraint]:
    found: list[LocationConstraint] = []
    if constraints is None:
        return found
    for element in constraints.iterfind("rsc_location"):
        # rsc-pattern (regular expression) constraints name no resource and are left out.
        names = [element.get("rsc")] if element.get("rsc") else [r for s in _set_members(element) for r in s]
        for name in names:
            if name:
                found.append(
                    LocationConstraint(
                        constraint_id=element.get("id", ""),
                        resource=name,
                        node=element.get("node"),
                        score=element.get("score"),
                        role=element.get("role") or element.get("rsc-role"),
                        resource_discovery=element.get("resource-discovery"),
                        has_rules=element.find("rule") is not None,
                    )
                )
    return found


def _colocations(constraints: etree._Element | None) -> list[ColocationConstraint]:
    found: list[ColocationConstraint] = []
    if constraints is None:
        return found
    for element in constraints.iterfind("rsc_colocation"):
        sets: list[tuple[str, ...]]
        if element.get("rsc"):
            sets = [(element.get("rsc", ""),), (element.get("with-rsc", ""),)]
            rsc_role, with_role = element.get("rsc-role"), element.get("with-rsc-role")
        else:
            sets = _set_members(element)
            first_set = element.find("resource_set")
            rsc_role = first_set.get("role") if first_set is not None else None
            with_role = None
        found.append(
            ColocationConstraint(
                constraint_id=element.get("id", ""),
                score=element.get("score"),
                resource_sets=tuple(sets),
                rsc_role=rsc_role,
                with_rsc_role=with_role,
            )
        )
    return found


def _primitive_parents(resources: etree._Element) -> Iterator[tuple[etree._Element, str | None]]:
    for element in resources.iter("primitive"):
        ancestor = element.getparent()
        parent: str | None = None
        while ancestor is not None and ancestor.tag != "resources":
            if ancestor.tag in CONTAINERS:
                parent = parent or ancestor.get("id")
            ancestor = ancestor.getparent()
        yield element, parent


def _configuration(cib_text: str | bytes) -> etree._Element:
    return _configuration_of(parse_tool_output(cib_text, "CIB"))


def _configuration_of(root: etree._Element) -> etree._Element:
    configuration = root if root.tag == "configuration" else root.find("configuration")
    if configuration is None:
        raise BackendError(BACKEND, f"the CIB has no <configuration> (root is <{root.tag}>)")
    return configuration


def parse_cib_primitives(cib_text: str | bytes) -> dict[str, PrimitiveConfig]:
    """Every primitive of a CIB (``cibadmin --query`` or a ``<configuration>``), by id.

    Each carries its params, meta, utilization, operations and the location and colocation
    constraints that name it (directly or through a resource set). Constraints naming the
    primitive's group or clone are attached to that container's id only, not to its members.
    """
    return _primitives(_configuration(cib_text))


def _primitives(configuration: etree._Element) -> dict[str, PrimitiveConfig]:
    resources = configuration.find("resources")
    constraints = configuration.find("constraints")
    # by resource, so that each primitive finds its own among a big cluster's thousand constraints
    locations: dict[str, list[LocationConstraint]] = {}
    for location in _locations(constraints):
        locations.setdefault(location.resource, []).append(location)
    colocations: dict[str, list[ColocationConstraint]] = {}
    for colocation in _colocations(constraints):
        for resource in dict.fromkeys(colocation.resources):
            colocations.setdefault(resource, []).append(colocation)

    primitives: dict[str, PrimitiveConfig] = {}
    if resources is None:
        return primitives
    for element, parent in _primitive_parents(resources):
        resource_id = element.get("id", "")
        primitives[resource_id] = PrimitiveConfig(
            resource_id=resource_id,
            resource_class=element.get("class", ""),
            provider=element.get("provider"),
            agent_type=element.get("type", ""),
            params=_nvpairs(element.iterfind("instance_attributes")),
            meta=_nvpairs(element.iterfind("meta_attributes")),
            utilization=_nvpairs(element.iterfind("utilization")),
            operations=_operations(element),
            locations=tuple(locations.get(resource_id, ())),
            colocations=tuple(colocations.get(resource_id, ())),
            parent=parent,
        )
    return primitives


def _cluster_name(configuration: etree._Element) -> str | None:
    """The ``cluster-name`` cluster property (crm_mon 2.1.5 does not print it)."""
    for pair in configuration.iterfind("crm_config/cluster_property_set/nvpair"):
        if pair.get("name") == "cluster-name":
            return pair.get("value")
    return None


@dataclass(frozen=True)
class CibConfiguration:
    """What a state read takes from the CIB's configuration, parsed once."""

    primitives: dict[str, PrimitiveConfig]
    cluster_name: str | None
    version: str | None  # ``admin_epoch.epoch.num_updates`` of a whole CIB; None for a bare <configuration>


def parse_cib(cib_text: str | bytes) -> etree._Element:
    """A whole CIB (or a section of it), without the indentation between elements."""
    return parse_tool_output(cib_text, "CIB", compact=True)


def attributes(element: etree._Element) -> dict[str, str]:
    """An element's attributes as a plain dict of strings."""
    return {str(k): str(v) for k, v in element.attrib.items()}


def cib_version(values: Mapping[str, str]) -> str:
    """``admin_epoch.epoch.num_updates`` of the CIB element's attributes."""
    return ".".join(values.get(k, "?") for k in ("admin_epoch", "epoch", "num_updates"))


def parse_cib_configuration(cib: str | bytes | etree._Element) -> CibConfiguration:
    root = cib if isinstance(cib, etree._Element) else parse_cib(cib)
    version = cib_version(attributes(root)) if root.tag == "cib" else None
    configuration = _configuration_of(root)
    return CibConfiguration(_primitives(configuration), _cluster_name(configuration), version)


# ------------------------------------------------------------------------------------------------
# A VM's own elements


def resource_ids(cib_text: str | bytes) -> set[str]:
    """Every resource id of the CIB (primitives, groups, clones...)."""
    configuration = _configuration(cib_text)
    return {e.get("id", "") for e in configuration.iterfind("resources//*[@id]")}


def _names_vm(constraint: etree._Element, vm: str, *, with_rsc: bool) -> bool:
    """A constraint of the VM: it names it (as rsc, or also as with-rsc), or it is one of its colocations."""
    cid = constraint.get("id", "")
    return (
        constraint.get("rsc") == vm
        or (with_rsc and constraint.get("with-rsc") == vm)
        or cid.startswith((f"colocation-{vm}-with", f"colocation-strong-{vm}-with"))
    )


def vm_fragment(cib_text: str | bytes, vm: str) -> str:
    """The VM's primitive and the constraints naming it as a ``<configuration>`` fragment (for
    ``cibadmin --modify``), to put them back as they were."""
    configuration = _configuration(cib_text)
    fragment = etree.Element("configuration")
    resources = etree.SubElement(fragment, "resources")
    constraints = etree.SubElement(fragment, "constraints")
    for primitive in configuration.iterfind("resources/primitive"):
        if primitive.get("id") == vm:
            resources.append(primitive)
    for constraint in configuration.iterfind("constraints/*"):
        if _names_vm(constraint, vm, with_rsc=True):
            constraints.append(constraint)
    return etree.tostring(fragment, encoding="unicode")


def with_vm_elements(
    cib_text: str | bytes,
    vm: str,
    primitive: etree._Element,
    remove_ids: set[str],
    add: Sequence[etree._Element],
) -> str | None:
    """The whole CIB with only the VM's elements changed: its primitive replaced, the constraints of
    ``remove_ids`` removed, ``add`` added; the epoch one higher (what a patch built from it needs).
    None when the VM has no primitive. Every other element stays as it is."""
    root = parse_tool_output(cib_text, "CIB")
    configuration = root.find("configuration")
    if root.tag != "cib" or configuration is None:
        raise BackendError(BACKEND, f"the CIB has no <configuration> (root is <{root.tag}>)")
    current = next((p for p in configuration.iterfind("resources//primitive") if p.get("id") == vm), None)
    if current is None:
        return None
    parent = current.getparent()
    assert parent is not None
    parent.replace(current, copy.deepcopy(primitive))
    section = configuration.find("constraints")
    if section is None:
        section = etree.SubElement(configuration, "constraints")
    for element in list(section):
        if element.get("id") in remove_ids:
            section.remove(element)
    section.extend(copy.deepcopy(element) for element in add)
    root.set("epoch", str(integer(root.get("epoch")) + 1))
    root.set("num_updates", "0")
    return etree.tostring(root, encoding="unicode")


def vm_elements(cib_text: str | bytes, vm: str, constraint_ids: set[str]) -> tuple[str | None, list[str]]:
    """The VM's primitive and the constraints of ``constraint_ids`` that exist, as XML texts."""
    configuration = _configuration(cib_text)
    primitive = next((p for p in configuration.iterfind("resources//primitive") if p.get("id") == vm), None)
    constraints = [c for c in configuration.iterfind("constraints/*") if c.get("id") in constraint_ids]
    return (
        etree.tostring(primitive, encoding="unicode") if primitive is not None else None,
        [etree.tostring(c, encoding="unicode") for c in constraints],
    )


def with_target_role(primitive: etree._Element, role: str) -> etree._Element:
    """A copy of ``primitive`` whose meta ``target-role`` is ``role`` (added to its first meta block, or
    a new block, when it has none)."""
    changed = copy.deepcopy(primitive)
    for nvpair in changed.iterfind("meta_attributes/nvpair[@name='target-role']"):
        nvpair.set("value", role)
        return changed
    block = changed.find("meta_attributes")
    if block is None:
        block = etree.SubElement(changed, "meta_attributes", id=f"{changed.get('id')}-meta_attributes")
    etree.SubElement(block, "nvpair", id=f"{block.get('id')}-target-role", name="target-role", value=role)
    return changed


_REFERENCE_ATTRIBUTES = ("rsc", "with-rsc", "first", "then")


def without_vm(cib_text: str | bytes, vm: str) -> str | None:
    """The whole CIB without the VM: its primitive and every constraint naming it go; a constraint of
    other resources whose sets name the VM (another VM's colocation with it) only loses the VM, or goes
    when fewer than two resources remain, since Pacemaker refuses a reference to a resource that does
    not exist. The epoch one higher; None when nothing changes."""
    root = parse_tool_output(cib_text, "CIB")
    configuration = root.find("configuration")
    if root.tag != "cib" or configuration is None:
        raise BackendError(BACKEND, f"the CIB has no <configuration> (root is <{root.tag}>)")
    changed = False
    for primitive in list(configuration.iterfind("resources//primitive")):
        if primitive.get("id") == vm and (parent := primitive.getparent()) is not None:
            parent.remove(primitive)
            changed = True
    own_prefixes = (f"colocation-{vm}-with", f"colocation-strong-{vm}-with")
    section = configuration.find("constraints")
    for constraint in list(section if section is not None else ()):
        constraint_id = str(constraint.get("id"))
        names_vm = any(constraint.get(a) == vm for a in _REFERENCE_ATTRIBUTES)
        if names_vm or (constraint.tag == "rsc_colocation" and constraint_id.startswith(own_prefixes)):
            constraint.getparent().remove(constraint)  # type: ignore[union-attr]
            changed = True
            continue
        references = [r for r in constraint.iter("resource_ref") if r.get("id") == vm]
        if not references:
            continue
        changed = True
        for reference in references:
            reference.getparent().remove(reference)  # type: ignore[union-attr]
        for resource_set in list(constraint.iterfind("resource_set")):
            if resource_set.find("resource_ref") is None:
                constraint.remove(resource_set)
        remaining = sum(1 for _ in constraint.iter("resource_ref"))
        if remaining < (1 if constraint.tag == "rsc_location" else 2):
            constraint.getparent().remove(constraint)  # type: ignore[union-attr]
    if not changed:
        return None
    root.set("epoch", str(integer(root.get("epoch")) + 1))
    root.set("num_updates", "0")
    return etree.tostring(root, encoding="unicode")


def constraint_ids(cib_text: str | bytes) -> set[str]:
    """The id of every constraint in the CIB."""
    return {str(c.get("id")) for c in _configuration(cib_text).iterfind("constraints/*") if c.get("id")}
