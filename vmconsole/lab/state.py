"""The lab's memory of what it started and what it changed on the host, kept in ``lab.json``.

Written after every step of ``up`` so that ``down`` can undo exactly what happened, even when ``up``
failed half-way.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class NodeState:
    """One node of a multi-node lab: its namespaces (held by one process) and the daemons in them."""

    name: str
    address: str
    observer: bool = False
    # the process that holds the node's mount and UTS namespaces (it enters the node's netns first)
    holder: int | None = None
    net_ns: str = ""  # "net:[inode]" of its network namespace (how a node's processes are found)
    pids: dict[str, int] = field(default_factory=dict)
    crashed: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeState:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class LabState:
    root: str
    started_at: float = 0.0
    # component name -> pid, for daemons whose pid is not in a pid file of their own
    pids: dict[str, int] = field(default_factory=dict)
    # "mode uid gid" of /dev/kvm before the lab changed it
    kvm_mode: str | None = None
    libvirtd_ours: bool = False
    virtlogd_ours: bool = False
    secret_uuid: str | None = None
    secret_ours: bool = False
    domain_type: str = "kvm"
    node: str = ""
    # host directory -> names it held before up (entries that appear later are the lab's)
    watched: dict[str, list[str]] = field(default_factory=dict)
    steps_done: list[str] = field(default_factory=list)
    up_seconds: float | None = None
    # multi-node lab only (empty for the single-node lab)
    nodes: list[NodeState] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)  # network namespaces up created, in order
    host_link: str | None = None  # the host's veth into the lab network, when up created it
    run_netns_made: bool = False  # /run/netns did not exist before up (ip made it a mount point)
    ceph_addr: str = ""  # where the lab's Ceph listens (empty: the single-node default, loopback)

    def find_node(self, name: str) -> NodeState | None:
        return next((n for n in self.nodes if n.name == name), None)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LabState | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["nodes"] = [NodeState.from_dict(n) for n in known.get("nodes", []) if isinstance(n, dict)]
        return cls(**known)
