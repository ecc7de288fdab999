"""Which resources' status a CIB change can have changed, and a CIB of those resources alone.

crm_mon reports a primitive from the cluster's shared parts (the CIB's own attributes, the cluster
options and defaults, the nodes, their states and their attributes) and from the primitive's own: its
element in the configuration, its operation history on each node and its fail-count attributes.
Constraints decide where a resource goes, never how crm_mon reports it. So when the shared parts read
the same as before, crm_mon asked about the changed resources alone, from a CIB that holds only them,
reports them exactly as it would among all the others; the others keep their status.

Pure functions on parsed XML (``xmlsafe`` parses it); the pieces are bytes, compared as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lxml import etree

from vmconsole.backends.cib import CONTAINERS, attributes

# The CIB element's attributes that change with every write: its version and who wrote it last.
VOLATILE_CIB_ATTRIBUTES = frozenset(
    {"admin_epoch", "epoch", "num_updates", "cib-last-written", "update-origin", "update-client", "update-user"}
)
# Rewritten on a node's state at each resource update, by whichever part of the controller wrote; crm_mon
# never reads it.
VOLATILE_NODE_STATE_ATTRIBUTES = frozenset({"crm-debug-origin"})
# Transient node attributes that belong to one resource: "fail-count-<rsc>#<op>_<interval>".
RESOURCE_ATTRIBUTE_PREFIXES = ("fail-count-", "last-failure-")
# Configuration sections that hold no cluster-wide setting crm_mon reads for another resource's status.
_PER_RESOURCE_SECTIONS = ("resources", "constraints")


# an attribute's value as XML writes it between double quotes (no module for this one: the standard
# library's pulls in its HTTP client, a tenth of a second of a cold read's imports)
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


def _quoted(value: str) -> str:
    return value.translate(_ATTRIBUTE_ESCAPES)


def _bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, with_tail=False)


def attribute_resource(name: str) -> str | None:
    """The resource a transient node attribute belongs to (a fail count, a last failure), or None."""
    for prefix in RESOURCE_ATTRIBUTE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :].split("#", 1)[0] or None
    return None


def shared_cib_attributes(values: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The CIB element's attributes crm_mon reads (quorum, the DC, the schema), in a stable order."""
    return tuple(sorted((k, v) for k, v in values.items() if k not in VOLATILE_CIB_ATTRIBUTES))


@dataclass(frozen=True)
class ConfigurationPieces:
    """A ``<configuration>`` cut into what every resource shares and what each top-level primitive is."""

    shared: bytes  # every section but resources and constraints, in the CIB's order
    containers: bytes  # the groups, clones and bundles (a change there: ask about everything)
    contained: frozenset[str]  # the ids of containers and of the primitives inside them
    primitives: Mapping[str, bytes]  # top-level primitive id -> its element


@dataclass(frozen=True)
class StatusPieces:
    """A ``<status>`` cut into the nodes' own states and each resource's history on them."""

    shared: bytes  # each node state with its attributes, without any resource's history or fail counts
    histories: Mapping[str, bytes]  # resource id -> its history on each node and its fail-count attributes


def configuration_pieces(configuration: etree._Element) -> ConfigurationPieces:
    shared: list[bytes] = []
    containers: list[bytes] = []
    contained: set[str] = set()
    primitives: dict[str, bytes] = {}
    for section in configuration:
        if not isinstance(section.tag, str):
            continue  # a comment
        if section.tag not in _PER_RESOURCE_SECTIONS:
            shared.append(_bytes(section))
        elif section.tag == "resources":
            for resource in section:
                if not isinstance(resource.tag, str):
                    continue
                if resource.tag == "primitive":
                    primitives[resource.get("id", "")] = _bytes(resource)
                else:
                    containers.append(_bytes(resource))
                    if resource.tag in CONTAINERS:
                        inside = resource.iter(*CONTAINERS, "primitive")
                        contained.update(e.get("id", "") for e in inside)
    return ConfigurationPieces(
        b"".join(shared), b"".join(containers), frozenset(contained), MappingProxyType(primitives)
    )


