"""How a VM's status is decided, from Ceph (the RBD group), the CIB (the primitive) and crm_mon.

``derive_status`` applies these rules in order; the first that matches wins:

===  ==========================================================================  ===========
 #   condition                                                                   status
===  ==========================================================================  ===========
 1   no RBD group of that name (whatever Pacemaker says)                         Undefined
 2   no primitive: not in the CIB and not in crm_mon, or in crm_mon only as an
     *orphan* (primitive deleted) that no longer runs                            Disabled
 2a  orphan still active and failed                                              Failed
 2b  orphan still active and managed (the cluster stops orphans)                 Stopping
 2c  orphan still active and unmanaged (nothing will stop it)                    Started
 3   primitive in the CIB but not (yet) in crm_mon's status                      Stopped
 4   ``failed`` flag (failed monitor, failed start being recovered, failed
     stop), or ``blocked`` with a recorded failure or fail-count                 Failed
 5   not active, target-role not Stopped, fail-count INFINITY on some node:
     it will not start again until a cleanup                                     Failed
 6   pending start, or role Starting                                             Starting
 7   pending stop, or role Stopping                                              Stopping
 8   active with role Started, Migrating, Promoted or Unpromoted                 Started
 9   anything else: target-role Stopped, no node may host it, unmanaged and
     inactive, role Unknown                                                      Stopped
===  ==========================================================================  ===========

Edge cases, decided:

* blocked without failure (e.g. unmanaged while running): rule 8, Started; ``status_notes`` says
  "blocked" / "unmanaged" so the console can flag it.
* live migration in progress (role Migrating, or pending Migrating): Started, on the source node.
* pending monitor on a running resource (the first monitor after a start): Started.
* fail-count below INFINITY on a resource that is back to Started (recovered monitor failure):
  Started, with a "fail-count" note until cleanup.
* target-role Stopped but still running (the stop has not been scheduled yet): Started, with a
  note; it turns Stopping when the stop begins.
* failure flags win over transitions: a recovery shows ``Stopping failed=true`` then
  ``Starting failed=true``; both read Failed until the resource is Started again.
"""

from __future__ import annotations

from vmconsole.domain.model import ResourceState, VmStatus
from vmconsole.domain.primitive import INFINITY, PrimitiveConfig

# crm_mon roles in which the resource is up on its node(s).
STARTED_ROLES = frozenset({"Started", "Migrating", "Promoted", "Unpromoted", "Master", "Slave"})


def _pending(resource: ResourceState, verb: str) -> bool:
    """crm_mon's ``pending`` attribute names the action in flight: "Starting", "Stopping"..."""
    return bool(resource.pending) and (resource.pending or "").lower().startswith(verb)


def _target_role(primitive: PrimitiveConfig | None, resource: ResourceState) -> str:
    # crm_mon omits target_role when the meta attribute is unset; the default is Started.
    return resource.target_role or (primitive.target_role if primitive else None) or "Started"


def _is_failed(resource: ResourceState, target_role: str) -> bool:
    if resource.failed:
        return True
    if resource.blocked and (resource.failures or resource.fail_count > 0):
        return True
    return not resource.active and target_role.lower() != "stopped" and resource.fail_count >= INFINITY


def derive_status(has_group: bool, primitive: PrimitiveConfig | None, resource: ResourceState | None) -> VmStatus:
    """The VM's status by the rules of this module's docstring."""
    return derive_status_and_node(has_group, primitive, resource)[0]


def derive_status_and_node(
    has_group: bool, primitive: PrimitiveConfig | None, resource: ResourceState | None
) -> tuple[VmStatus, str | None]:
    """The status and the node hosting the VM now (None when it runs nowhere).

    The node is the first node crm_mon lists for an active resource: during a live migration the
    source, during a stop the node it is stopping on, for a blocked failure the node it is stuck on.
    """
    if not has_group:
        return VmStatus.UNDEFINED, None
    node = resource.nodes[0] if resource is not None and resource.active and resource.nodes else None

    enabled = primitive is not None or (resource is not None and not resource.orphaned)
    if not enabled:
        if resource is None or not resource.active:
            return VmStatus.DISABLED, None
        if resource.failed:
            return VmStatus.FAILED, node
        return (VmStatus.STOPPING if resource.managed else VmStatus.STARTED), node

    if resource is None:
        return VmStatus.STOPPED, None
    if _is_failed(resource, _target_role(primitive, resource)):
        return VmStatus.FAILED, node
    if _pending(resource, "start") or resource.role == "Starting":
        return VmStatus.STARTING, node
    if _pending(resource, "stop") or resource.role == "Stopping":
        return VmStatus.STOPPING, node
    if resource.active and resource.role in STARTED_ROLES:
        return VmStatus.STARTED, node
    return VmStatus.STOPPED, node


def fail_count_text(count: int) -> str:
    return "INFINITY" if count >= INFINITY else str(count)


def status_notes(primitive: PrimitiveConfig | None, resource: ResourceState | None) -> tuple[str, ...]:
    """Short remarks an operator should see next to the status (flags the status alone hides)."""
    if resource is None:
        return ()
    notes: list[str] = []
    if resource.orphaned:
        notes.append("orphaned: its primitive was deleted")
    if resource.blocked:
        notes.append("blocked: the cluster will not act on it until a cleanup")
    if not resource.managed:
        notes.append("unmanaged")
    if resource.fail_count:
        text = f"fail-count {fail_count_text(resource.fail_count)}"
        if resource.fail_count >= INFINITY:
            text += " (banned from the failing node until a cleanup)"
        notes.append(text)
    if resource.role == "Migrating" or _pending(resource, "migrat"):
        notes.append("live migration in progress")
    if len(resource.nodes) > 1 and resource.role != "Migrating":
        notes.append(f"active on {len(resource.nodes)} nodes: {', '.join(resource.nodes)}")
    if (
        resource.active
        and _target_role(primitive, resource).lower() == "stopped"
        and not (_pending(resource, "stop") or resource.role == "Stopping")
    ):
        notes.append("target-role Stopped but still running")
    return tuple(notes)


def vm_manager_status(
    status: VmStatus, *, enabled: bool, target_role: str | None, node: str | None, blocked: bool
) -> str:
    """What vm_manager's ``status()`` prints for a VM in this state: ``Undefined`` (no group),
    ``Disabled`` (no primitive), else crm's own text: ``Started``, ``Stopped (disabled)`` when
    target-role is Stopped, ``Stopped``, ``FAILED <node> (blocked)``, ``Starting``, ``Stopping``."""
    if status is VmStatus.UNDEFINED:
        return "Undefined"
    if not enabled:
        return "Disabled"
    if status is VmStatus.FAILED:
        return " ".join(["FAILED", *([node] if node else []), *(["(blocked)"] if blocked else [])])
    if status is VmStatus.STOPPED:
        return "Stopped (disabled)" if target_role == "Stopped" else "Stopped"
    return status.value
