"""Whether a journal entry's task still runs: by PID on this host, by its lease elsewhere; and a task
that finished is never offered for undo."""

from __future__ import annotations

import os
from typing import Any

from vmconsole.core.recovery import SAME_HOST, _alive, _finished


class Leases:
    """What the cluster's task leases answer (the real ones are tested on the lab)."""

    def __init__(self, alive: set[str]) -> None:
        self.alive = alive

    def task_alive(self, task_id: str) -> bool:
        return task_id in self.alive


def entry(holder: str, pid: int = 1, task: str = "t1", **more: Any) -> dict[str, Any]:
    return {"holder": holder, "pid": pid, "task": task, "state": "running", **more}


def test_a_task_of_this_host_is_alive_while_its_process_is() -> None:
    leases: Any = Leases(set())
    assert _alive(leases, entry(f"root@{SAME_HOST}", pid=os.getpid()))
    assert not _alive(leases, entry(f"root@{SAME_HOST}", pid=2**22 + 12345))


def test_a_task_of_another_host_is_alive_while_it_holds_its_lease() -> None:
    leases: Any = Leases({"t1"})
    assert _alive(leases, entry("root@otherhost", task="t1"))
    assert not _alive(leases, entry("root@otherhost", task="t2"))


def test_a_finished_task_is_never_incomplete() -> None:
    assert _finished(entry("root@h", state="finished"))
    assert _finished(entry("root@h", steps=["a", "b"], done=["a", "b"]))
    assert not _finished(entry("root@h", steps=["a", "b"], done=["a"]))
    assert not _finished(entry("root@h", steps=[], done=[]))
