"""vm_manager's on-cluster names, in one place."""

from __future__ import annotations

import re
import uuid

# vmconsole's temporary VM groups (a replacement being built, an old VM being swapped out): the only
# `vmconsole`-prefixed names that are not VMs.
TEMPORARY_VM = re.compile(r"vmconsole(new|old)[0-9a-f]{8}")

SYSTEM_PREFIX = "system_"
DATA_PREFIX = "data_"


def is_temporary(name: str) -> bool:
    return TEMPORARY_VM.fullmatch(name) is not None


def temporary_vm(kind: str) -> str:
    """A fresh temporary group name: ``kind`` is "new" (being built) or "old" (being swapped out)."""
    return f"vmconsole{kind}{uuid.uuid4().hex[:8]}"


def system_image(vm: str) -> str:
    return f"{SYSTEM_PREFIX}{vm}"


def vm_of_image(image: str) -> str | None:
    """The VM a disk image belongs to by its name: ``system_<vm>``, ``data_<vm>_<i>``; None otherwise."""
    if image.startswith(SYSTEM_PREFIX):
        return image[len(SYSTEM_PREFIX) :] or None
    if image.startswith(DATA_PREFIX):
        vm, _, index = image[len(DATA_PREFIX) :].rpartition("_")
        return vm if vm and index.isdigit() else None
    return None


def data_image(vm: str, index: int) -> str:
    return f"{DATA_PREFIX}{vm}_{index}"


def data_index(vm: str, image: str) -> int | None:
    # a string test, not a pattern per VM: a read of 500 VMs compiled 500 patterns
    prefix = f"{DATA_PREFIX}{vm}_"
    if not image.startswith(prefix):
        return None
    index = image[len(prefix) :]
    return int(index) if index and index.isascii() and index.isdigit() else None


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
