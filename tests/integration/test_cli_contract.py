"""The CLI's automation contract on the lab: --read-only refuses for real, "nothing to change" and
"already so" answer in one JSON document, the new dry runs change nothing."""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import cli, create_vm
from vmconsole.config import Config
from vmconsole.core import snapshots
from vmconsole.core.services import Services
from vmconsole.lab.lab import Lab

pytestmark = pytest.mark.lab


def answer(config: Config, *args: str) -> tuple[int, dict[str, object]]:
    """Exit code and the one JSON document on stdout."""
    result = cli(config, *args, "--json")
    document = json.loads(result.stdout)
    assert isinstance(document, dict), result.stdout
    return result.returncode, document


def test_the_contract_on_a_real_vm(
    lab_config: Config, services: Services, lab: Lab, vm_name: str, cleanup_vms: list[str]
) -> None:
    cleanup_vms.append(vm_name)
    create_vm(services, lab, vm_name, start=False, metadata={"k": "v"})

    # --read-only after the noun and verb: refused by core, nothing written
    code, doc = answer(lab_config, "metadata", "set", vm_name, "k=changed", "--read-only")
    assert (code, doc["reason"], doc["changed"]) == (12, "read_only", False)
    assert services.rbd.metadata_get(f"system_{vm_name}", "k") == "v"

    # nothing to change: one document, changed false
    code, doc = answer(lab_config, "vm", "update", vm_name)
    assert (code, doc["changed"]) == (0, False) and doc["summary"] == [f"{vm_name}: nothing to change"]
    code, doc = answer(lab_config, "snapshot", "purge", vm_name, "--all", "--yes")
    assert (code, doc["changed"], doc["message"]) == (0, False, "nothing to remove")

    # already so: exit 4 with an already_* reason; a change: changed true
    code, doc = answer(lab_config, "vm", "enable", vm_name)
    assert (code, doc["reason"], doc["changed"]) == (4, "already_enabled", False)
    code, doc = answer(lab_config, "metadata", "set", vm_name, "k2=w")
    assert (code, doc["changed"], doc["ok"]) == (0, True, True)

    # the new dry runs change nothing
    code, doc = answer(lab_config, "snapshot", "policy", vm_name, "--keep-last", "3", "--dry-run")
    assert (code, doc["dry_run"], doc["would_change"], doc["changed"]) == (0, True, True, False)
    assert vm_name not in snapshots.policies(services)
    code, doc = answer(lab_config, "lock", "break", vm_name, "--dry-run")
    assert (code, doc["changed"]) == (0, False) and doc["message"] == f"{vm_name} is not locked"
    code, doc = answer(lab_config, "recover", "nosuchtask", "--undo", "--dry-run")
    assert (code, doc["reason"]) == (3, "not_found")

    # a plan's warnings come with its dry run (the lab's domain passes qemu:commandline)
    dry = cli(lab_config, "vm", "start", vm_name, "--dry-run")
    assert dry.returncode == 0 and "(dry run: nothing was changed)" in dry.stdout
