"""Run an external tool: argv list only, a timeout always, output captured as text."""

from __future__ import annotations

import contextlib
import ctypes
import locale
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

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

    The tool reads its input from and writes its output to anonymous in-memory files, not pipes: a
    pipe makes Python copy the data through in 4-32 KB pieces, each waiting for the interpreter's lock,
    which another busy thread holds for up to 5 ms at a time (the whole CIB is 1.5 MB at 500 VMs).
    Returning at the tool's exit also means a daemon it left holding its output cannot keep us waiting.
    """
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    encoding = locale.getpreferredencoding(False)
    with contextlib.ExitStack() as files:
        stdin: int | IO[bytes] = subprocess.DEVNULL
        if input_text is not None:
            stdin = files.enter_context(_scratch("input"))
            stdin.write(input_text.encode(encoding))
            stdin.seek(0)
        stdout, stderr = files.enter_context(_scratch("stdout")), files.enter_context(_scratch("stderr"))
        try:
            proc = subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=full_env)
        except FileNotFoundError as exc:
            raise BackendError(backend, f"{argv[0]} is not installed (not found on PATH)") from exc
        try:
            returncode = _wait(proc, timeout)
        except BaseException as exc:
            proc.kill()
            proc.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise BackendTimeout(backend, f"{argv[0]} did not answer within {timeout:g} s") from exc
            raise
        result = Completed(tuple(argv), returncode, _text(stdout, encoding), _text(stderr, encoding))
    if check and not result.ok:
        raise BackendError(backend, f"{' '.join(argv[:2])} failed: {result.error_text()}")
    return result


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The exit code, as soon as the tool exits (``Popen.wait(timeout)`` polls, up to 50 ms late)."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return proc.wait()


def _scratch(name: str) -> IO[bytes]:
    """An anonymous file in memory (gone when closed), for a tool's input or output."""
    return open(os.memfd_create(f"vmconsole-{name}", os.MFD_CLOEXEC), "w+b")


def _text(file: IO[bytes], encoding: str) -> str:
    """What the tool wrote, as ``subprocess.run(text=True)`` gives it (universal newlines)."""
    file.seek(0)
    return file.read().decode(encoding).replace("\r\n", "\n").replace("\r", "\n")


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
