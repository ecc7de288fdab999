"""Which status (and node) an operator sees for each recorded cluster situation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from vmconsole.backends.cib import parse_cib_primitives
from vmconsole.backends.crm_mon import parse_crm_mon
from vmconsole.domain.model import Failure, ResourceState, VmStatus
from vmconsole.domain.primitive import INFINITY, PrimitiveConfig
from vmconsole.domain.status import derive_status, derive_status_and_node, status_notes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pacemaker"


def observed(scenario: str, vm: str) -> tuple[PrimitiveConfig | None, ResourceState | None]:
    snapshot = parse_crm_mon((FIXTURES / f"{scenario}.crm_mon.xml").read_text())
    primitives = parse_cib_primitives((FIXTURES / f"{scenario}.cib.xml").read_text())
    return primitives.get(vm), snapshot.resource(vm)


@pytest.mark.parametrize(
    ("scenario", "vm", "status", "node"),
    [
        ("healthy", "vm1", VmStatus.STARTED, "node1"),
        ("healthy", "vm2", VmStatus.STARTED, "node2"),
        ("healthy", "vm3", VmStatus.STARTED, "node3"),
        ("healthy", "vm4", VmStatus.STOPPED, None),  # target-role Stopped
        ("failed-monitor", "vm2", VmStatus.FAILED, "node2"),
        ("failed-start-recovering", "vm5", VmStatus.FAILED, "node1"),
        ("failed-start", "vm5", VmStatus.FAILED, None),  # Stopped, fail-count INFINITY
        ("failed-stop", "vm1", VmStatus.FAILED, "node1"),  # blocked, unmanaged
        ("nodes-degraded", "vm2", VmStatus.STARTED, "node1"),  # moved off the standby node
        ("nodes-degraded", "vm3", VmStatus.STOPPED, None),  # its only node is down
        ("maintenance", "vm3", VmStatus.STARTED, "node3"),  # unmanaged, still running
        ("starting", "vm4", VmStatus.STARTING, "node1"),
        ("stopping", "vm1", VmStatus.STOPPING, "node1"),
        ("migrating", "vm2", VmStatus.STARTED, "node2"),
        ("orphaned", "vm3", VmStatus.STOPPING, "node3"),  # primitive deleted, cluster stops it
    ],
)
def test_status_of_each_recorded_situation(scenario: str, vm: str, status: VmStatus, node: str | None) -> None:
    primitive, resource = observed(scenario, vm)
    assert derive_status_and_node(True, primitive, resource) == (status, node)
    assert derive_status(True, primitive, resource) is status


def test_no_rbd_group_is_undefined_whatever_pacemaker_says() -> None:
    primitive, resource = observed("healthy", "vm1")
    assert derive_status_and_node(False, primitive, resource) == (VmStatus.UNDEFINED, None)
    assert derive_status(False, None, None) is VmStatus.UNDEFINED


def test_group_without_primitive_is_disabled() -> None:
    assert derive_status_and_node(True, None, None) == (VmStatus.DISABLED, None)


def test_primitive_not_yet_in_crm_mon_is_stopped() -> None:
    primitive, _ = observed("healthy", "vm1")
    assert derive_status_and_node(True, primitive, None) == (VmStatus.STOPPED, None)


def test_crm_mon_alone_is_enough_to_know_the_vm_is_enabled() -> None:
    _, resource = observed("healthy", "vm1")
    assert derive_status(True, None, resource) is VmStatus.STARTED


# ------------------------------------------------------------------------------------------------
# Edge cases on synthetic states


def state(**changes: object) -> ResourceState:
    base = ResourceState(
        resource_id="vm1",
        agent="ocf:seapath:VirtualDomain",
        role="Started",
        target_role="Started",
        active=True,
        managed=True,
        blocked=False,
        failed=False,
        orphaned=False,
        nodes=("node1",),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


FAILURE = Failure("monitor", "node1", "not running", "", 7, None, 10_000)


@pytest.mark.parametrize(
    ("resource", "status"),
    [
        (state(blocked=True, managed=False), VmStatus.STARTED),  # blocked without failure
        (state(blocked=True, managed=False, failures=(FAILURE,)), VmStatus.FAILED),  # blocked with failure
        (state(role="Migrating"), VmStatus.STARTED),
        (state(pending="Migrating"), VmStatus.STARTED),
        (state(pending="Monitoring"), VmStatus.STARTED),  # first monitor after start
        (state(role="Started", pending="Starting"), VmStatus.STARTING),
        (state(role="Stopping", target_role="Stopped"), VmStatus.STOPPING),
        (state(role="Stopping", failed=True), VmStatus.FAILED),  # recovery after a failure
        (state(role="Starting", failed=True), VmStatus.FAILED),
        (state(role="Started", fail_count=1), VmStatus.STARTED),  # recovered, needs cleanup only
        (state(role="Stopped", active=False, nodes=(), fail_count=INFINITY), VmStatus.FAILED),
        (
            state(role="Stopped", active=False, nodes=(), target_role=None, fail_count=INFINITY),
            VmStatus.FAILED,
        ),
        (
            state(role="Stopped", active=False, nodes=(), target_role="Stopped", fail_count=INFINITY),
            VmStatus.STOPPED,  # asked to stay stopped: the failure does not matter now
        ),
        (state(role="Stopped", active=False, nodes=(), fail_count=3), VmStatus.STOPPED),
        (state(role="Stopped", active=False, nodes=(), managed=False), VmStatus.STOPPED),
        (state(role="Unknown", active=False, nodes=()), VmStatus.STOPPED),
        (state(role="Promoted"), VmStatus.STARTED),
    ],
)
def test_edge_cases(resource: ResourceState, status: VmStatus) -> None:
    assert derive_status(True, None, resource) is status


@pytest.mark.parametrize(
    ("resource", "status", "node"),
    [
        (state(orphaned=True, target_role=None), VmStatus.STOPPING, "node1"),
        (state(orphaned=True, target_role=None, managed=False), VmStatus.STARTED, "node1"),
        (state(orphaned=True, target_role=None, failed=True), VmStatus.FAILED, "node1"),
        (state(orphaned=True, role="Stopped", active=False, nodes=()), VmStatus.DISABLED, None),
    ],
)
def test_orphans(resource: ResourceState, status: VmStatus, node: str | None) -> None:
    assert derive_status_and_node(True, None, resource) == (status, node)


def test_notes_flag_what_the_status_hides() -> None:
    _, blocked = observed("failed-stop", "vm1")
    notes = status_notes(None, blocked)
    assert any(n.startswith("blocked") for n in notes)
    assert "unmanaged" in notes
    assert "fail-count 1" in notes

    _, banned = observed("failed-start", "vm5")
    assert any("INFINITY" in n and "cleanup" in n for n in status_notes(None, banned))

    _, migrating = observed("migrating", "vm2")
    assert "live migration in progress" in status_notes(None, migrating)

    _, orphan = observed("orphaned", "vm3")
    assert any(n.startswith("orphaned") for n in status_notes(None, orphan))

    assert status_notes(None, state(nodes=("node1", "node2"))) == ("active on 2 nodes: node1, node2",)
    assert status_notes(None, state(target_role="Stopped")) == ("target-role Stopped but still running",)
    assert status_notes(*observed("healthy", "vm1")) == ()
    assert status_notes(None, None) == ()


@pytest.mark.parametrize(
    ("status", "enabled", "target_role", "node", "blocked", "expected"),
    [
        (VmStatus.UNDEFINED, False, None, None, False, "Undefined"),
        (VmStatus.DISABLED, False, None, None, False, "Disabled"),
        (VmStatus.STARTED, True, "Started", "node1", False, "Started"),
        (VmStatus.STOPPED, True, "Stopped", None, False, "Stopped (disabled)"),
        (VmStatus.STOPPED, True, None, None, False, "Stopped"),
        (VmStatus.FAILED, True, None, "node2", True, "FAILED node2 (blocked)"),
        (VmStatus.STARTING, True, None, None, False, "Starting"),
    ],
)
def test_vm_managers_own_status_string(
    status: VmStatus, enabled: bool, target_role: str | None, node: str | None, blocked: bool, expected: str
) -> None:
    from vmconsole.domain.status import vm_manager_status

    assert vm_manager_status(status, enabled=enabled, target_role=target_role, node=node, blocked=blocked) == expected


def test_a_disk_names_its_vm() -> None:
    from vmconsole.domain import naming

    assert naming.vm_of_image("system_db1") == "db1"
    assert naming.vm_of_image("data_db1_2") == "db1"
    assert naming.vm_of_image("data_my_vm_x") is None and naming.vm_of_image("other") is None
