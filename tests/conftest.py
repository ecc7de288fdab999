"""Shared fixtures: the real lab cluster, brought up once per test session when a test needs it."""

from __future__ import annotations

import fcntl
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


LAB_LOCK = Path("/tmp/vmconsole-lab.lock")  # one lab per machine: whoever drives it holds this
REUSE = "VMCONSOLE_REUSE_LAB"  # =1: use a lab that is up already (and leave it up)
KEEP = "VMCONSOLE_KEEP_LAB"  # =1: leave the lab this session started running


@pytest.fixture(scope="session")
def lab_lock() -> Iterator[None]:
    """The machine's lab is driven by one test session at a time: the others wait here, and say so.
    Sessions that only use a lab that is up (VMCONSOLE_REUSE_LAB=1) share it: their tests use names of
    their own; a session that may bring the lab up or down waits until they are done."""
    mode = fcntl.LOCK_SH if os.environ.get(REUSE) == "1" else fcntl.LOCK_EX
    LAB_LOCK.touch(exist_ok=True)
    with LAB_LOCK.open("r+") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for the lab: another test session holds {LAB_LOCK}")
            fcntl.flock(handle, mode)
        yield


@pytest.fixture(scope="session")
def lab(lab_lock: None) -> Iterator[Lab]:
    """A lab started here and stopped at the end. One that is up already is used only when asked
    (VMCONSOLE_REUSE_LAB=1): the suite never silently uses, nor takes down, a lab it did not start."""
    lab = Lab(default_dir(), log=_log)
    started_here = False
    if lab.is_up():
        if os.environ.get(REUSE) != "1":
            pytest.fail(
                f"a lab is already running in {lab.paths.root} and this session did not start it: take it"
                f" down (`vmconsole lab down`) or set {REUSE}=1 to run the tests on it",
                pytrace=False,
            )
        _log(f"using the lab that is up in {lab.paths.root} ({REUSE}=1); it stays up")
    else:
        if lab.state() is not None:
            lab.down()  # the remains of a lab whose processes are gone
        lab.up()
        started_here = True
    yield lab
    if started_here and os.environ.get(KEEP) != "1":
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
    failures: list[str] = []
    try:
        for name in names:
            try:
                if svc.vm_exists(name) or name in svc.primitives():
                    if not svc.vm_exists(name):
                        svc.pacemaker.set_target_role(name, "Stopped")
                        svc.pacemaker.delete_vm(name)
                        continue
                    svc.run(plan_remove(svc, name))
            except Exception as exc:  # every name is tried; the failures are reported below
                failures.append(f"{name}: {exc!r}")
    finally:
        svc.close()
    if failures:
        # an error at teardown, beside the test's own result (which it never hides): a VM left on the
        # shared lab is a failure, not a line in a log nobody reads
        pytest.fail("cleanup failed, VMs left on the lab: " + "; ".join(failures), pytrace=False)
