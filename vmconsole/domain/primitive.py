"""The Pacemaker primitive of a VM as the CIB says it: the read half (the write half is
``primitive_builder``).

``PrimitiveConfig`` and its parts are filled by the CIB parser of the backends from
``cibadmin --query``; nothing here runs a tool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vmconsole.domain.model import EMPTY_MAP

VM_AGENT = "ocf:seapath:VirtualDomain"
INFINITY = 1_000_000  # Pacemaker's score and fail-count "INFINITY"
DEFAULT_XML_DIR = "/etc/pacemaker"  # vm_manager's XML_PACEMAKER_PATH

_TRUE_WORDS = frozenset({"true", "on", "yes", "y", "1"})


def pacemaker_bool(text: str | None, default: bool) -> bool:
    """Read a Pacemaker boolean ("true", "yes", "on", "1"... as crm_is_true does)."""
    if text is None or not text.strip():
        return default
    return text.strip().lower() in _TRUE_WORDS


def pacemaker_score(text: str | None) -> int | None:
    """A score as an int: "INFINITY"/"+INFINITY" → 1000000, "-INFINITY" → -1000000."""
    if text is None:
        return None
    word = text.strip().upper()
    if word in ("INFINITY", "+INFINITY"):
        return INFINITY
    if word == "-INFINITY":
        return -INFINITY
    try:
        return max(-INFINITY, min(INFINITY, int(word)))
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------------
# Read side: the CIB configuration of a primitive


@dataclass(frozen=True)
class OperationConfig:
    """One ``<op>`` of a primitive. Times are kept as written ("120", "0s", "10")."""

    op_id: str
    name: str
    interval: str
    timeout: str | None
    attributes: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)  # on-fail, role...


@dataclass(frozen=True)
class LocationConstraint:
    """An ``rsc_location`` naming the resource (pin, cli-prefer, cli-ban, or hand-made)."""

    constraint_id: str
    resource: str
    node: str | None  # None for rule-based constraints
    score: str | None  # as written: "INFINITY", "-INFINITY", "700"...
    role: str | None = None  # "role" (2.1 name) or "rsc-role"
    resource_discovery: str | None = None
    has_rules: bool = False

    @property
    def score_value(self) -> int | None:
        return pacemaker_score(self.score)


@dataclass(frozen=True)
class ColocationConstraint:
    """An ``rsc_colocation`` naming the resource, simple (rsc/with-rsc) or with resource sets.

    ``resource_sets`` keeps the sets in document order; a simple constraint is shown as the two
    sets ``((rsc,), (with-rsc,))``. Pacemaker places later sets first, so in both forms each set
    follows ("is colocated with") the sets after it.
    """

    constraint_id: str
    score: str | None
    resource_sets: tuple[tuple[str, ...], ...]
    rsc_role: str | None = None
    with_rsc_role: str | None = None

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(r for group in self.resource_sets for r in group)

    @property
    def score_value(self) -> int | None:
        return pacemaker_score(self.score)


@dataclass(frozen=True)
class PrimitiveConfig:
    """A ``<primitive>`` of the CIB with the constraints that name it.

    ``meta`` holds the primitive's own meta attributes only (not those inherited from a parent
    group/clone or from rsc_defaults).
    """

    resource_id: str
    resource_class: str
    provider: str | None
    agent_type: str
    params: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    meta: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    utilization: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    operations: tuple[OperationConfig, ...] = ()
    locations: tuple[LocationConstraint, ...] = ()
    colocations: tuple[ColocationConstraint, ...] = ()
    parent: str | None = None  # enclosing group / clone id, if any

    @property
    def agent(self) -> str:
        """The agent as crm_mon spells it: ``ocf:seapath:VirtualDomain``, ``stonith:fence_x``..."""
        if self.provider:
            return f"{self.resource_class}:{self.provider}:{self.agent_type}"
        return f"{self.resource_class}:{self.agent_type}"

    @property
    def is_vm(self) -> bool:
        return self.agent == VM_AGENT

    @property
    def target_role(self) -> str | None:
        return self.meta.get("target-role")

    @property
    def managed(self) -> bool:
        return pacemaker_bool(self.meta.get("is-managed"), default=True)

    def operation(self, name: str) -> OperationConfig | None:
        return next((op for op in self.operations if op.name == name), None)

    @property
    def pinned_host(self) -> str | None:
        """The node of vm_manager's ``pin-<vm>-on<node>`` constraint, if any."""
        pin = next((c for c in self.locations if c.constraint_id.startswith(f"pin-{self.resource_id}-on")), None)
        return pin.node if pin else None

    @property
    def preferred_host(self) -> str | None:
        """The node of the ``cli-prefer-<vm>`` constraint (crm_resource --move), if any."""
        prefer = next((c for c in self.locations if c.constraint_id == f"cli-prefer-{self.resource_id}"), None)
        return prefer.node if prefer else None
