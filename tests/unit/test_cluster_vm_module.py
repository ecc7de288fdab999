"""The cluster_vm module file: its documentation matches its argument spec (what ansible-doc shows is
what the module takes), and it offers every option, alias and command of SEAPATH's module."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from vmconsole.cli import cluster_vm

MODULE = Path(__file__).resolve().parents[2] / "ansible" / "plugins" / "modules" / "cluster_vm.py"

# seapath/ansible plugins/modules/cluster_vm.py: option -> (type, aliases) (reference §2.9)
SEAPATH_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "command": ("str", ()),
    "name": ("str", ("guest",)),
    "xml": ("str", ()),
    "additional_disks": ("list", ()),
    "force": ("bool", ()),
    "enable": ("bool", ()),
    "system_image": ("str", ()),
    "src_name": ("str", ()),
    "metadata_name": ("str", ()),
    "snapshot_name": ("str", ()),
    "metadata": ("dict", ()),
    "purge_date": ("dict", ()),
    "purge_number": ("int", ()),
    "preferred_host": ("str", ()),
    "pinned_host": ("str", ()),
    "live_migration": ("bool", ()),
    "migration_user": ("str", ()),
    "stop_timeout": ("str", ()),
    "migrate_to_timeout": ("str", ()),
    "migration_downtime": ("str", ()),
    "priority": ("str", ()),
    "nostart": ("bool", ()),
    "clear_constraint": ("bool", ()),
    "strong": ("bool", ()),
    "colocated_vms": ("list", ()),
    "crm_config_cmd": ("list", ()),
    "remote_name": ("str", ()),
    "remote_address": ("str", ()),
    "remote_port": ("str", ()),
    "remote_timeout": ("str", ()),
    "pacemaker_meta": ("dict", ()),
    "pacemaker_params": ("dict", ()),
    "pacemaker_utilization": ("dict", ()),
    "clear_pacemaker_meta": ("bool", ()),
    "clear_pacemaker_params": ("bool", ()),
    "clear_pacemaker_utilization": ("bool", ()),
    "disk_bus": ("str", ()),
}
# a type that takes every value the original type took
WIDER = {("str", "path"), ("str", "raw")}


@pytest.fixture(scope="module")
def module() -> ModuleType:
    pytest.importorskip("ansible")
    spec = importlib.util.spec_from_file_location("cluster_vm_module", MODULE)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_documentation_matches_the_argument_spec(module: Any) -> None:
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = module.ARGUMENT_SPEC
    assert set(documented) == set(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc.get("type", "str") == option.get("type", "str"), name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("aliases", []) == option.get("aliases", []), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("elements") == option.get("elements"), name
        assert bool(doc.get("required")) == bool(option.get("required")), name
        if "options" in option:
            assert set(doc["suboptions"]) == set(option["options"]), name
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


def test_a_drop_in_for_seapaths_module(module: Any) -> None:
    spec = module.ARGUMENT_SPEC
    for name, (kind, aliases) in SEAPATH_OPTIONS.items():
        assert name in spec, name
        ours = spec[name].get("type", "str")
        assert ours == kind or (kind, ours) in WIDER, (name, kind, ours)
        assert tuple(spec[name].get("aliases", ())) == aliases, name
    assert spec["command"]["choices"] == list(cluster_vm.COMMANDS)
    assert {c: tuple(r) for _, c, r in module.REQUIRED_IF} == cluster_vm.REQUIRED


def test_every_option_is_honoured_by_some_command(module: Any) -> None:
    honoured = set().union(*cluster_vm.OPTIONS.values()) | cluster_vm.MODULE_OPTIONS | {"name"}
    assert set(module.ARGUMENT_SPEC) == honoured
