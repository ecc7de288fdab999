"""The operations of the fault matrix, each as a scenario: how to build its world, how to plan it,
what it would create, how to put the world back after a failure that kept something.

Shared by the in-process matrix (a failure injected at every step) and the kill runner (the process
killed at every step, then ``vmconsole recover``): both plan exactly the same task.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tests.integration.helpers import create_vm, make_spec
from vmconsole.core import placement, snapshots, vms
from vmconsole.core.services import Services
from vmconsole.core.tasks import Task
from vmconsole.domain import naming
from vmconsole.domain.errors import ConflictError, VmConsoleError
from vmconsole.domain.model import VmStatus
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml


@dataclass
class Scenario:
    name: str
    # build the world the operation starts from (VM ``name`` and whatever it needs)
    setup: Callable[[Services, Lab, str], None]
    # plan the operation (a fresh task each time)
    plan: Callable[[Services, Lab, str], Task]
    # the VMs whose state the operation may change (the world compared before and after)
    vms: Callable[[str], list[str]] = field(default=lambda name: [name])
    # the names of images the operation would create (refused when one exists, case (a))
    creates_images: Callable[[str], list[str]] = field(default=lambda name: [])


def _clone_name(name: str) -> str:
    return name + "c"


def _setup_vm(**kwargs: Any) -> Callable[[Services, Lab, str], None]:
    """The VM as the scenario starts from, made or brought back (a failure may have left it otherwise)."""

    def setup(services: Services, lab: Lab, name: str) -> None:
        if not services.vm_exists(name):
            create_vm(services, lab, name, **kwargs)
            return
        # a recovery may have left Pacemaker starting or stopping it: decide on where it settles
        state = services.vm(name)
        deadline = time.monotonic() + 90
        while state.status in (VmStatus.STARTING, VmStatus.STOPPING) and time.monotonic() < deadline:
            time.sleep(0.5)
            state = services.vm(name)
        if kwargs.get("enable", True) and not state.enabled:
            services.run(vms.plan_enable(services, name, start=kwargs.get("start", True)))
        elif kwargs.get("enable", True) and kwargs.get("start", True) and state.status is not VmStatus.STARTED:
            if state.status is VmStatus.FAILED:
                services.run(vms.plan_cleanup(services, name))
            try:
                services.run(vms.plan_start(services, name))
            except ConflictError as exc:
                # Pacemaker started it itself in the meantime (its primitive was back, Started)
                if exc.reason != "already_started":
                    raise

    return setup


def _setup_with_snapshot(services: Services, lab: Lab, name: str) -> None:
    _setup_vm(data_disks=1)(services, lab, name)
    if not any(s.name == "point" for s in services.vm(name).snapshots):
        services.run(snapshots.plan_snapshot_create(services, name, "point"))


def _nothing(services: Services, lab: Lab, name: str) -> None:
    pass


def _plan_update(services: Services, lab: Lab, name: str) -> Task:
    state = lab.state()
    assert state is not None
    memory = 64 if "<memory unit='MiB'>80" in vms.domain_config(services, name)[0] else 80
    xml = base_xml(lab, name, state.domain_type).replace("<memory unit='MiB'>64", f"<memory unit='MiB'>{memory}")
    plan = vms.update_plan(services, name, xml=xml, options=vms.VmOptions(priority=str(memory)))
    return vms.plan_update(services, plan)


def _plan_purge(services: Services, lab: Lab, name: str) -> Task:
    for snap in ("p1", "p2"):
        if not any(s.name == snap for s in services.vm(name).snapshots):
            services.run(snapshots.plan_snapshot_create(services, name, snap))
    return snapshots.plan_purge(services, snapshots.purge_plan(services, name, all=True))


def _plan_snapshot_remove(services: Services, lab: Lab, name: str) -> Task:
    if not any(s.name == "gone" for s in services.vm(name).snapshots):
        services.run(snapshots.plan_snapshot_create(services, name, "gone"))
    return snapshots.plan_snapshot_remove(services, name, "gone")


def _only_node(services: Services) -> str:
    return services.node_names()[0]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "create",
            _nothing,
            lambda services, lab, name: vms.plan_create(services, make_spec(lab, name, data_disks=1)),
            creates_images=lambda name: [naming.system_image(name), naming.data_image(name, 0)],
        ),
        Scenario(
            "force-replace",
            _setup_vm(enable=True, start=True),
            lambda services, lab, name: vms.plan_create(services, replace(make_spec(lab, name), force=True)),
        ),
        Scenario(
            "deep-clone",
            _setup_vm(data_disks=1),
            lambda services, lab, name: vms.plan_clone(services, vms.CloneSpec(source=name, name=_clone_name(name))),
            vms=lambda name: [name, _clone_name(name)],
            creates_images=lambda name: [
                naming.system_image(_clone_name(name)),
                naming.data_image(_clone_name(name), 0),
            ],
        ),
        Scenario(
            "linked-clone",
            _setup_vm(enable=False),
            lambda services, lab, name: vms.plan_clone(
                services, vms.CloneSpec(source=name, name=_clone_name(name), linked=True)
            ),
            vms=lambda name: [name, _clone_name(name)],
            creates_images=lambda name: [naming.system_image(_clone_name(name))],
        ),
        Scenario("remove", _setup_vm(), lambda services, lab, name: vms.plan_remove(services, name)),
        Scenario(
            "rollback",
            _setup_with_snapshot,
            lambda services, lab, name: snapshots.plan_rollback(
                services, snapshots.rollback_plan(services, name, "point")
            ),
        ),
        Scenario("update", _setup_vm(), _plan_update),
        Scenario(
            "snapshot-create",
            _setup_vm(data_disks=1),  # running, two disks, no guest agent: the paused path
            lambda services, lab, name: snapshots.plan_snapshot_create(services, name, "made"),
        ),
        Scenario("snapshot-remove", _setup_vm(enable=False), _plan_snapshot_remove),
        Scenario("purge", _setup_vm(enable=False), _plan_purge),
        Scenario(
            "node-standby",
            _setup_vm(),
            lambda services, lab, name: placement.plan_node_standby(services, _only_node(services), True, wait=60),
        ),
    )
}


def remove_everything(services: Services, names: list[str]) -> None:
    """Take away every VM of a scenario (kept VMs, clones...), for the next round to start clean."""
    for name in names:
        with contextlib.suppress(VmConsoleError):
            if services.vm_exists(name):
                services.run(vms.plan_remove(services, name))
            elif name in services.primitives():
                services.pacemaker.set_target_role(name, "Stopped")
                services.pacemaker.delete_vm(name)
