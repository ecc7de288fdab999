"""The multi-node lab's network: one bridge in a hub namespace, one namespace per node, one host link.

    netns vmclab-hub   bridge br0, no address, no uplink
    netns vmclab-nI    eth0 = 10.213.0.I/24 (a veth into br0), lo; no default route
    host               vmclab0 = 10.213.0.254/24 (a veth into br0): the lab's Ceph listens there

Nothing leaves these namespaces: there is no route out, and the host end only reaches the nodes.
Every name is fixed, so a second multi-node lab cannot come up beside a running one (``ip netns
add`` refuses), and none of them can meet the single-node lab, which lives on loopback only.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from vmconsole.backends.proc import run
from vmconsole.domain.errors import BackendError
from vmconsole.lab.state import LabState

PREFIX = "vmclab-"
HUB = f"{PREFIX}hub"
BRIDGE = "br0"
HOST_LINK = "vmclab0"
SUBNET = "10.213.0"
PREFIX_LEN = 24
HOST_ADDR = f"{SUBNET}.254"
NETWORK = f"{SUBNET}.0/{PREFIX_LEN}"
RUN_NETNS = Path("/run/netns")

Log = Callable[[str], None]


def netns_name(node: str) -> str:
    return f"{PREFIX}{node}"


def node_address(index: int) -> str:
    return f"{SUBNET}.{index}"


def netns_path(node: str) -> str:
    return str(RUN_NETNS / netns_name(node))


def _ip(*args: str, check: bool = True) -> None:
    run(["ip", *args], timeout=15, backend="ip", check=check)


def preflight() -> None:
    """Refuse when the lab network exists already (another multi-node lab) or its subnet is taken."""
    if (RUN_NETNS / HUB).exists():
        raise BackendError("ip", f"network namespace {HUB} exists: a multi-node lab is running on this machine")
    result = run(["ip", "-o", "-4", "addr", "show"], timeout=10, backend="ip", check=True)
    for line in result.stdout.splitlines():
        if f" {SUBNET}." in line:
            raise BackendError("ip", f"the lab subnet {NETWORK} is in use on this machine: {line.split()[1]}")


def _add_netns(state: LabState, name: str, save: Callable[[], None]) -> None:
    if not RUN_NETNS.exists() and not state.run_netns_made:
        state.run_netns_made = True
        save()
    _ip("netns", "add", name)
    state.netns.append(name)
    save()
    _ip("-n", name, "link", "set", "lo", "up")


def up_hub(state: LabState, save: Callable[[], None]) -> None:
    """The hub and the host's link into it, with the address the lab's Ceph binds."""
    _add_netns(state, HUB, save)
    _ip("-n", HUB, "link", "add", BRIDGE, "type", "bridge")
    _ip("-n", HUB, "link", "set", BRIDGE, "up")
    # created in the root namespace, its peer moved into the hub at once
    _ip("link", "add", HOST_LINK, "type", "veth", "peer", "name", "host", "netns", HUB)
    state.host_link = HOST_LINK
    save()
    _ip("-n", HUB, "link", "set", "host", "master", BRIDGE, "up")
    _ip("addr", "add", f"{HOST_ADDR}/{PREFIX_LEN}", "dev", HOST_LINK)
    _ip("link", "set", HOST_LINK, "up")


def up_node(state: LabState, node: str, address: str, save: Callable[[], None]) -> None:
    name = netns_name(node)
    _add_netns(state, name, save)
    _ip("-n", HUB, "link", "add", node, "type", "veth", "peer", "name", "eth0", "netns", name)
    _ip("-n", HUB, "link", "set", node, "master", BRIDGE, "up")
    _ip("-n", name, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0")
    _ip("-n", name, "link", "set", "eth0", "up")


def down(state: LabState, log: Log, save: Callable[[], None]) -> None:
    """Delete what up created (the veths go with their namespaces), and /run/netns if up made it.

    The namespace numbers recorded for the nodes are forgotten first: a number outlives nothing it
    named, so it can never point at a namespace made later with the same number.
    """
    for node in state.nodes:
        node.net_ns = ""
    save()
    for name in reversed(state.netns):
        if not name.startswith(PREFIX):
            continue  # never delete a namespace the lab did not name
        if (RUN_NETNS / name).exists():
            _ip("netns", "del", name, check=False)
            log(f"network namespace {name} deleted")
    state.netns = []
    if state.host_link and Path(f"/sys/class/net/{state.host_link}").exists():
        _ip("link", "del", state.host_link, check=False)
    state.host_link = None
    if state.run_netns_made and RUN_NETNS.is_dir() and not os.listdir(RUN_NETNS):
        # ip made /run/netns a mount point (a bind on itself) the first time: undo both
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(["umount", str(RUN_NETNS)], capture_output=True, timeout=10, check=False)
        with contextlib.suppress(OSError):
            RUN_NETNS.rmdir()
        state.run_netns_made = False
