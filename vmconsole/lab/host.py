"""Is this machine already a node of a real cluster? Then the lab must not start here."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from vmconsole.lab import procs

CLUSTER_DAEMONS = ("corosync", "pacemakerd", "ceph-mon", "ceph-osd")


def cluster_node_reason(lab_dir: Path, ceph_conf: Path = Path("/etc/ceph/ceph.conf")) -> str | None:
    """Why this machine looks like a node of a real cluster (None when it does not): a Ceph
    configuration of its own, or a cluster daemon that is not the lab's."""
    if ceph_conf.exists():
        return f"{ceph_conf} exists"
    lab = str(lab_dir)
    own_namespace = _mount_namespace("self")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = procs.cmdline(int(entry.name))
        if not argv or Path(argv[0]).name not in CLUSTER_DAEMONS:
            continue
        # the lab's own daemons: Ceph's are started on the lab's files, the cluster's in a namespace
        if any(lab in arg for arg in argv) or _mount_namespace(entry.name) != own_namespace:
            continue
        if _runs_on_a_lab(argv):
            continue  # another lab's Ceph (a multi-node lab in its own directory)
        return f"{Path(argv[0]).name} runs here (pid {entry.name})"
    return None


def _runs_on_a_lab(argv: list[str]) -> bool:
    """A Ceph daemon started on a lab's configuration (``-c <lab>/ceph/ceph.conf``, beside lab.json)."""
    for flag, value in itertools.pairwise(argv):
        if flag == "-c" and value.endswith("/ceph/ceph.conf"):
            return (Path(value).parent.parent / "lab.json").is_file()
    return False


def _mount_namespace(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def main() -> int:
    """``python -m vmconsole.lab.host LAB_DIR``: print the reason and exit 0 when this is a cluster node."""
    import sys

    reason = cluster_node_reason(Path(sys.argv[1]))
    if reason is None:
        return 1
    print(reason)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
