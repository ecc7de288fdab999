"""The multi-node lab's plan, files and fence agent, without bringing anything up."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from vmconsole.lab import fence, network, nodes
from vmconsole.lab.lab import Lab, LabError, nodes_plan
from vmconsole.lab.state import LabState


def test_plan_names_addresses_and_the_observer() -> None:
    planned = nodes.plan(3, observer=True)
    assert [(n.name, n.address, n.observer) for n in planned] == [
        ("n1", "10.213.0.1", False),
        ("n2", "10.213.0.2", False),
        ("n3", "10.213.0.3", True),
    ]
    assert nodes_plan(1, observer=False) == []  # the single-node lab
    for count, observer in ((0, False), (4, False), (1, True)):
        with pytest.raises(ValueError):
            nodes.plan(count, observer)


def test_cluster_conf_as_seapath_writes_it() -> None:
    # roles/configure_ha/templates/cluster.conf.j2: two hypervisors and an observer, or three hypervisors
    assert nodes.cluster_conf(nodes.plan(3, observer=True)) == (
        "[machines]\nhypervisor1 = n1\nhypervisor2 = n2\nobserver = n3\n"
    )
    assert nodes.cluster_conf(nodes.plan(3, observer=False)) == (
        "[machines]\nhypervisor1 = n1\nhypervisor2 = n2\nhypervisor3 = n3\n"
    )


def test_corosync_two_nodes_keep_quorum_alone() -> None:
    two = nodes.corosync_conf(nodes.plan(2, observer=False), Path("/x/corosync.log"))
    three = nodes.corosync_conf(nodes.plan(3, observer=True), Path("/x/corosync.log"))
    assert "two_node: 1" in two
    assert "two_node" not in three
    assert three.count("ring0_addr: 10.213.0.") == 3


def test_fence_agent_metadata_and_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fence.main(["--lab", "/nonexistent", "-o", "metadata"]) == 0
    assert 'name="fence_vmclab"' in capsys.readouterr().out
    # pacemaker-fenced passes key=value lines on stdin
    monkeypatch.setattr("sys.stdin", io.StringIO("action=monitor\nport=n2\n"))
    assert fence.main(["--lab", "/nonexistent"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("action=reboot\nplug=n2\n"))
    assert fence.main(["--lab", "/nonexistent"]) == 1  # no lab there: it says so, and fails


def test_state_keeps_its_nodes_and_refuses_foreign_network_names(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    root.mkdir(mode=0o755)
    state = LabState(root=str(root), nodes=nodes.plan(2, observer=True), netns=[network.HUB])
    state.nodes[0].pids = {"corosync": 123}
    state.save(root / "lab.json")
    loaded = Lab(root).state()
    assert loaded is not None
    assert loaded.find_node("n1") == state.nodes[0]
    assert loaded.find_node("n2") is not None and loaded.find_node("n2").observer  # type: ignore[union-attr]

    data = json.loads((root / "lab.json").read_text())
    data["netns"] = ["vmclab-hub", "production"]
    (root / "lab.json").write_text(json.dumps(data))
    with pytest.raises(LabError, match="not trusted"):
        Lab(root).state()
