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
