"""Run an external tool: argv list only, a timeout always, output captured as text."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
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
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
