"""The typed diagnosis keeps the JSON document scripts read (``vmconsole vm diagnose --json``)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

from vmconsole.core.diagnose import Diagnosis
from vmconsole.domain.model import Failure, VmStatus
from vmconsole.domain.pacemaker_status import OperationHistoryEntry


def diagnosis(**changes: object) -> Diagnosis:
    values: dict[str, object] = {
        "vm": "db1",
        "status": VmStatus.FAILED,
        "node": None,
        "enabled": True,
        "target_role": "Started",
        "managed": True,
        "blocked": False,
        "fail_count": 1000000,
        "failures": (Failure("start", "hv1", "error", "boom", 1, datetime(2026, 5, 4, 11, 53, tzinfo=UTC)),),
        "operations": (OperationHistoryEntry("hv1", MappingProxyType({"task": "start", "rc": "1"})),),
        "problems": (),
    }
    values.update(changes)
    return Diagnosis(**values)  # type: ignore[arg-type]


def test_the_json_document_of_a_full_diagnosis() -> None:
    report = diagnosis(libvirt_host="hv1", libvirt_answered=True, libvirt_state=None, qemu_log=("line",)).to_json()
    assert report == {
        "vm": "db1",
        "status": "Failed",
        "node": None,
        "enabled": True,
        "target_role": "Started",
        "managed": True,
        "blocked": False,
        "fail_count": 1000000,
        "failures": [
            {
                "operation": "start",
                "node": "hv1",
                "status": "error",
                "reason": "boom",
                "rc": 1,
                "when": "2026-05-04T11:53:00+00:00",
            }
        ],
        "problems": [],
        "operations": [{"node": "hv1", "task": "start", "rc": "1"}],
        "libvirt_host": "hv1",
        "libvirt_state": None,
        "qemu_log": ["line"],
    }


def test_what_libvirt_did_not_answer_is_absent_not_null() -> None:
    assert {"libvirt_host", "libvirt_state", "qemu_log"}.isdisjoint(diagnosis(problems=("libvirt: down",)).to_json())
    partial = diagnosis(libvirt_host="hv1").to_json()
    assert partial["libvirt_host"] == "hv1" and "libvirt_state" not in partial and "qemu_log" not in partial


def test_errors_carry_a_stable_reason_for_scripts() -> None:
    from vmconsole.domain.errors import BackendTimeout, ConflictError, NotFoundError

    assert NotFoundError("x").to_dict()["reason"] == "not_found"
    assert BackendTimeout("ceph", "slow").reason == "timeout"
    already = ConflictError("db1 is already enabled", reason="already_enabled")
    assert already.already_done and already.to_dict()["reason"] == "already_enabled"
    assert not ConflictError("db1 is locked").already_done
