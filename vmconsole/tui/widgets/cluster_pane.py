"""The cluster at a glance: quorum, Ceph health, and each node with the VMs it hosts."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from vmconsole.core.model import ClusterState, NodeStatus
from vmconsole.tui import text

NODE_STYLES = {
    NodeStatus.ONLINE: "green",
    NodeStatus.STANDBY: "yellow",
    NodeStatus.MAINTENANCE: "yellow",
    NodeStatus.OFFLINE: "red",
    NodeStatus.UNCLEAN: "bold red",
}
CEPH_STYLES = {"HEALTH_OK": "green", "HEALTH_WARN": "yellow", "HEALTH_ERR": "bold red"}


class ClusterPane(Widget):
    HELP = """\
## Cluster pane

Quorum, Ceph health (with its active checks) and every node: online, standby, maintenance,
offline; **DC** marks the designated controller; after the node, the VMs it hosts now.
"""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: ClusterState | None = None

    def show_state(self, state: ClusterState | None) -> None:
        self.state = state
        self.refresh(layout=True)

    def render(self) -> Text:
        state = self.state
        if state is None:
            return Text("cluster: reading…", style="dim")
        out = Text(end="")
        out.append("quorum ")
        if state.quorum is None:
            out.append("?", style="yellow")
        else:
            out.append("yes" if state.quorum else "NO", style="green" if state.quorum else "bold red")
        out.append("  ceph ")
        if state.ceph is None:
            out.append("?", style="yellow")
        else:
            out.append(text.plain(state.ceph.status, CEPH_STYLES.get(state.ceph.status, "yellow")))
        for check in state.ceph.checks[:3] if state.ceph else ():
            out.append("\n  ")
            out.append(text.plain(text.shorten(check, 120), "yellow"))
        hosted: dict[str, list[str]] = {}
        for vm in state.vms:
            if vm.node:
                hosted.setdefault(vm.node, []).append(vm.name)
        for node in state.nodes:
            out.append("\n")
            out.append("● ", style=NODE_STYLES.get(node.status, ""))
            out.append(text.plain(node.name, "bold"))
            out.append(" ")
            out.append(node.status.value, style=NODE_STYLES.get(node.status, ""))
            if node.is_dc:
                out.append(" DC", style="bold cyan")
            if node.kind != "member":
                out.append(f" ({node.kind})", style="dim")
            vms = hosted.pop(node.name, [])
            if vms:
                out.append(": ")
                out.append(text.plain(" ".join(vms), "dim"))
        for node_name, vms in hosted.items():  # a VM on a node crm_mon did not list
            out.append("\n")
            out.append("? ", style="yellow")
            out.append(text.plain(node_name, "bold"))
            out.append(": ")
            out.append(text.plain(" ".join(vms), "dim"))
        if not state.nodes:
            out.append("\nno node information", style="dim")
        return out
