"""A fixed cluster state and clock for the console's tests, snapshots and screenshots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from vmconsole.config import Config, ConsoleSection
from vmconsole.domain.model import (
    CephHealth,
    ClusterState,
    Disk,
    Failure,
    NodeState,
    NodeStatus,
    Snapshot,
    VmState,
    VmStatus,
)

if TYPE_CHECKING:
    from vmconsole.core.snapshots import PurgePlan, RollbackPlan
    from vmconsole.core.vms import UpdatePlan, VmOptions
    from vmconsole.tui.task_record import TaskRecord

NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)
MiB = 1024 * 1024
GiB = 1024 * MiB


def clock() -> datetime:
    return NOW


def config(refresh: float = 2.0) -> Config:
    return Config(console=ConsoleSection(refresh_interval=refresh), source=Path("/dev/null"))


def snap(name: str, hours_ago: float, disks: tuple[str, ...], **extra: object) -> Snapshot:
    return Snapshot(name=name, kind="group", created=NOW - timedelta(hours=hours_ago), disks=disks, **extra)  # type: ignore[arg-type]


def vm(
    name: str,
    status: VmStatus,
    node: str | None = None,
    *,
    size: int = 64 * MiB,
    data: int = 0,
    snapshots: tuple[Snapshot, ...] = (),
    **extra: object,
) -> VmState:
    disks = (Disk(f"system_{name}", size), *(Disk(f"data_{name}_{i}", size) for i in range(data)))
    enabled = status is not VmStatus.DISABLED
    return VmState(name=name, status=status, node=node, enabled=enabled, disks=disks, snapshots=snapshots, **extra)  # type: ignore[arg-type]


def db1_snapshots() -> tuple[Snapshot, ...]:
    disks = ("system_db1", "data_db1_0")
    return (
        snap("before-upgrade", 50, disks, protected=True),
        snap("nightly-20260504", 9, disks),
        snap("snap-20260504-110000", 1, disks),
    )


FAILURE = Failure(
    operation="start",
    node="hv2",
    exit_status="error",
    exit_reason="domain legacy: cannot open disk: Permission denied",
    exit_code=1,
    when=NOW - timedelta(minutes=7),
)


def vms() -> tuple[VmState, ...]:
    return (
        vm("web1", VmStatus.STARTED, "hv1", snapshots=(snap("pre-patch", 30, ("system_web1",)),)),
        vm("web2", VmStatus.STARTED, "hv2"),
        vm(
            "db1",
            VmStatus.STARTED,
            "hv1",
            size=128 * MiB,
            data=1,
            snapshots=db1_snapshots(),
            metadata=MappingProxyType({"owner": "dba-team", "tier": "gold"}),
        ),
        vm("build1", VmStatus.DISABLED),
        vm("spare1", VmStatus.STOPPED),
        vm("legacy", VmStatus.FAILED, None, size=2 * GiB, failed=True, fail_count=1000000, last_failure=FAILURE),
        vm("batch7", VmStatus.STARTING, "hv2", size=512 * MiB),
        vm("cache1", VmStatus.STARTED, "hv1", size=256 * MiB, blocked=True, failed=False),
    )


def nodes() -> tuple[NodeState, ...]:
    return (
        NodeState("hv1", "1", NodeStatus.ONLINE, is_dc=True, resources_running=3),
        NodeState("hv2", "2", NodeStatus.ONLINE, resources_running=2),
        NodeState("hv3", "3", NodeStatus.STANDBY),
    )


def state(**changes: object) -> ClusterState:
    base = ClusterState(
        taken_at=NOW,
        nodes=nodes(),
        vms=vms(),
        ceph=CephHealth("HEALTH_OK"),
        quorum=True,
        dc="hv1",
        cluster_name="seapath",
        duration=0.05,
    )
    return replace(base, **changes) if changes else base  # type: ignore[arg-type]


class Source:
    """A state source the test can change, break and mend."""

    def __init__(self, current: ClusterState | None = None) -> None:
        self.current = current or state()
        self.error: Exception | None = None
        self.calls = 0

    def __call__(self) -> ClusterState:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.current


StateSource = Callable[[], ClusterState]


# ---------------------------------------------------------------------------------------------- fake services
class FakeSession:
    """Just enough of RbdSession for the real TaskRunner: omap objects and lock leases, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, bytes]] = {}
        self.locks: dict[str, str] = {}

    def omap_get(self, oid: str, prefix: str = "", limit: int = 100000) -> dict[str, bytes]:
        return {k: v for k, v in self.objects.get(oid, {}).items() if k.startswith(prefix)}

    def omap_set(self, oid: str, values: dict[str, bytes]) -> None:
        self.objects.setdefault(oid, {}).update(values)

    def omap_remove(self, oid: str, keys: list[str]) -> None:
        for key in keys:
            self.objects.get(oid, {}).pop(key, None)

    def lock_exclusive(self, oid: str, name: str, cookie: str, description: str, seconds: int) -> bool:
        holder = self.locks.setdefault(oid, cookie)
        return holder == cookie

    def unlock(self, oid: str, name: str, cookie: str) -> None:
        if self.locks.get(oid) == cookie:
            del self.locks[oid]

    def remove_object(self, oid: str) -> None:
        self.objects.pop(oid, None)


