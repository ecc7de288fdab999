"""Why a VM failed, in one place: its failures, Pacemaker's operation history, libvirt's view and the
QEMU log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmconsole.core.services import Services
from vmconsole.domain.errors import VmConsoleError
from vmconsole.domain.model import Failure, VmStatus
from vmconsole.domain.pacemaker_status import OperationHistoryEntry


@dataclass(frozen=True)
class Diagnosis:
    """What an on-call operator needs to see why a VM failed.

    The libvirt part is what this host's libvirt answered: ``libvirt_host`` once it answered at all,
    ``libvirt_state`` (None: no such domain here) and ``qemu_log`` once it answered about the VM.
    """

    vm: str
    status: VmStatus
    node: str | None
    enabled: bool
    target_role: str | None
    managed: bool
    blocked: bool
    fail_count: int
    failures: tuple[Failure, ...]
    operations: tuple[OperationHistoryEntry, ...]
    problems: tuple[str, ...]
    libvirt_host: str | None = None
    libvirt_answered: bool = False
    libvirt_state: str | None = None
    qemu_log: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "vm": self.vm,
            "status": self.status.value,
            "node": self.node,
            "enabled": self.enabled,
            "target_role": self.target_role,
            "managed": self.managed,
            "blocked": self.blocked,
            "fail_count": self.fail_count,
            "failures": [
                {
                    "operation": f.operation,
                    "node": f.node,
                    "status": f.exit_status,
                    "reason": f.exit_reason,
                    "rc": f.exit_code,
                    "when": f.when.isoformat() if f.when else None,
                }
                for f in self.failures
            ],
            "problems": list(self.problems),
            "operations": [op.to_json() for op in self.operations],
        }
        if self.libvirt_host is not None:
            report["libvirt_host"] = self.libvirt_host
        if self.libvirt_answered:
            report["libvirt_state"] = self.libvirt_state
            report["qemu_log"] = list(self.qemu_log)
        return report


def diagnose(services: Services, vm: str) -> Diagnosis:
    """Read everything about the VM's failures; what cannot be read is listed in ``problems``."""
    state = services.vm(vm)
    problems = list(state.problems)
    operations: list[OperationHistoryEntry] = []
    try:
        operations = services.pacemaker.operation_history(vm)
    except VmConsoleError as exc:
        problems.append(f"operation history: {exc}")
    host: str | None = None
    answered = False
    libvirt_state: str | None = None
    qemu_log: list[str] = []
    try:
        with services.libvirt() as lv:
            host = lv.hostname()
            libvirt_state = lv.domain_state(vm)
            where = state.node or host
            if where == host:
                qemu_log = lv.qemu_log_tail(vm, 40)
            else:
                qemu_log = [f"(the QEMU log is on {where}: /var/log/libvirt/qemu/{vm}.log)"]
            answered = True
    except VmConsoleError as exc:
        problems.append(f"libvirt: {exc}")
    return Diagnosis(
        vm=vm,
        status=state.status,
        node=state.node,
        enabled=state.enabled,
        target_role=state.target_role,
        managed=state.managed,
        blocked=state.blocked,
        fail_count=state.fail_count,
        failures=state.resource.failures if state.resource else (),
        operations=tuple(operations),
        problems=tuple(problems),
        libvirt_host=host,
        libvirt_answered=answered,
        libvirt_state=libvirt_state,
        qemu_log=tuple(qemu_log),
    )
