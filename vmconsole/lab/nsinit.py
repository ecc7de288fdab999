"""Run inside a fresh private mount namespace: mount the lab's directories, then exec the daemon.

Used as ``unshare --mount --propagation private -- python -m vmconsole.lab.nsinit --bind SRC:DST ...
-- PROGRAM ARGS``. The binds exist only in the daemon's namespace, so corosync and pacemaker keep
their state under the lab directory and the host's /var/lib/pacemaker, /var/lib/corosync and OCF
agents stay untouched; when the daemons die, the mounts vanish with them.

A node of the multi-node lab is made the same way, in a new UTS namespace too: its host name, a
tmpfs on /run and /dev/shm, writable overlays on /etc and /var whose upper layers are the node's
directory, then binds; ``--ready`` says when all is mounted, and the command (``sleep infinity``)
only holds the namespaces for the node's daemons, which enter them with nsenter.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vmconsole.lab.nsinit")
    parser.add_argument("--hostname", help="set the host name (needs a UTS namespace of its own)")
    parser.add_argument("--tmpfs", action="append", default=[], metavar="TARGET:MODE")
    parser.add_argument("--mkdir", action="append", default=[], metavar="PATH:MODE", help="after the tmpfs")
    parser.add_argument(
        "--overlay-rw",
        action="append",
        default=[],
        metavar="UPPER:WORK:TARGET",
        help="writable overlay on TARGET: TARGET as it is below, UPPER (where writes go) above",
    )
    parser.add_argument("--bind", action="append", default=[], metavar="SRC:DST")
    parser.add_argument(
        "--overlay",
        action="append",
        default=[],
        metavar="LOWER1:LOWER2:TARGET",
        help="read-only overlay of the lower directories (first wins) on TARGET",
    )
    parser.add_argument("--ready", help="a file to create once everything is mounted")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    if args.hostname:
        socket.sethostname(args.hostname)
    for spec in args.tmpfs:
        target, mode = spec.rsplit(":", 1)
        _mount("-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", target)
    for spec in args.mkdir:
        path, mode = spec.rsplit(":", 1)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, int(mode, 8))
    for spec in args.overlay_rw:
        upper, work, target = spec.split(":")
        _mount("-t", "overlay", "overlay", "-o", f"lowerdir={target},upperdir={upper},workdir={work}", target)
    for spec in args.bind:
        source, target = spec.split(":", 1)
        _mount("--bind", source, target)
    for spec in args.overlay:
        *lowers, target = spec.split(":")
        _mount("-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(lowers), target)
    if args.ready:
        Path(args.ready).touch()
    sys.stdout.flush()
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
