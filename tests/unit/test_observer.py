"""The observer (SEAPATH's /etc/cluster.conf, or the configuration) and the constraints vmconsole
writes and removes around it: its ban as vm_manager writes it, and a move that clears only the VM's
own preference (the Pacemaker tools are stand-ins that record their argv)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from lxml import etree

from vmconsole import config
from vmconsole.backends.pacemaker import PacemakerClient
from vmconsole.domain.errors import ConfigError
from vmconsole.domain.primitive_builder import PrimitiveSpec, build_constraints

SEAPATH_CONF = "[machines]\nhypervisor1 = hv1\nhypervisor2 = hv2\nobserver = obs1\n"


def conf(tmp_path: Path, text: str, mode: int = 0o644) -> config.PacemakerSection:
    path = tmp_path / "cluster.conf"
    path.write_text(text)
    path.chmod(mode)
    return config.PacemakerSection(cluster_conf=str(path))


def test_the_observer_is_read_from_seapaths_cluster_conf(tmp_path: Path) -> None:
    assert config.read_observer(conf(tmp_path, SEAPATH_CONF)) == "obs1"


def test_the_configuration_names_the_observer_first(tmp_path: Path) -> None:
    section = conf(tmp_path, SEAPATH_CONF)
    assert config.read_observer(config.PacemakerSection(observer="n3", cluster_conf=section.cluster_conf)) == "n3"


@pytest.mark.parametrize(
    "text", ["", "[machines]\nhypervisor1 = hv1\n", "[other]\nobserver = x\n", "[machines]\nobserver =\n"]
)
def test_no_observer_named_means_none(tmp_path: Path, text: str) -> None:
    assert config.read_observer(conf(tmp_path, text)) is None


def test_a_missing_file_means_no_observer(tmp_path: Path) -> None:
    assert config.read_observer(config.PacemakerSection(cluster_conf=str(tmp_path / "absent"))) is None


def test_a_file_others_may_write_is_not_trusted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="can be written by other users") as caught:
        config.read_observer(conf(tmp_path, SEAPATH_CONF, 0o664))
    assert caught.value.field == str(tmp_path / "cluster.conf")


@pytest.mark.parametrize("text", ["[machines]\nobserver = -x y\n", "machines observer = x\n"])
def test_a_broken_file_or_name_says_so(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"cluster description|not a node name"):
        config.read_observer(conf(tmp_path, text))


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    section = conf(tmp_path, SEAPATH_CONF)
    assert config.read_observer(section) == "obs1"
    Path(section.cluster_conf).write_text("[machines]\nobserver = witness\n")
    assert config.read_observer(section) == "witness"


def test_the_ban_is_the_one_crm_resource_ban_writes() -> None:
    (ban,) = build_constraints(PrimitiveSpec(name="vm1", banned_hosts=("n3",)))
    # `crm_resource --ban --resource vm1 --node n3` (Pacemaker 2.1.5) writes exactly this
    assert etree.tostring(ban, encoding="unicode") == (
        '<rsc_location id="cli-ban-vm1-on-n3" rsc="vm1" role="Started" node="n3" score="-INFINITY"/>'
    )


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[PacemakerClient, Path]:
    """A client whose Pacemaker tools only record how they were called."""
    log = tmp_path / "calls.jsonl"
    tool = tmp_path / "tool"
    tool.write_text(
        f"#!{sys.executable}\nimport json, sys\nopen({str(log)!r}, 'a').write(json.dumps(sys.argv) + '\\n')\n"
    )
    tool.chmod(0o755)
    section = config.PacemakerSection(cibadmin=str(tool), crm_resource=str(tool), timeout=10)
    return PacemakerClient(section), log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line)[1:] for line in log.read_text().splitlines()] if log.exists() else []


def test_clearing_a_move_removes_only_the_vms_own_preference(recorded: tuple[PacemakerClient, Path]) -> None:
    client, log = recorded
    client.clear_move("vm1")
    (argv,) = calls(log)
    assert "--clear" not in argv  # crm_resource --clear without --node drops every cli-ban of the VM too
    assert argv == ["--delete", "--xpath", "//constraints/rsc_location[@id='cli-prefer-vm1' and @rsc='vm1']"]
