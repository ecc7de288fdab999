"""Where everything of one lab lives: a single directory, nothing else written outside it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = "/tmp/vmconsole-lab"
ENV_DIR = "VMCONSOLE_LAB_DIR"


def default_dir() -> Path:
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def config_file(self) -> Path:
        """The vmconsole configuration that points the console at this lab."""
        return self.root / "vmconsole.toml"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    # Ceph
    @property
    def ceph(self) -> Path:
        return self.root / "ceph"

    @property
    def ceph_conf(self) -> Path:
        return self.ceph / "ceph.conf"

    @property
    def ceph_run(self) -> Path:
        return self.ceph / "run"

    # libvirt
    @property
    def libvirt(self) -> Path:
        return self.root / "libvirt"

    # corosync + pacemaker
    @property
    def corosync_conf(self) -> Path:
        return self.root / "corosync" / "corosync.conf"

    @property
    def corosync_lib(self) -> Path:
        return self.root / "corosync" / "lib"

    @property
    def pacemaker_lib(self) -> Path:
        return self.root / "pacemaker" / "lib"

    @property
    def pacemaker_log(self) -> Path:
        return self.root / "pacemaker" / "log"

    @property
    def ocf_root(self) -> Path:
        """Holds ``seapath/VirtualDomain``, overlaid on /usr/lib/ocf/resource.d for pacemaker only."""
        return self.root / "ocf"

    @property
    def xml_dir(self) -> Path:
        """The resource agent's cache of each VM's domain XML (SEAPATH: /etc/pacemaker)."""
        return self.root / "pacemaker" / "xml"

    # guests
    @property
    def guests(self) -> Path:
        return self.root / "guests"

    @property
    def sercon(self) -> Path:
        return self.guests / "sercon-port.bin"

    # the multi-node lab
    @property
    def nodes(self) -> Path:
        """One directory per node of a multi-node lab."""
        return self.root / "nodes"

    def node(self, name: str) -> NodePaths:
        return NodePaths(self.nodes / name)

    @property
    def sbin(self) -> Path:
        """Holds the lab fence agent, overlaid on /usr/sbin inside the nodes only."""
        return self.root / "sbin"

    @property
    def ssh(self) -> Path:
        """The lab's SSH client key and the authorized key of every node (live migration)."""
        return self.root / "ssh"

    @property
    def fence_log(self) -> Path:
        return self.logs / "fence.log"


@dataclass(frozen=True)
class NodePaths:
    """One node of a multi-node lab: the upper layers of its /etc and /var, its logs and pid files.

    Inside the node's mount namespace /etc and /var are overlays whose writes land here, so whatever
    the node's daemons write (CIB, libvirt state, logs) stays in the node's own directory.
    """

    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def work(self) -> Path:
        """Overlay work directories (one per overlay, on the same filesystem as the uppers)."""
        return self.root / "work"

    @property
    def ceph(self) -> Path:
        """Bound on the node's /etc/ceph: written once Ceph is up, after the node started."""
        return self.root / "ceph"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def ready(self) -> Path:
        """Created by the node's namespace holder once every mount is in place."""
        return self.root / "ready"
