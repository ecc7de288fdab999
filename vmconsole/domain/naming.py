"""vm_manager's on-cluster names, in one place."""

from __future__ import annotations

import re

SYSTEM_PREFIX = "system_"
DATA_PREFIX = "data_"


def system_image(vm: str) -> str:
    return f"{SYSTEM_PREFIX}{vm}"


def data_image(vm: str, index: int) -> str:
    return f"{DATA_PREFIX}{vm}_{index}"


def data_index(vm: str, image: str) -> int | None:
    match = re.fullmatch(rf"{DATA_PREFIX}{re.escape(vm)}_([0-9]+)", image)
    return int(match.group(1)) if match else None


def disk_order(vm: str, image: str) -> tuple[int, int, str]:
    """Sort key: the system disk first, then data disks by index, then anything else."""
    if image == system_image(vm):
        return (0, 0, image)
    index = data_index(vm, image)
    return (1, index, image) if index is not None else (2, 0, image)


# vmconsole's own RADOS objects in the pool (names vm_manager can never give a VM: validate
# reserves the "vmconsole" prefix)
def lock_object(vm: str) -> str:
    return f"vmconsole.lock.{vm}"


TASK_LOCK_PREFIX = "vmconsole.task."


def task_lock_object(task_id: str) -> str:
    """The lease a running task holds and renews: held means alive, free means its process is gone."""
    return f"{TASK_LOCK_PREFIX}{task_id}"


def snapshot_records_object(vm: str) -> str:
    return f"vmconsole.snapshots.{vm}"


JOURNAL_OBJECT = "vmconsole.journal"
HISTORY_PREFIX = "vmconsole.history."
POLICY_OBJECT = "vmconsole.retention"