class FakePacemaker:
    """crm_mon's operation history for the timeline: ``operations`` is the XML it answers."""

    def __init__(self) -> None:
        self.operations = OPERATIONS_XML

    def operations_xml(self) -> str:
        return self.operations


class FakeServices:
    """Runs tasks with the real TaskRunner on a FakeSession; planners are patched by the tests."""

    def __init__(self, source: Callable[[], ClusterState]) -> None:
        from vmconsole.core.tasks import TaskRunner

        self.source = source
        self.session = FakeSession()
        self.runner_class = TaskRunner
        self.ran: list[str] = []
        self.records: list[dict[str, object]] = []  # what ``history`` answers
        self.pacemaker = FakePacemaker()

    def state(self) -> ClusterState:
        return self.source()

    def vm(self, name: str, *, with_usage: bool = False) -> VmState:
        from vmconsole.domain.errors import NotFoundError

        found = self.source().vm(name)
        if found is None:
            raise NotFoundError(f"no VM named {name!r}", field="name")
        return found

    def runner(self, listener: object = None) -> object:
        return self.runner_class(self.session, listener)  # type: ignore[arg-type]

    def run(self, task: object, cancel: object = None, listener: object = None) -> object:
        self.ran.append(task.operation)  # type: ignore[attr-defined]
        return self.runner_class(self.session, listener).run(task, cancel)  # type: ignore[arg-type]

    def history(self, months: int = 3) -> list[dict[str, object]]:
        return list(self.records)

    def close(self) -> None:
        pass


# crm_mon --include=operations for the sample: web1 started and monitored on hv1, legacy's failed start
OPERATIONS_XML = """<crm_mon version="2.1.5"><node_history>
<node name="hv1"><resource_history id="web1" orphan="false" migration-threshold="1000000">
<operation_history
 call="12" task="start" rc="0" rc_text="ok" last-rc-change="2026-05-04 10:58:01Z" exec-time="1502ms"/>
<operation_history
 call="13" task="monitor" rc="0" rc_text="ok" interval="10000ms" last-rc-change="2026-05-04 10:58:03Z"/>
</resource_history></node>
<node name="hv2"><resource_history id="legacy" orphan="false" migration-threshold="1000000">
<operation_history
 call="7" task="start" rc="1" rc_text="error" last-rc-change="2026-05-04 11:53:00Z" exec-time="890ms"/>
<operation_history call="8" task="stop" rc="0" rc_text="ok" last-rc-change="2026-05-04 11:53:02Z" exec-time="120ms"/>
</resource_history></node>
</node_history></crm_mon>"""