def status_pieces(status: etree._Element) -> StatusPieces:
    shared: list[bytes] = []
    histories: dict[str, list[bytes]] = {}
    for node_state in status.iterfind("node_state"):
        node = node_state.get("id", "")
        own = sorted((k, v) for k, v in node_state.attrib.items() if k not in VOLATILE_NODE_STATE_ATTRIBUTES)
        shared.append(repr(own).encode())
        for child in node_state:
            if child.tag == "lrm":
                shared.append(repr(sorted(child.attrib.items())).encode())
                for history in child.iterfind("lrm_resources/lrm_resource"):
                    histories.setdefault(history.get("id", ""), []).extend((node.encode(), _bytes(history)))
            elif child.tag == "transient_attributes":
                for element in child.iter():
                    if element.tag == "nvpair" and (resource := attribute_resource(element.get("name", ""))):
                        histories.setdefault(resource, []).extend((node.encode(), _bytes(element)))
                    elif isinstance(element.tag, str):
                        shared.append(repr((element.tag, sorted(element.attrib.items()))).encode())
            elif isinstance(child.tag, str):
                shared.append(_bytes(child))
    return StatusPieces(b"\n".join(shared), MappingProxyType({rid: b"".join(p) for rid, p in histories.items()}))


@dataclass(frozen=True)
class CibPieces:
    """A whole CIB in the pieces the next one is compared with."""

    attributes: tuple[tuple[str, str], ...]  # the CIB element's, as ``shared_cib_attributes`` keeps them
    configuration: ConfigurationPieces
    status: StatusPieces


def cib_pieces(root: etree._Element) -> CibPieces:
    configuration = root.find("configuration")
    return CibPieces(
        shared_cib_attributes(attributes(root)),
        configuration_pieces(configuration if configuration is not None else etree.Element("configuration")),
        status_pieces(status_of(root)),
    )


def status_of(root: etree._Element) -> etree._Element:
    """The CIB's status section (an empty one when it has none)."""
    status = root.find("status")
    return status if status is not None else etree.Element("status")


def changed_resources(old: CibPieces, new: CibPieces) -> set[str] | None:
    """The resources whose own pieces differ between two CIBs; None when a shared piece differs, or a
    changed resource is (in) a group or clone: ask about everything."""
    if (
        old.attributes != new.attributes
        or old.configuration.shared != new.configuration.shared
        or old.configuration.containers != new.configuration.containers
        or old.status.shared != new.status.shared
    ):
        return None
    changed: set[str] = set()
    for was, now in (
        (old.configuration.primitives, new.configuration.primitives),
        (old.status.histories, new.status.histories),
    ):
        changed.update(rid for rid in was.keys() | now.keys() if was.get(rid) != now.get(rid))
    if any(rid.split(":", 1)[0] in new.configuration.contained for rid in changed):
        return None
    return changed


def subset_cib(
    cib_attributes: Mapping[str, str], configuration: ConfigurationPieces, status: etree._Element, resources: set[str]
) -> str:
    """A whole CIB for crm_mon, with the shared parts of this one and ``resources`` alone: their
    primitives, their histories and their fail counts; no constraint."""
    opening = " ".join(f'{name}="{_quoted(value)}"' for name, value in cib_attributes.items())
    primitives = b"".join(configuration.primitives[rid] for rid in sorted(resources) if rid in configuration.primitives)
    nodes = etree.Element("status")
    for node_state in status.iterfind("node_state"):
        shell = etree.SubElement(nodes, "node_state", attributes(node_state))
        for child in node_state:
            if child.tag == "lrm":
                lrm = etree.SubElement(shell, "lrm", attributes(child))
                histories = etree.SubElement(lrm, "lrm_resources")
                for history in child.iterfind("lrm_resources/lrm_resource"):
                    if history.get("id", "") in resources:
                        histories.append(copy.deepcopy(history))
            elif child.tag == "transient_attributes":
                kept = copy.deepcopy(child)
                for pair in list(kept.iter("nvpair")):
                    owner = attribute_resource(pair.get("name", ""))
                    if owner is not None and owner not in resources:
                        parent = pair.getparent()
                        if parent is not None:
                            parent.remove(pair)
                shell.append(kept)
            elif isinstance(child.tag, str):
                shell.append(copy.deepcopy(child))
    return b"".join(
        (
            f"<cib {opening}><configuration>".encode(),
            configuration.shared,
            b"<resources>",
            primitives,
            b"</resources><constraints/></configuration>",
            _bytes(nodes),
            b"</cib>",
        )
    ).decode()
