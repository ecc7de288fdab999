"""Run an external tool: argv list only, a timeout always, output captured as text."""

from __future__ import annotations

import ctypes
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from vmconsole.domain.errors import BackendError, BackendTimeout


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_text(self) -> str:
        """The most telling line of the tool's complaint, for an error message."""
        text = (self.stderr or self.stdout).strip()
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {self.returncode}"


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    backend: str,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    check: bool = False,
) -> Completed:
    """Run ``argv`` and return its result; raise BackendTimeout when it does not finish in time.

    ``env`` entries are added to the current environment. With ``check`` a non-zero exit raises
    BackendError carrying the tool's own last line of complaint.
    """
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackendTimeout(backend, f"{argv[0]} did not answer within {timeout:g} s") from exc
    except FileNotFoundError as exc:
        raise BackendError(backend, f"{argv[0]} is not installed (not found on PATH)") from exc
    result = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and not result.ok:
        raise BackendError(backend, f"{' '.join(argv[:2])} failed: {result.error_text()}")
    return result


def die_with_parent() -> None:
    """``preexec_fn`` for long copies: the child gets SIGKILL when vmconsole dies, so a killed task
    never leaves a copy running behind the recovery that undoes it."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass(frozen=True)
class LongRun:
    """How a long copy ended: its exit code, the last lines of its complaint, and whether it was cancelled."""

    returncode: int
    error_lines: tuple[str, ...]
    cancelled: bool = False
    stalled: bool = False  # killed: no progress for longer than it was allowed

    @property
    def last_error(self) -> str:
        return self.error_lines[-1] if self.error_lines else str(self.returncode)


def follow_progress(
    argv: Sequence[str],
    *,
    progress_on: str,
    percent: re.Pattern[bytes],
    report: Callable[[float], None],
    cancelled: Callable[[], bool],
    stall_after: float | None = None,
) -> LongRun:
    """Run a long copy (``qemu-img convert -p``, ``rbd deep cp``) and report the percent it prints.

    ``percent`` finds the percentage in what the tool writes on ``progress_on`` ("stdout" or
    "stderr"); ``report`` gets each new value. The child dies with vmconsole, and is killed as soon as
    ``cancelled()`` says so (or ``report`` raises), so a cancelled task never leaves a copy running.
    A copy whose percent does not move for ``stall_after`` seconds is killed too (``stalled``): a
    sick cluster must not hold a task, and its locks, forever.
    """
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if progress_on == "stdout" else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    assert proc.stderr is not None
    streams = [s for s in (proc.stdout, proc.stderr) if s is not None]
    progress_stream = proc.stdout if progress_on == "stdout" else proc.stderr
    errors = b""
    tail = b""
    last: float | None = None
    moved = time.monotonic()
    try:
        while streams:
            if cancelled():
                proc.kill()
                proc.wait()
                return LongRun(proc.returncode, (), cancelled=True)
            if stall_after is not None and time.monotonic() - moved > stall_after:
                proc.kill()
                proc.wait()
                return LongRun(proc.returncode, (), stalled=True)
            ready, _, _ = select.select(streams, [], [], 0.2)
            for stream in ready:
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:  # the tool closed that stream (it is exiting)
                    streams.remove(stream)
                    continue
                if stream is proc.stderr:
                    errors = (errors + chunk)[-8192:]
                if stream is progress_stream:
                    tail = (tail + chunk)[-256:]
                    found = percent.findall(tail)
                    if found:
                        value = float(found[-1])
                        if value != last:
                            last, moved = value, time.monotonic()
                        report(value)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    lines = errors.decode(errors="replace").replace("\r", "\n").splitlines()
    complaint = tuple(line for line in lines if line.strip() and not percent.search(line.encode()))
    return LongRun(proc.returncode, complaint)
