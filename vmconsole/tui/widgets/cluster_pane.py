"""The cluster at a glance: quorum, Ceph health, and each node with the VMs it hosts.

The pane takes the focus (tab from the VM table, or a click): **up**/**down** (or **j**/**k**) move
a cursor over the nodes, a click on a node selects it, and the node actions (standby, online) act on
the node under the cursor. One line per node (a long list of VMs is cut, never wrapped, so a line is
a node).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget

from vmconsole.domain.model import ClusterState, NodeStatus
from vmconsole.tui import gating, text
from vmconsole.tui.actions import NODE_ACTIONS

NODE_STYLES = {
    NodeStatus.ONLINE: "green",
    NodeStatus.PENDING: "yellow",
    NodeStatus.STANDBY: "yellow",
    NodeStatus.MAINTENANCE: "yellow",
    NodeStatus.OFFLINE: "red",
    NodeStatus.UNCLEAN: "bold red",
}
CEPH_STYLES = {"HEALTH_OK": "green", "HEALTH_WARN": "yellow", "HEALTH_ERR": "bold red"}


class ClusterPane(Widget, can_focus=True):
    HELP = """\
## Cluster pane

Quorum, Ceph health (with its active checks) and every node: online, standby, maintenance,
offline; **DC** marks the designated controller, **(observer)** the observer (a member that keeps
quorum and never runs VMs: every VM is banned from it); after the node, the VMs it hosts now.

**up**/**down** (**j**/**k**) or a click select a node. **S** puts it in standby (drains it: its
VMs move to other nodes, or stop when there is none; type the node name to confirm), **O** brings it
back online (y/n). The progress screen, then a notification, say where each VM went.
"""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"cluster-pane--cursor"}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Previous node", show=False, id="node.previous"),
        Binding("down,j", "cursor(1)", "Next node", show=False, id="node.next"),
        *(Binding(spec.key, gating.act(spec.name), spec.label, id=spec.binding_id) for spec in NODE_ACTIONS),
    ]

    class ActionRequested(Message):
        """A node action on the node under the cursor (handled by the main screen)."""

        def __init__(self, action: str, node: str) -> None:
            super().__init__()
            self.action = action
            self.node = node

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: ClusterState | None = None
        self.cursor_node: str | None = None
        self._node_lines: dict[int, str] = {}  # line of the rendered text -> the node on it

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.state.nodes] if self.state is not None else []

    def show_state(self, state: ClusterState | None) -> None:
        self.state = state
        names = self.node_names
        if self.cursor_node not in names:
            self.cursor_node = names[0] if names else None
        self.refresh(layout=True)

    # ------------------------------------------------------------------------------------ keys
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # greyed out when disabled; the main screen says why when the key is pressed
        return gating.check_action(self.app, action, parameters)

    def action_cursor(self, step: int) -> None:
        names = self.node_names
        if not names:
            return
        index = names.index(self.cursor_node) if self.cursor_node in names else 0
        self.cursor_node = names[max(0, min(len(names) - 1, index + step))]
        self.refresh()

    def action_act(self, action: str) -> None:
        if self.cursor_node is None:
            self.notify("No node to act on.", severity="warning", markup=False)
            return
        self.post_message(self.ActionRequested(action, self.cursor_node))

    def on_click(self, event: events.Click) -> None:
        """A click on a node's line selects that node (and the pane takes the focus)."""
        offset = event.get_content_offset(self)
        node = self._node_lines.get(offset.y) if offset is not None else None
        if node is not None:
            self.cursor_node = node
            self.focus()
            self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ------------------------------------------------------------------------------------ render
    def render(self) -> Text:
        state = self.state
        if state is None:
            return Text("cluster: reading…", style="dim")
        out = Text(end="", no_wrap=True, overflow="ellipsis")
        self._node_lines = {}
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
        cursor_style = self.get_component_rich_style("cluster-pane--cursor", partial=True) if self.has_focus else None
        for node in state.nodes:
            out.append("\n")
            self._node_lines[out.plain.count("\n")] = node.name
            start = len(out)
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
            if cursor_style is not None and node.name == self.cursor_node:
                out.stylize(cursor_style, start, len(out))
        for node_name, vms in hosted.items():  # a VM on a node crm_mon did not list
            out.append("\n")
            out.append("? ", style="yellow")
            out.append(text.plain(node_name, "bold"))
            out.append(": ")
            out.append(text.plain(" ".join(vms), "dim"))
        if not state.nodes:
            out.append("\nno node information", style="dim")
        return out
