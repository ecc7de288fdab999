"""Run inside a fresh private mount namespace: mount the lab's directories, then exec the daemon.

Used as ``unshare --mount --propagation private -- python -m vmconsole.lab.nsinit --bind SRC:DST ...
-- PROGRAM ARGS``. The binds exist only in the daemon's namespace, so corosync and pacemaker keep
their state under the lab directory and the host's /var/lib/pacemaker, /var/lib/corosync and OCF
agents stay untouched; when the daemons die, the mounts vanish with them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vmconsole.lab.nsinit")
    parser.add_argument("--bind", action="append", default=[], metavar="SRC:DST")
    parser.add_argument(
        "--overlay",
        action="append",
        default=[],
        metavar="LOWER1:LOWER2:TARGET",
        help="read-only overlay of the lower directories (first wins) on TARGET",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    for spec in args.bind:
        source, target = spec.split(":", 1)
        subprocess.run(["mount", "--bind", source, target], check=True)
    for spec in args.overlay:
        *lowers, target = spec.split(":")
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(lowers), target], check=True)
    sys.stdout.flush()
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
