"""Whether a journal entry's task still runs: by PID on this host, by its heartbeat elsewhere."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from vmconsole.core.recovery import SAME_HOST, _alive


def entry(holder: str, updated: datetime, pid: int = 1, state: str = "running") -> dict[str, object]:
    return {"holder": holder, "pid": pid, "updated": updated.isoformat(timespec="seconds"), "state": state}


def test_a_task_of_this_host_is_alive_while_its_process_is() -> None:
    now = datetime.now(UTC)
    assert _alive(entry(f"root@{SAME_HOST}", now, pid=os.getpid()))
    assert not _alive(entry(f"root@{SAME_HOST}", now, pid=2**22 + 12345))


def test_a_task_of_another_host_is_alive_while_its_heartbeat_is_fresh() -> None:
    now = datetime.now(UTC)
    assert _alive(entry("root@otherhost", now - timedelta(seconds=5)))
    assert not _alive(entry("root@otherhost", now - timedelta(minutes=5)))
    assert not _alive(entry("root@otherhost", now, state="needs-recovery"))
