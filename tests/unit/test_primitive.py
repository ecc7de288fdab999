"""The VM primitive vmconsole writes: vm_manager's shape, its constraints, one CIB transaction."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from vmconsole.backends.cib import parse_cib_primitives
from vmconsole.backends.crm_mon import parse_crm_mon
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.primitive import INFINITY, VM_AGENT
from vmconsole.domain.primitive_builder import (
    ColocationSpec,
    PrimitiveSpec,
    build_ban_location,
    build_colocation,
    build_constraints,
    build_pin_location,
    build_prefer_location,
    build_primitive,
    enable_transaction,
    primitive_query_argv,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pacemaker"


def as_config(spec: PrimitiveSpec) -> Any:
    """Read back what the builder wrote, through the same parser as the live CIB."""
    fragment = enable_transaction(spec).xml_text
    return parse_cib_primitives(fragment)[spec.name]


# ------------------------------------------------------------------------------------------------
# vm_manager's shape


def test_default_primitive_is_vm_managers() -> None:
    config = as_config(PrimitiveSpec(name="vm1"))
    assert config.agent == VM_AGENT
    assert list(config.params.items()) == [
        ("force_stop", "false"),
        ("migration_downtime", "0"),
        ("config", "/etc/pacemaker/vm1.xml"),
        ("hypervisor", "qemu:///system"),
        ("seapath", "true"),
        ("migration_transport", "ssh"),
        ("migration_user", "root"),
    ]
    assert list(config.meta.items()) == [
        ("allow-migrate", "false"),
        ("is-managed", "true"),
        ("priority", "0"),
        ("target-role", "Started"),
    ]
    assert [(op.name, op.interval, op.timeout) for op in config.operations] == [
        ("start", "0s", "120"),
        ("stop", "0s", "30"),
        ("migrate_from", "0s", "60"),
        ("migrate_to", "0s", "120"),
        ("monitor", "10", "60"),
    ]
    assert dict(config.utilization) == {}
    assert config.locations == () and config.colocations == ()


def test_same_primitive_as_the_crmsh_made_fixture() -> None:
    # make_fixtures.sh writes vm1 the way crmsh does for vm_manager; the builder must agree.
    recorded = parse_cib_primitives((FIXTURES / "healthy.cib.xml").read_text())["vm1"]
    built = as_config(PrimitiveSpec(name="vm1", utilization={"cpu": "1", "hv_memory": "512"}))
    assert dict(built.params) == dict(recorded.params)
    assert dict(built.meta) == dict(recorded.meta)
    assert dict(built.utilization) == dict(recorded.utilization)
    assert built.operations == recorded.operations


def test_deterministic_ids() -> None:
    primitive = build_primitive(PrimitiveSpec(name="vm1", utilization={"cpu": "2"}))
    ids = [e.get("id") for e in primitive.iter() if e.get("id")]
    assert ids[:3] == ["vm1", "vm1-instance_attributes", "vm1-instance_attributes-force_stop"]
    assert "vm1-meta_attributes-target-role" in ids
    assert "vm1-monitor-10" in ids and "vm1-stop-0s" in ids
    assert "vm1-utilization-cpu" in ids
    assert len(ids) == len(set(ids))
    again = build_primitive(PrimitiveSpec(name="vm1", utilization={"cpu": "2"}))
    assert etree.tostring(primitive) == etree.tostring(again)


def test_options_reach_the_primitive() -> None:
    spec = PrimitiveSpec(
        name="vm2",
        xml_dir="/var/lib/vms/",
        stop_timeout="90",
        migrate_to_timeout="300",
        migration_downtime="200",
        migration_user="libvirtadmin",
        live_migration=True,
        priority="10",
        target_role="Stopped",
        managed=False,
        params={"migrate_options": "--unsafe", "force_stop": "true"},
        meta={"resource-stickiness": "100", "priority": "20"},
        utilization={"cpu": "4", "hv_memory": "4096"},
        remote_node="guest2",
        remote_addr="192.0.2.12",
        remote_port="3121",
        remote_connect_timeout="60s",
    )
    config = as_config(spec)
    assert config.params["config"] == "/var/lib/vms/vm2.xml"
    assert config.params["migration_user"] == "libvirtadmin"
    assert config.params["migration_downtime"] == "200"
    # custom params override a default in place and append the others
    names = list(config.params)
    assert names[0] == "force_stop" and config.params["force_stop"] == "true"
    assert names[-1] == "migrate_options"
    assert config.meta["allow-migrate"] == "true"
    assert config.meta["priority"] == "20"  # custom meta wins over the priority option
    assert config.target_role == "Stopped"
    assert config.managed is False
    assert config.meta["remote-node"] == "guest2"
    assert config.meta["remote-addr"] == "192.0.2.12"
    assert config.meta["remote-port"] == "3121"
    assert config.meta["remote-connect-timeout"] == "60s"
    assert config.operation("stop").timeout == "90"
    assert config.operation("migrate_to").timeout == "300"
    assert dict(config.utilization) == {"cpu": "4", "hv_memory": "4096"}


# ------------------------------------------------------------------------------------------------
# Constraints


def test_constraint_builders() -> None:
    pin = build_pin_location("vm1", "node2")
    assert dict(pin.attrib) == {
        "id": "pin-vm1-onnode2",
        "rsc": "vm1",
        "resource-discovery": "exclusive",
        "score": "INFINITY",
        "node": "node2",
    }
    prefer = build_prefer_location("vm1", "node3")
    assert dict(prefer.attrib) == {
        "id": "cli-prefer-vm1",
        "rsc": "vm1",
        "role": "Started",
        "node": "node3",
        "score": "INFINITY",
    }
    ban = build_ban_location("vm1", "observer")
    assert (ban.get("id"), ban.get("score")) == ("cli-ban-vm1-on-observer", "-INFINITY")

    strong = build_colocation("vm1", ("vm2", "vm3"), strong=True)
    assert (strong.get("id"), strong.get("score")) == ("colocation-strong-vm1-withvm2-vm3", "INFINITY")
    soft = build_colocation("vm1", ("vm2",))
    assert (soft.get("id"), soft.get("score")) == ("colocation-vm1-withvm2", "700")
    sets = [[r.get("id") for r in s] for s in strong.iterfind("resource_set")]
    assert sets == [["vm1"], ["vm2", "vm3"]]


def test_pinned_host_wins_over_preferred_host() -> None:
    spec = PrimitiveSpec(name="vm1", pinned_host="node1", preferred_host="node2", banned_hosts=("obs",))
    assert [c.get("id") for c in build_constraints(spec)] == ["cli-ban-vm1-on-obs", "pin-vm1-onnode1"]
    config = as_config(spec)
    assert config.pinned_host == "node1" and config.preferred_host is None


def test_transaction_document_holds_primitive_and_constraints() -> None:
    spec = PrimitiveSpec(name="vm1", preferred_host="node2", colocations=(ColocationSpec(("vm2",)),))
    transaction = enable_transaction(spec)
    assert transaction.argv[:5] == ("cibadmin", "--modify", "--scope", "configuration", "--xml-text")
    root = etree.fromstring(transaction.argv[5])
    assert root.tag == "configuration"
    assert [e.tag for e in root] == ["resources", "constraints"]
    assert [e.get("id") for e in root.find("constraints")] == ["cli-prefer-vm1", "colocation-vm1-withvm2"]
    assert primitive_query_argv("vm1")[-1] == "/cib/configuration/resources//primitive[@id='vm1']"


# ------------------------------------------------------------------------------------------------
# Refused input


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "vm-1"}, "name"),
        ({"name": "1vm"}, "name"),
        ({"name": "xml"}, "name"),
        ({"name": 12}, "name"),
        ({"stop_timeout": 30}, "stop_timeout"),
        ({"stop_timeout": "soon"}, "stop_timeout"),
        ({"migrate_to_timeout": 120.0}, "migrate_to_timeout"),
        ({"migration_downtime": "1s"}, "migration_downtime"),
        ({"migration_user": "root; reboot"}, "migration_user"),
        ({"priority": 5}, "priority"),
        ({"live_migration": "false"}, "live_migration"),
        ({"managed": 1}, "managed"),
        ({"target_role": "Promoted"}, "target_role"),
        ({"xml_dir": "relative/dir"}, "xml_dir"),
        ({"params": {"cpu": 2}}, "params.cpu"),
        ({"params": {"flag": True}}, "params.flag"),
        ({"params": {"x": None}}, "params.x"),
        ({"params": {1: "a"}}, "params"),
        ({"params": {"bad name": "a"}}, "params"),
        ({"params": {"note": "line\x00"}}, "params.note"),
        ({"params": [("a", "b")]}, "params"),
        ({"meta": {"target-role": "Started"}}, "meta"),
        ({"meta": {"is-managed": "false"}}, "meta"),
        ({"meta": {"remote-node": "g"}, "remote_node": "g2"}, "meta"),
        ({"utilization": {"cpu": "two"}}, "utilization.cpu"),
        ({"utilization": {"cpu": 2}}, "utilization.cpu"),
        ({"remote_addr": "10.0.0.1"}, "remote_addr"),
        ({"remote_node": "g", "remote_port": "99999"}, "remote_port"),
        ({"pinned_host": "node 1"}, "pinned_host"),
        ({"preferred_host": 3}, "preferred_host"),
        ({"banned_hosts": ["obs"]}, "banned_hosts"),
        ({"colocations": (("vm2",),)}, "colocations"),
    ],
)
def test_bad_options_are_refused_with_the_field_named(changes: dict[str, Any], field: str) -> None:
    options: dict[str, Any] = {"name": "vm1", **changes}
    with pytest.raises(ValidationError) as caught:
        PrimitiveSpec(**options)
    assert caught.value.field == field


def test_bad_colocation_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        ColocationSpec(("vm2", "bad id"))
    assert caught.value.field == "colocations"
    with pytest.raises(ValidationError):
        ColocationSpec(())


def test_spec_maps_are_frozen_copies() -> None:
    params = {"migrate_options": "--unsafe"}
    spec = PrimitiveSpec(name="vm1", params=params)
    params["migrate_options"] = "changed"
    assert spec.params["migrate_options"] == "--unsafe"
    with pytest.raises(TypeError):
        spec.params["x"] = "y"  # type: ignore[index]


# ------------------------------------------------------------------------------------------------
# Applied to a CIB file with the real tools (no daemon: CIB_file and crm_simulate -x only)

pacemaker_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("cibadmin", "crm_mon", "crm_simulate")),
    reason="Pacemaker command-line tools not installed",
)


def offline(argv: list[str] | tuple[str, ...], cib: Path) -> subprocess.CompletedProcess[str]:
    # CIB_file makes every tool work on the file: never on a cluster that may run on this machine.
    env = dict(os.environ, CIB_file=str(cib))
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=30, check=False)


def cib_copy(tmp_path: Path) -> Path:
    cib = tmp_path / "cib.xml"
    shutil.copyfile(FIXTURES / "healthy.cib.xml", cib)
    return cib


def epoch(cib: Path) -> int:
    return int(etree.parse(str(cib)).getroot().get("epoch", "0"))


@pacemaker_tools
def test_one_transaction_enables_the_vm_in_a_cib_file(tmp_path: Path) -> None:
    cib = cib_copy(tmp_path)
    assert offline(primitive_query_argv("vm6"), cib).returncode == 105  # not there yet
    before = epoch(cib)
    spec = PrimitiveSpec(
        name="vm6",
        live_migration=True,
        pinned_host="node2",
        banned_hosts=("node3",),
        colocations=(ColocationSpec(("vm2",), strong=True),),
        utilization={"cpu": "2"},
    )

    result = offline(enable_transaction(spec).argv, cib)

    assert result.returncode == 0, result.stderr
    assert epoch(cib) == before + 1  # one commit for primitive and constraints
    assert offline(primitive_query_argv("vm6"), cib).returncode == 0
    status = offline(["crm_mon", "--output-as=xml"], cib)
    vm6 = parse_crm_mon(status.stdout).resource("vm6")
    assert vm6 is not None and vm6.agent == VM_AGENT and vm6.target_role == "Started"
    config = parse_cib_primitives(cib.read_text())["vm6"]
    assert config.pinned_host == "node2"
    assert {c.constraint_id: c.score_value for c in config.locations} == {
        "cli-ban-vm6-on-node3": -INFINITY,
        "pin-vm6-onnode2": INFINITY,
    }
    assert [c.constraint_id for c in config.colocations] == ["colocation-strong-vm6-withvm2"]
    assert offline(["crm_verify", "--xml-file", str(cib)], cib).returncode == 0


@pacemaker_tools
def test_scheduler_places_the_vm_with_its_colocated_resource(tmp_path: Path) -> None:
    cib = cib_copy(tmp_path)
    spec = PrimitiveSpec(name="vm7", colocations=(ColocationSpec(("vm3",), strong=True),))
    assert offline(enable_transaction(spec).argv, cib).returncode == 0
    after = tmp_path / "after.xml"
    simulated = offline(
        ["crm_simulate", "--xml-file", str(cib), "--simulate", "--quiet", "--save-output", str(after)], cib
    )
    assert simulated.returncode == 0, simulated.stderr
    snapshot = parse_crm_mon(offline(["crm_mon", "--output-as=xml"], after).stdout)
    vm7 = snapshot.resource("vm7")
    assert vm7 is not None and vm7.role == "Started" and vm7.nodes == ("node3",)  # where vm3 runs


@pacemaker_tools
def test_a_rejected_transaction_changes_nothing(tmp_path: Path) -> None:
    cib = cib_copy(tmp_path)
    # Occupy the pin constraint's id with a resource: the merged CIB would have a duplicate id.
    taken = '<primitive id="pin-vm8-onnode1" class="ocf" provider="pacemaker" type="Dummy"/>'
    assert offline(["cibadmin", "--create", "--scope", "resources", "--xml-text", taken], cib).returncode == 0
    before = cib.read_text()

    result = offline(enable_transaction(PrimitiveSpec(name="vm8", pinned_host="node1")).argv, cib)

    assert result.returncode != 0
    assert "schema" in result.stderr
    assert cib.read_text() == before
    assert "vm8" not in parse_cib_primitives(cib.read_text())


def test_cib_durations_in_seconds() -> None:
    from vmconsole.domain.units import duration_seconds

    assert duration_seconds("30", 1) == 30
    assert duration_seconds("30s", 1) == 30
    assert duration_seconds("2min", 1) == 120
    assert duration_seconds("1h", 1) == 3600
    assert duration_seconds("500ms", 1) == 0.5
    assert duration_seconds(None, 7) == 7
    assert duration_seconds("soon", 7) == 7


def test_stored_settings_vm_manager_accepts_are_left_out_with_a_warning_not_a_refusal() -> None:
    from vmconsole.core.steps import _usable_spec

    values = {
        "name": "vm1",
        "xml_dir": "/etc/pacemaker",
        "stop_timeout": "30",
        "migrate_to_timeout": "120",
        "migration_downtime": "0",
        "migration_user": "root",
        "live_migration": False,
        "priority": "high",
        "target_role": "Started",
        "params": {},
        "meta": {"target-role": "Stopped", "resource-stickiness": "100"},
        "utilization": {"cpu": "1.5", "hv_memory": "512"},
        "remote_node": None,
        "remote_addr": None,
        "remote_port": None,
        "remote_connect_timeout": None,
        "pinned_host": "node one",
        "preferred_host": None,
        "banned_hosts": (),
        "colocations": (),
    }
    problems: list[str] = []
    spec = _usable_spec(values, problems)
    assert spec.priority == "0" and spec.pinned_host is None
    assert dict(spec.meta) == {"resource-stickiness": "100"} and dict(spec.utilization) == {"hv_memory": "512"}
    assert len(problems) == 4 and all("left out" in p for p in problems)
    assert any("utilization.cpu" in p for p in problems) and any("meta" in p for p in problems)
