"""Why a start failed, in one line: the "Cause:" the task result, the detail view and diagnose show.

Pacemaker records only the resource agent's exit reason ("Failed to start virtual domain web1."):
the reason is libvirt's or QEMU's own error, in the QEMU log of the attempt. The QEMU log holds every
run of the domain, so only the latest attempt counts: when its last run is older than the failure,
libvirt refused before QEMU ran, and the log of an earlier run is no cause of this failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vmconsole.core.diagnose import Diagnosis
from vmconsole.domain.model import Failure

# "2026-05-04 11:53:00.123+0000: starting up libvirt version: ..." opens each run in the log
_RUN_START = re.compile(r"^(?P<stamp>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d{4}|Z)?): starting up")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)?:?\s*")
_ERROR = re.compile(
    r"error|fail|cannot|can't|could not|unable|denied|no such|not found|busy|refused|invalid|unsupported",
    re.IGNORECASE,
)
_NOISE = re.compile(r"shutting down, reason=|^(LC_ALL|PATH|HOME|XDG_|USER|LOGNAME|QEMU_AUDIO)=|\\$|^-|^/usr/")
# the log of an attempt starts a moment before Pacemaker records the failure of that attempt
SAME_ATTEMPT = timedelta(minutes=2)


@dataclass(frozen=True)
class Cause:
    text: str  # the error itself, one line
    source: str  # where it was read: "the QEMU log on hv1", "the resource agent"
    note: str = ""  # what else the operator should know (the log is of an earlier run...)

    def line(self) -> str:
        return f"{self.text} ({self.source})" + (f"; {self.note}" if self.note else "")


def latest_failure(failures: tuple[Failure, ...]) -> Failure | None:
    dated = [f for f in failures if f.when is not None]
    if dated:
        return max(dated, key=lambda f: f.when or datetime.min.replace(tzinfo=UTC))
    return failures[-1] if failures else None


def newest_first(failures: tuple[Failure, ...]) -> list[Failure]:
    return sorted(failures, key=lambda f: f.when or datetime.min.replace(tzinfo=UTC), reverse=True)


def _parse_stamp(text: str) -> datetime | None:
    for form in ("%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text.replace("Z", "+0000"), form)
        except ValueError:
            continue
    return None


def last_run(log: tuple[str, ...]) -> tuple[datetime | None, list[str]]:
    """When the last run in a QEMU log started, and its lines (the whole log when no run header)."""
    for index in range(len(log) - 1, -1, -1):
        match = _RUN_START.match(log[index])
        if match:
            return _parse_stamp(match.group("stamp")), list(log[index + 1 :])
    return None, list(log)


def error_lines(lines: list[str]) -> list[str]:
    """The lines of a run that say what went wrong (its command line and environment left out)."""
    found = []
    for raw in lines:
        line = _STAMP.sub("", raw.strip(), count=1)
        if line and _ERROR.search(line) and not _NOISE.search(line):
            found.append(line)
    return found


def cause_of(report: Diagnosis) -> Cause | None:
    """The cause of the VM's latest failure, from its QEMU log when the log is of that attempt."""
    failure = latest_failure(report.failures)
    agent_reason = failure.exit_reason or failure.exit_status if failure else ""
    log = report.qemu_log
    remote_log = len(log) == 1 and log[0].startswith("(the QEMU log is on ")
    if log and not remote_log:
        started, lines = last_run(log)
        stale = (
            failure is not None
            and failure.when is not None
            and started is not None
            and started < failure.when - SAME_ATTEMPT
        )
        errors = error_lines(lines)
        if errors and not stale:
            where = f"the QEMU log on {report.libvirt_host}" if report.libvirt_host else "the QEMU log"
            note = f"resource agent: {agent_reason}" if agent_reason else ""
            return Cause(errors[-1], where, note)
        if stale and failure is not None:
            assert started is not None
            note = (
                f"the QEMU log's last run started {started.astimezone(UTC):%Y-%m-%d %H:%M} UTC, before this failure:"
                " libvirt refused before QEMU ran (its message is in the Pacemaker log"
                + (f" on {failure.node})" if failure.node else ")")
            )
            return Cause(agent_reason or "the start failed", "the resource agent", note)
    if remote_log and failure is not None:
        return Cause(agent_reason or "the start failed", "the resource agent", log[0].strip("()"))
    if failure is not None and agent_reason:
        return Cause(agent_reason, "the resource agent")
    return None
