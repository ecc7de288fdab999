"""The Pacemaker parsers of the backends (crm_mon and the CIB), on recorded outputs of the real tools."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from vmconsole.backends.cib import parse_cib_configuration, parse_cib_primitives
from vmconsole.backends.crm_mon import parse_crm_mon, parse_pacemaker_time
from vmconsole.domain.errors import BackendError
from vmconsole.domain.model import NodeStatus
from vmconsole.domain.pacemaker_status import CrmMonSnapshot
from vmconsole.domain.primitive import INFINITY, VM_AGENT
from vmconsole.domain.units import duration_ms

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pacemaker"


def crm_mon(scenario: str) -> CrmMonSnapshot:
    return parse_crm_mon((FIXTURES / f"{scenario}.crm_mon.xml").read_text())


def cib_text(scenario: str) -> str:
    return (FIXTURES / f"{scenario}.cib.xml").read_text()


def wrap(body: str, *, summary: str = "") -> str:
    """A minimal crm_mon document around hand-written resources/nodes."""
    return (
        '<pacemaker-result api-version="2.25" request="crm_mon --output-as=xml">'
        f"<summary>{summary}</summary>{body}"
        '<status code="0" message="OK"/></pacemaker-result>'
    )


# ------------------------------------------------------------------------------------------------
# crm_mon: cluster, nodes


def test_healthy_cluster_summary() -> None:
    snap = crm_mon("healthy")
    assert snap.dc == "node1"
    assert snap.quorum is True
    assert snap.maintenance_mode is False
    assert [(n.name, n.node_id, n.status, n.is_dc, n.kind) for n in snap.nodes] == [
        ("node1", "1", NodeStatus.ONLINE, True, "member"),
        ("node2", "2", NodeStatus.ONLINE, False, "member"),
        ("node3", "3", NodeStatus.ONLINE, False, "member"),
    ]
    assert [n.resources_running for n in snap.nodes] == [2, 3, 4]


def test_standby_and_offline_nodes() -> None:
    snap = crm_mon("nodes-degraded")
    statuses = {n.name: n.status for n in snap.nodes}
    assert statuses == {"node1": NodeStatus.ONLINE, "node2": NodeStatus.STANDBY, "node3": NodeStatus.OFFLINE}
    assert [n.resources_running for n in snap.nodes] == [6, 0, 0]


def test_maintenance_node() -> None:
    node3 = crm_mon("maintenance").node("node3")
    assert node3 is not None and node3.status is NodeStatus.MAINTENANCE


def test_node_flags_precedence_unclean_and_remote() -> None:
    text = wrap(
        "<nodes>"
        '<node name="n1" id="1" online="false" standby="false" maintenance="false" unclean="true"'
        ' is_dc="false" resources_running="0" type="member"/>'
        '<node name="n2" id="2" online="true" standby="true" maintenance="true" unclean="false"'
        ' is_dc="true" resources_running="1" type="member"/>'
        '<node name="rn1" id="rn1" online="true" standby="false" maintenance="false" unclean="false"'
        ' is_dc="false" resources_running="0" type="remote"/>'
        "</nodes>"
    )
    snap = parse_crm_mon(text)
    assert [n.status for n in snap.nodes] == [NodeStatus.UNCLEAN, NodeStatus.MAINTENANCE, NodeStatus.ONLINE]
    assert snap.remote_nodes == ("rn1",)


def test_a_joining_node_is_pending_not_standby() -> None:
    # as crm_mon prints a node whose controller has not joined yet (it flags it standby too)
    text = wrap(
        "<nodes>"
        '<node name="n1" id="1" online="true" standby="true" standby_onfail="false" maintenance="false"'
        ' pending="true" unclean="false" is_dc="false" resources_running="0" type="member"/>'
        "</nodes>"
    )
    assert [n.status for n in parse_crm_mon(text).nodes] == [NodeStatus.PENDING]


def test_no_dc_means_quorum_unknown() -> None:
    snap = parse_crm_mon(wrap("", summary='<current_dc present="false"/>'))
    assert snap.dc is None
    assert snap.quorum is None


def test_cluster_name_comes_from_the_cib() -> None:
    # crm_mon 2.1.5 does not print it; the CIB property has it.
    assert crm_mon("healthy").cluster_name is None
    assert parse_cib_configuration(cib_text("healthy")).cluster_name == "seapath"


# ------------------------------------------------------------------------------------------------
# crm_mon: resources


def test_vms_started_on_their_nodes_and_one_disabled() -> None:
    snap = crm_mon("healthy")
    placed = {rid: (r.role, r.nodes) for rid, r in snap.vm_resources.items()}
    assert placed == {
        "vm1": ("Started", ("node1",)),
        "vm2": ("Started", ("node2",)),
        "vm3": ("Started", ("node3",)),
        "vm4": ("Stopped", ()),
    }
    vm4 = snap.resources["vm4"]
    assert vm4.target_role == "Stopped"
    assert not vm4.active and vm4.managed
    assert not (vm4.failed or vm4.blocked or vm4.orphaned)
    assert snap.resources["vm1"].agent == VM_AGENT
    assert snap.resources["vm1"].pending is None


def test_unrelated_resources_are_parsed_but_not_vms() -> None:
    snap = crm_mon("healthy")
    assert snap.resources["dummy1"].agent == "ocf:pacemaker:Dummy"
    assert snap.resources["dummy1"].nodes == ("node2",)
    assert "dummy1" not in snap.vm_resources
    # group members keep their own ids and know their group
    assert snap.resources["tool-a"].nodes == ("node3",)
    assert snap.parents["tool-a"] == "tools"
    assert "tools" not in snap.resources
    # the three instances of an anonymous clone become one resource on three nodes
    ping = snap.resources["ping"]
    assert ping.nodes == ("node1", "node2", "node3")
    assert ping.active and ping.role == "Started"
    assert snap.parents["ping"] == "ping-clone"


def test_unique_clone_instances_merge_under_the_base_id() -> None:
    resource = (
        '<resource id="web:{i}" resource_agent="ocf:pacemaker:Dummy" role="{role}" active="{active}"'
        ' orphaned="false" blocked="false" managed="true" failed="{failed}" failure_ignored="false"'
        ' nodes_running_on="{n}">{node}</resource>'
    )
    text = wrap(
        '<resources><clone id="web-clone" multi_state="false" unique="true" managed="true" disabled="false">'
        + resource.format(i=0, role="Started", active="true", failed="false", n=1, node='<node name="n1" id="1"/>')
        + resource.format(i=1, role="Stopped", active="false", failed="true", n=0, node="")
        + "</clone></resources>"
    )
    web = parse_crm_mon(text).resources["web"]
    assert (web.role, web.active, web.failed, web.nodes) == ("Started", True, True, ("n1",))


def test_pending_operations() -> None:
    assert crm_mon("starting").resources["vm4"].role == "Starting"
    assert crm_mon("starting").resources["vm4"].nodes == ("node1",)
    assert crm_mon("stopping").resources["vm1"].role == "Stopping"
    assert crm_mon("migrating").resources["vm2"].role == "Migrating"
    text = wrap(
        '<resources><resource id="vm1" resource_agent="ocf:seapath:VirtualDomain" role="Started"'
        ' target_role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false"'
        ' failure_ignored="false" nodes_running_on="1" pending="Monitoring"><node name="n1" id="1"/>'
        "</resource></resources>"
    )
    assert parse_crm_mon(text).resources["vm1"].pending == "Monitoring"


def test_orphan_resource() -> None:
    vm3 = crm_mon("orphaned").resources["vm3"]
    assert vm3.orphaned and vm3.active
    assert vm3.target_role is None


def test_blocked_unmanaged_failed_stop() -> None:
    vm1 = crm_mon("failed-stop").resources["vm1"]
    assert (vm1.blocked, vm1.managed, vm1.failed, vm1.active) == (True, False, True, True)
    assert vm1.target_role == "Stopped"
    assert [f.summary() for f in vm1.failures] == ["stop on node1: forced stop failed (rc=1)"]


# ------------------------------------------------------------------------------------------------
# crm_mon: failures and fail counts


def test_failed_monitor_failure_and_fail_count() -> None:
    snap = crm_mon("failed-monitor")
    vm2 = snap.resources["vm2"]
    assert vm2.failed and vm2.role == "Started"
    assert vm2.fail_count == 1
    assert snap.fail_counts == {"vm2": {"node2": 1}}
    (failure,) = vm2.failures
    assert failure.operation == "monitor"
    assert failure.node == "node2"
    assert failure.exit_status == "not running"
    assert failure.exit_reason == "domain vm2 is not running"
    assert failure.exit_code == 7
    assert failure.interval_ms == 10_000
    assert failure.when is not None and failure.when.tzinfo is not None
    assert failure.when.utcoffset() == UTC.utcoffset(None)
    assert failure.summary() == "monitor on node2: domain vm2 is not running (rc=7)"
    assert snap.failures == (failure,)
    assert snap.resources["vm1"].failures == ()


def test_failed_start_has_fail_count_infinity() -> None:
    vm5 = crm_mon("failed-start").resources["vm5"]
    assert (vm5.role, vm5.target_role, vm5.active, vm5.failed) == ("Stopped", "Started", False, False)
    assert vm5.fail_count == INFINITY
    assert [f.summary() for f in vm5.failures] == ["start on node1: Failed to start virtual domain vm5. (rc=1)"]


def test_failure_of_a_task_with_underscore_maps_to_its_resource() -> None:
    text = wrap(
        '<resources><resource id="vm_a" resource_agent="ocf:seapath:VirtualDomain" role="Started"'
        ' active="true" orphaned="false" blocked="false" managed="true" failed="true" nodes_running_on="1">'
        '<node name="n1" id="1"/></resource></resources>'
        '<node_history><node name="n1"><resource_history id="vm_a" fail-count="INFINITY"/></node>'
        '<node name="n2"><resource_history id="vm_a" fail-count="2"/></node></node_history>'
        '<failures><failure op_key="vm_a_migrate_to_0" node="n1" exitstatus="error" exitreason=""'
        ' exitcode="1" call="9" status="complete" last-rc-change="2026-11-25 23:03:56Z" interval="0"'
        ' task="migrate_to"/>'
        "</failures>"
    )
    snap = parse_crm_mon(text)
    vm = snap.resources["vm_a"]
    assert [f.operation for f in vm.failures] == ["migrate_to"]
    assert vm.failures[0].summary() == "migrate_to on n1: error (rc=1)"
    assert vm.failures[0].when == datetime(2026, 11, 25, 23, 3, 56, tzinfo=UTC)
    assert vm.fail_count == INFINITY
    assert snap.fail_counts["vm_a"] == {"n1": INFINITY, "n2": 2}


# ------------------------------------------------------------------------------------------------
# crm_mon: errors


def test_not_connected_raises_backend_error_with_crm_mon_message() -> None:
    with pytest.raises(BackendError) as caught:
        crm_mon("not-connected")
    error = caught.value
    assert error.backend == "pacemaker"
    assert "Not connected" in error.message
    assert "Could not connect to launcher: Connection refused" in error.message
    assert error.hint is not None


@pytest.mark.parametrize(
    "text",
    ["", "crm_mon: command not found", "<cib/>", '<!DOCTYPE x [<!ENTITY e "boom">]><pacemaker-result/>'],
)
def test_unusable_output_is_a_backend_error(text: str) -> None:
    with pytest.raises(BackendError):
        parse_crm_mon(text)


# ------------------------------------------------------------------------------------------------
# Times and durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25 23:03:56Z", datetime(2026, 11, 25, 23, 3, 56, tzinfo=UTC)),
        ("2026-11-25T23:03:56+01:00", datetime(2026, 11, 25, 22, 3, 56, tzinfo=UTC)),
        ("1795652135", datetime(2026, 11, 26, 0, 15, 35, tzinfo=UTC)),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_parse_pacemaker_time(text: str | None, expected: datetime | None) -> None:
    assert parse_pacemaker_time(text) == expected


def test_asctime_is_read_as_local_time_and_returned_in_utc() -> None:
    parsed = parse_pacemaker_time("Thu Nov 26 00:15:35 2026")
    assert parsed is not None and parsed.tzinfo is UTC
    assert parsed == datetime(2026, 11, 26, 0, 15, 35).astimezone(UTC)


@pytest.mark.parametrize(("text", "ms"), [("10000", 10_000), ("10000ms", 10_000), ("10s", 10_000), (None, 0)])
def test_duration_ms(text: str | None, ms: int) -> None:
    assert duration_ms(text) == ms


# ------------------------------------------------------------------------------------------------
# CIB configuration


def test_vm_primitive_from_the_cib() -> None:
    vm1 = parse_cib_primitives(cib_text("healthy"))["vm1"]
    assert vm1.agent == VM_AGENT and vm1.is_vm
    assert (vm1.resource_class, vm1.provider, vm1.agent_type) == ("ocf", "seapath", "VirtualDomain")
    assert vm1.params["config"] == "/etc/pacemaker/vm1.xml"
    assert vm1.params["hypervisor"] == "qemu:///system"
    assert vm1.params["seapath"] == "true"
    assert vm1.target_role == "Started"
    assert vm1.managed is True
    assert vm1.meta["allow-migrate"] == "false"
    assert dict(vm1.utilization) == {"cpu": "1", "hv_memory": "512"}
    ops = {op.name: (op.interval, op.timeout) for op in vm1.operations}
    assert ops == {
        "start": ("0s", "120"),
        "stop": ("0s", "30"),
        "migrate_from": ("0s", "60"),
        "migrate_to": ("0s", "120"),
        "monitor": ("10", "60"),
    }
    assert vm1.parent is None


def test_constraints_attached_to_each_primitive() -> None:
    primitives = parse_cib_primitives(cib_text("healthy"))
    (prefer,) = primitives["vm1"].locations
    assert (prefer.constraint_id, prefer.node, prefer.score, prefer.role) == (
        "cli-prefer-vm1",
        "node1",
        "INFINITY",
        "Started",
    )
    assert primitives["vm1"].preferred_host == "node1"
    assert primitives["vm1"].pinned_host is None

    (pin,) = primitives["vm3"].locations
    assert (pin.constraint_id, pin.node, pin.score_value, pin.resource_discovery) == (
        "pin-vm3-onnode3",
        "node3",
        INFINITY,
        "exclusive",
    )
    assert primitives["vm3"].pinned_host == "node3"

    vm2 = primitives["vm2"]
    assert {c.constraint_id: c.score_value for c in vm2.locations} == {
        "cli-prefer-vm2": INFINITY,
        "cli-ban-vm2-on-node3": -INFINITY,
    }
    (colocation,) = vm2.colocations
    assert colocation.constraint_id == "colocation-vm2-withdummy1"
    assert colocation.score_value == 700
    assert colocation.resource_sets == (("vm2",), ("dummy1",))
    assert primitives["dummy1"].colocations == (colocation,)


def test_unrelated_and_nested_primitives_from_the_cib() -> None:
    primitives = parse_cib_primitives(cib_text("healthy"))
    assert primitives["dummy1"].agent == "ocf:pacemaker:Dummy"
    assert not primitives["dummy1"].is_vm
    assert primitives["dummy1"].operation("monitor") is not None
    assert primitives["tool-a"].parent == "tools"
    assert primitives["ping"].parent == "ping-clone"
    assert sorted(p for p, c in primitives.items() if c.is_vm) == ["vm1", "vm2", "vm3", "vm4"]


def test_changed_meta_attributes_are_seen() -> None:
    assert parse_cib_primitives(cib_text("failed-stop"))["vm1"].target_role == "Stopped"
    assert parse_cib_primitives(cib_text("migrating"))["vm2"].meta["allow-migrate"] == "true"


def test_deleted_primitive_is_gone_from_the_cib() -> None:
    assert "vm3" not in parse_cib_primitives(cib_text("orphaned"))


def test_simple_colocation_and_rule_location() -> None:
    text = (
        "<configuration><resources>"
        '<primitive id="a" class="ocf" provider="pacemaker" type="Dummy">'
        '<meta_attributes id="a-m"><nvpair id="a-m-1" name="is-managed" value="false"/></meta_attributes>'
        "</primitive>"
        '<primitive id="b" class="stonith" type="fence_x"/>'
        "</resources><constraints>"
        '<rsc_colocation id="c1" rsc="a" with-rsc="b" score="-INFINITY" rsc-role="Started"/>'
        '<rsc_location id="l1" rsc="a" score="100"><rule id="r" score="100"><expression id="e"'
        ' attribute="#uname" operation="eq" value="n1"/></rule></rsc_location>'
        "</constraints></configuration>"
    )
    primitives = parse_cib_primitives(text)
    a = primitives["a"]
    assert a.managed is False
    assert primitives["b"].agent == "stonith:fence_x"
    (colocation,) = a.colocations
    assert colocation.resource_sets == (("a",), ("b",))
    assert (colocation.score_value, colocation.rsc_role) == (-INFINITY, "Started")
    (location,) = a.locations
    assert location.has_rules and location.node is None


def test_cib_without_configuration_is_a_backend_error() -> None:
    with pytest.raises(BackendError):
        parse_cib_primitives("<status/>")


# ------------------------------------------------------------------------------------------------
# A VM's own elements, and the operation history


def test_operation_history_of_one_resource_on_every_node() -> None:
    from vmconsole.backends.crm_mon import parse_operation_history

    text = (FIXTURES / "failed-monitor.crm_mon.xml").read_text()
    history = parse_operation_history(text, "vm2")
    assert [(e.node, e.attributes["task"], e.attributes["rc"]) for e in history] == [
        ("node2", "start", "0"),
        ("node2", "monitor", "0"),
        ("node2", "monitor", "7"),
    ]
    assert history[-1].to_json()["node"] == "node2" and history[-1].to_json()["rc_text"] == "not running"
    assert parse_operation_history(text, "nosuchvm") == []


def test_resource_ids_name_every_resource_container_included() -> None:
    from vmconsole.backends.cib import resource_ids

    ids = resource_ids(cib_text("healthy"))
    assert {"vm1", "vm2", "dummy1"} <= ids
    assert all(rid for rid in ids)


def test_vm_fragment_holds_its_primitive_and_only_its_constraints() -> None:
    from lxml import etree

    from vmconsole.backends.cib import vm_fragment

    fragment = etree.fromstring(vm_fragment(cib_text("healthy"), "vm2"))
    assert fragment.tag == "configuration"
    assert [p.get("id") for p in fragment.iterfind("resources/primitive")] == ["vm2"]
    ids = [c.get("id") for c in fragment.iterfind("constraints/*")]
    assert "cli-prefer-vm2" in ids and "cli-ban-vm2-on-node3" in ids and "colocation-vm2-withdummy1" in ids
    assert not any("vm1" in (i or "") for i in ids)


def test_with_vm_elements_changes_only_the_vm_and_its_own_constraints() -> None:
    from lxml import etree

    from vmconsole.backends.cib import with_vm_elements
    from vmconsole.domain.primitive_builder import ColocationSpec, PrimitiveSpec, build_constraints, build_primitive

    original = cib_text("healthy")
    spec = PrimitiveSpec(name="vm2", priority="5", preferred_host="node1", colocations=(ColocationSpec(("dummy1",)),))
    own = {"cli-prefer-vm2", "colocation-vm2-withdummy1"}
    changed = with_vm_elements(original, "vm2", build_primitive(spec), own, build_constraints(spec))
    assert changed is not None
    root = etree.fromstring(changed)
    assert root.tag == "cib" and int(root.get("epoch", "0")) == int(etree.fromstring(original).get("epoch", "0")) + 1
    after, before = parse_cib_primitives(changed), parse_cib_primitives(original)
    assert after["vm2"].meta["priority"] == "5" and after["vm2"].preferred_host == "node1"
    assert {k: v for k, v in after.items() if k != "vm2"} == {k: v for k, v in before.items() if k != "vm2"}
    ids = [c.get("id") for c in root.iterfind("configuration/constraints/*")]
    # another tool's ban of vm2 is not vmconsole's: it stays
    assert "cli-ban-vm2-on-node3" in ids and "cli-prefer-vm1" in ids and "pin-vm3-onnode3" in ids
    assert with_vm_elements(original, "nosuchvm", build_primitive(PrimitiveSpec(name="nosuchvm")), set(), []) is None


def test_without_vm_removes_the_vm_and_takes_it_out_of_other_vms_colocations() -> None:
    from lxml import etree

    from vmconsole.backends.cib import with_vm_elements, without_vm
    from vmconsole.domain.primitive_builder import PrimitiveSpec, build_colocation, build_primitive

    original = cib_text("healthy")
    # vm1 keeps itself with vm2 and dummy1, and vm3 with vm2 alone (vm_manager's add_colocation shape)
    vm1 = parse_cib_primitives(original)["vm1"]
    assert vm1 is not None
    with_colocations = with_vm_elements(
        original,
        "vm3",
        build_primitive(PrimitiveSpec(name="vm3")),
        set(),
        [build_colocation("vm1", ("vm2", "dummy1")), build_colocation("vm3", ("vm2",))],
    )
    assert with_colocations is not None
    changed = without_vm(with_colocations, "vm2")
    assert changed is not None
    root = etree.fromstring(changed)
    assert "vm2" not in parse_cib_primitives(changed)
    constraints = {c.get("id"): c for c in root.iterfind("configuration/constraints/*")}
    # vm1's colocation stays, without vm2; vm3's is left with no partner, so it goes
    kept = constraints["colocation-vm1-withvm2-dummy1"]
    assert [r.get("id") for r in kept.iter("resource_ref")] == ["vm1", "dummy1"]
    assert "colocation-vm3-withvm2" not in constraints
    assert "cli-ban-vm2-on-node3" not in constraints and "cli-prefer-vm2" not in constraints
    assert not any(r.get("id") == "vm2" for r in root.iter("resource_ref"))
    assert without_vm(original, "nosuchvm") is None


def test_monitor_hosts_from_v1_v2_and_msgr2_only_monmaps() -> None:
    from vmconsole.backends.rbd import monitor_hosts

    both = {"addrvec": [{"type": "v2", "addr": "10.0.0.1:3300"}, {"type": "v1", "addr": "10.0.0.1:6789"}]}
    msgr2_only = {"addrvec": [{"type": "v2", "addr": "[fd00::2]:3300"}]}
    legacy = {"addrvec": []}
    dump = {
        "mons": [
            {"public_addrs": both},
            {"public_addrs": msgr2_only},
            {"public_addrs": legacy, "public_addr": "10.0.0.3:6789/0"},
        ]
    }
    assert monitor_hosts(dump) == [("10.0.0.1", 6789), ("fd00::2", 3300), ("10.0.0.3", 6789)]
    assert monitor_hosts({}) == []