HISTORY = [
    {
        "task": "a1b2c3d4e5f6",
        "operation": "snapshot-create",
        "vm": "db1",
        "who": "ops@hv1",
        "result": "ok",
        "started": "2026-05-04T11:00:00+00:00",
        "finished": "2026-05-04T11:00:02+00:00",
        "seconds": 1.2,
        "message": "snapshot db1 as snap-20260504-110000 (2 disks, 1 guest filesystem frozen)",
        "args": {"snapshot": "snap-20260504-110000", "freeze": True},
    },
    {
        "task": "0f1e2d3c4b5a",
        "operation": "start",
        "vm": "legacy",
        "who": "ann@hv2",
        "result": "failed",
        "started": "2026-05-04T11:52:30+00:00",
        "finished": "2026-05-04T11:53:05+00:00",
        "seconds": 35.0,
        "message": "legacy is Failed: start on hv2: Failed to start virtual domain legacy. (rc=1)",
        "args": {},
    },
]


def fake_task(
    operation: str,
    vm: str | None,
    steps: int = 2,
    *,
    total: int = 0,
    fail_at: int | None = None,
    summary: str = "",
    gate: object = None,
    data: dict[str, object] | None = None,
) -> object:
    """A task of ``steps`` steps; with ``total`` each step reports byte progress; ``gate`` (an Event)
    holds the first step until set, so a test can look at a running task; ``data`` lands in the
    task's result (``TaskResult.data``), like what a real task's steps record."""
    import threading

    from vmconsole.core.tasks import Step, StepContext, Task
    from vmconsole.domain.errors import OperationFailed

    def make(index: int) -> Step:
        def run(ctx: StepContext) -> None:
            if index == 0 and isinstance(gate, threading.Event):
                while not gate.wait(0.02):
                    ctx.check_cancel()
            if fail_at == index:
                raise OperationFailed(f"step {index + 1} broke")
            if total:
                for done in (total // 4, total // 2, total):
                    ctx.progress(done, total, f"copy {done}")
            ctx.log(f"step {index + 1} did its work")
            if summary and index == steps - 1:
                ctx.data["_summary"] = summary
            if data and index == steps - 1:
                ctx.data.update(data)

        return Step(f"step {index + 1} of {operation}", run, lambda ctx: None)

    return Task(operation, vm, {}, [make(i) for i in range(steps)], description=f"{operation} {vm}")


# ---------------------------------------------------------------------------------------------- plans and tasks
def rollback_plan() -> RollbackPlan:
    from vmconsole.core.snapshots import RollbackPlan

    snapshot = db1_snapshots()[1]
    return RollbackPlan(
        vm="db1",
        snapshot=snapshot,
        status=VmStatus.STARTED,
        node="hv1",
        enabled=True,
        will_stop=True,
        restart_after=True,
        written_since=48 * MiB,
        expected_downtime=27.0,
        safety_snapshot="safety-20260504-120000",
        restores_config=True,
        warnings=("the snapshot predates the last change of the domain XML",),
    )


def purge_plan() -> PurgePlan:
    from vmconsole.core.snapshots import PurgePlan

    snaps = db1_snapshots()
    return PurgePlan(vm="db1", remove=(snaps[1], snaps[2]), keep=((snaps[0], "protected"),), mode="oldest 2")


def clone_record() -> TaskRecord:
    """A deep clone half-way through its copy: steps, percent, throughput, ETA and log."""
    from vmconsole.core.tasks import ProgressEvent
    from vmconsole.tui.task_record import TaskRecord

    record = TaskRecord("clone db1 → db2", "db2", NOW)
    steps = (
        "create RBD group db2",
        "wait for snapshot trimming",
        "copy system_db1 → system_db2",
        "copy data_db1_0 → data_db2_0",
        "write the clone's configuration",
        "enable db2 in the cluster",
    )
    when = NOW
    base = {"task_id": "3f9c2a7d1e04", "operation": "clone", "vm": "db2", "step_count": len(steps), "steps": steps}
    events = [
        ProgressEvent(kind="start", message="clone db1 as db2", **base),  # type: ignore[arg-type]
        ProgressEvent(kind="step", step_index=0, step_name=steps[0], percent=0.0, **base),  # type: ignore[arg-type]
        ProgressEvent(kind="step", step_index=1, step_name=steps[1], percent=2.3, **base),  # type: ignore[arg-type]
        ProgressEvent(kind="log", step_index=1, message="no snapshot is being trimmed", **base),  # type: ignore[arg-type]
        ProgressEvent(kind="step", step_index=2, step_name=steps[2], percent=4.5, **base),  # type: ignore[arg-type]
        ProgressEvent(
            kind="progress",
            step_index=2,
            step_name=steps[2],
            percent=27.5,
            done=80 * MiB,
            total=128 * MiB,
            rate=95 * MiB,
            eta=4.0,
            **base,
        ),  # type: ignore[arg-type]
    ]
    for event in events:
        record.apply(event, when)
    return record


# ---------------------------------------------------------------------------------------------- placement and update
DB1_XML = (
    "<domain type='kvm'><name>db1</name><uuid>4f8a7c52-1111-4222-8333-444455556666</uuid>"
    "<memory unit='MiB'>1024</memory><vcpu>1</vcpu><devices><disk type='network' device='disk'>"
    "<source protocol='rbd' name='rbd/system_db1'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
)
DB1_NEW_XML = DB1_XML.replace("1024", "2048").replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>")


def update_plan(vm: str = "db1", *, restart: bool = True, xml: bool = True) -> UpdatePlan:
    """What ``update_plan`` answers for db1: more memory and CPUs (a restart), priority 0 -> 5."""
    from vmconsole.core.vms import UpdatePlan
    from vmconsole.domain import domain_xml

    diff = tuple(domain_xml.xml_diff(DB1_XML, DB1_NEW_XML)) if xml else ()
    changes: dict[str, tuple[str | None, str | None]] = {"_priority": ("0", "5")}
    if xml:
        changes["xml"] = (DB1_XML, DB1_NEW_XML)
    return UpdatePlan(
        vm=vm,
        xml_diff=diff,
        metadata_changes=changes,
        restart=restart,
        primitive_changed=True,
        status=VmStatus.STARTED,
    )


class FakeOperations:
    """Fakes of the placement and update planners that record their calls and return ``fake_task``s.

    ``moves`` is what a node standby/online reports in ``TaskResult.data["moves"]``; ``plan`` is
    what ``update_plan`` answers (an exception is raised instead).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.moves: dict[str, dict[str, str | None]] = {
            "web1": {"from": "hv1", "to": "hv2"},
            "db1": {"from": "hv1", "to": "hv2"},
            "cache1": {"from": "hv1", "to": None},
        }
        self.plan: UpdatePlan | Exception = update_plan()

    def install(self, monkeypatch: object) -> FakeOperations:
        from vmconsole.core import placement, vms

        for module, name in (
            (placement, "plan_move"),
            (placement, "plan_node_standby"),
            (vms, "update_plan"),
            (vms, "plan_update"),
        ):
            monkeypatch.setattr(module, name, getattr(self, name))  # type: ignore[attr-defined]
        return self

    def names(self) -> list[str]:
        return [name for name, _args in self.calls]

    def plan_move(self, services: object, vm: str, node: str) -> object:
        self.calls.append(("plan_move", (vm, node)))
        return fake_task("move", vm, 1, summary=f"{vm} moved to {node}")

    def plan_node_standby(self, services: object, node: str, standby: bool, *, wait: float = 600) -> object:
        self.calls.append(("plan_node_standby", (node, standby)))
        verb = "standby" if standby else "online"
        return fake_task(f"node-{verb}", None, 1, summary=f"node {node} {verb}", data={"moves": self.moves})

    def update_plan(
        self,
        services: object,
        vm: str,
        *,
        xml: str | None = None,
        options: VmOptions | None = None,
        remove_metadata: tuple[str, ...] = (),
    ) -> UpdatePlan:
        self.calls.append(("update_plan", (vm, xml, options)))
        if isinstance(self.plan, Exception):
            raise self.plan
        return self.plan

    def plan_update(self, services: object, plan: UpdatePlan) -> object:
        self.calls.append(("plan_update", (plan.vm, plan.restart)))
        return fake_task("update", plan.vm, 1, summary=f"{plan.vm} updated in place")
