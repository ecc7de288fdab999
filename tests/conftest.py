"""Shared fixtures: the real lab cluster, brought up once per test session when a test needs it."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmconsole import config as configuration
from vmconsole.lab.lab import Lab
from vmconsole.lab.paths import default_dir

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Lab lifecycle tests bring labs up and down themselves: they must run before the shared lab
    # exists. Unit tests go first of all (fast feedback), then lifecycle, then everything else.
    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("lab_lifecycle"):
            return 1
        if "tests/unit/" in item.nodeid or item.nodeid.startswith("unit/"):
            return 0
        return 2

    items.sort(key=rank)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The running lab: reused when one is up already, else started here and stopped at the end."""
    lab = Lab(default_dir(), log=_log)
    started_here = False
    if not lab.is_up():
        if lab.state() is not None:
            lab.down()
        lab.up()
        started_here = True
    yield lab
    if started_here and os.environ.get("VMCONSOLE_KEEP_LAB") != "1":
        lab.down()


@pytest.fixture(scope="session")
def lab_config(lab: Lab) -> configuration.Config:
    return configuration.load_file(lab.paths.config_file)


@pytest.fixture
def vm_name() -> str:
    """A fresh VM name per test, so tests never trip over each other's leftovers."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def services(lab_config: configuration.Config) -> Iterator[object]:
    from vmconsole.core.services import Services

    svc = Services(lab_config)
    yield svc
    svc.close()


@pytest.fixture
def cleanup_vms(lab_config: configuration.Config) -> Iterator[list[str]]:
    """Names appended here are removed (with everything they own) after the test."""
    from vmconsole.core.services import Services
    from vmconsole.core.vms import plan_remove

    names: list[str] = []
    yield names
    svc = Services(lab_config)
    try:
        for name in names:
            try:
                if svc.vm_exists(name) or name in svc.primitives():
                    if not svc.vm_exists(name):
                        svc.pacemaker.set_target_role(name, "Stopped")
                        svc.pacemaker.delete_vm(name)
                        continue
                    svc.run(plan_remove(svc, name))
            except Exception as exc:  # cleanup must not hide the test's own result
                print(f"cleanup of {name} failed: {exc}", file=sys.stderr)
    finally:
        svc.close()
