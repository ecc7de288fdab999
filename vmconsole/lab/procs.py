"""Processes the lab started: found by PID file, checked by command line, stopped by PID only."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def alive(pid: int | None) -> bool:
    """True when the process exists and is not a zombie.

    PID 1 on these machines may reap orphans late, so ``kill -0`` alone reports dead daemons as alive.
    """
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself contain spaces.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def matches(pid: int | None, needle: str) -> bool:
    """True when ``pid`` is alive and its command line mentions ``needle`` (our conf or lab path).

    This is what keeps the lab from ever signalling a process that merely reused a recorded PID.
    """
    return pid is not None and alive(pid) and any(needle in part for part in cmdline(pid))


def is_daemon(pid: int | None, name: str) -> bool:
    """True when ``pid`` is alive and is the daemon ``name`` itself (its program is ``name``), or the
    lab's launcher on its way to exec it (``python -m vmconsole.lab.nsinit ... -- name``). A process
    that only mentions the name (a ``tail -f`` of its log that reused a recorded PID) is not it."""
    if pid is None or not alive(pid):
        return False
    argv = cmdline(pid)
    if not argv:
        return False
    if os.path.basename(argv[0]) == name:
        return True
    return "vmconsole.lab.nsinit" in argv and name in (os.path.basename(part) for part in argv)


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    result: list[int] = []
    stack = [pid]
    while stack:
        for child in children(stack.pop()):
            result.append(child)
            stack.append(child)
    return result


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


def stop(pid: int, *, timeout: float, sig: int = signal.SIGTERM) -> float:
    """Signal ``pid``, wait for it (and the children it had) to go, SIGKILL what remains.

    Returns the seconds it took.
    """
    started = time.monotonic()
    family = [pid, *descendants(pid)]
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return 0.0
    if not wait_gone([pid], timeout):
        for victim in [*descendants(pid), pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        wait_gone([pid], 5.0)
    # Children that outlived their parent (reparented to PID 1) are ours too.
    leftovers = [p for p in family if alive(p)]
    for victim in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    wait_gone(leftovers, 5.0)
    return time.monotonic() - started


def run_daemonizing(argv: list[str], log_file: Path, *, timeout: float, env: dict[str, str] | None = None) -> None:
    """Run a daemon that forks itself into the background and wait for the parent to return.

    Its output goes to ``log_file``, never to a pipe: a daemon child holding our pipe open would make
    us wait for it forever.
    """
    import subprocess

    full_env = {**os.environ, **env} if env else None
    with log_file.open("ab") as out:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env=full_env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{argv[0]} did not return within {timeout:g} s (see {log_file})") from exc
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{argv[0]} failed with exit code {proc.returncode}: {' / '.join(tail)}")


def spawn(argv: list[str], log_file: Path, *, env: dict[str, str] | None = None) -> int:
    """Start a foreground daemon in its own session, output to ``log_file``; return its PID."""
    import subprocess

    full_env = {**os.environ, **env} if env else None
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
    return proc.pid
