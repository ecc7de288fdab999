"""``vmconsole lab up | down | status``: bring the whole local cluster up and tear it down."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmconsole import config as configuration
from vmconsole.backends.proc import run
from vmconsole.domain.errors import BackendError, VmConsoleError
from vmconsole.lab import ceph, cluster, hostvirt, network, nodes, procs
from vmconsole.lab.paths import ENV_DIR, LabPaths, default_dir
from vmconsole.lab.state import LabState, NodeState

Log = Callable[[str], None]

# Host directories where the lab's daemons create entries of their own: whatever appears there
# between up and down (and matches the names below) is removed by down.
WATCHED: dict[str, tuple[str, ...] | None] = {
    "/run": ("crm", "resource-agents", "libvirt", "libvirtd.pid", "virtlogd.pid", "mount", "corosync.pid"),
    "/dev/shm": ("qb-",),
    "/var/log/libvirt/qemu": None,
    "/var/lib/libvirt/qemu": None,
    "/var/cache/libvirt/qemu": None,
    "/var/cache/libvirt/qemu/capabilities": None,
    "/var/lib/libvirt/dnsmasq": None,
}

# A test hook: make `up` fail after the named step, to prove that `down` cleans up after it.
FAIL_AFTER_ENV = "VMCONSOLE_LAB_FAIL_AFTER"

COMPONENTS = ("ceph-mon", "ceph-mgr", "ceph-osd", "virtlogd", "libvirtd", "corosync", "pacemaker")


class LabError(VmConsoleError):
    exit_code = 9


@dataclass
class ComponentStatus:
    name: str
    up: bool
    pid: int | None = None
    health: str = ""
    detail: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "up": self.up,
            "pid": self.pid,
            "health": self.health,
            "detail": self.detail,
        }


@dataclass
class NodeStatus:
    """One node of a multi-node lab: its daemons and how the cluster sees it."""

    name: str
    role: str
    address: str
    holder: int | None
    daemons: dict[str, int | None]
    online: bool
    dc: bool

    @property
    def up(self) -> bool:
        return self.holder is not None and all(self.daemons.values()) and self.online

    def component(self) -> ComponentStatus:
        if self.holder is None:
            health = "down"
        else:
            health = ", ".join([self.role, "online" if self.online else "offline", *(["DC"] if self.dc else [])])
        detail = [f"{d} {pid}" if pid else f"{d} down" for d, pid in self.daemons.items()]
        return ComponentStatus(self.name, self.up, self.holder, health, detail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "address": self.address,
            "up": self.up,
            "online": self.online,
            "dc": self.dc,
            "pid": self.holder,
            "daemons": self.daemons,
        }


def nodes_plan(count: int, observer: bool) -> list[NodeState]:
    """The nodes of a multi-node lab; none for the single-node lab (one node, no observer)."""
    if count == 1 and not observer:
        return []
    return nodes.plan(count, observer)


def describe_layout(planned: list[NodeState]) -> str:
    if not planned:
        return "one node"
    roles = [f"{n.name} {'observer' if n.observer else 'hypervisor'}" for n in planned]
    return f"{len(planned)} nodes ({', '.join(roles)})"


class Lab:
    def __init__(self, root: Path | None = None, log: Log | None = None) -> None:
        self.paths = LabPaths((root or default_dir()).resolve())
        self._log = log or (lambda message: None)
        self._t0 = time.monotonic()
        self._log_lock = threading.Lock()

    def log(self, message: str) -> None:
        with self._log_lock:
            self._log(f"[lab {time.monotonic() - self._t0:6.2f}s] {message}")

    # ------------------------------------------------------------------ state
    def state(self) -> LabState | None:
        """What ``up`` recorded, once checked: ``down`` acts on it as root, so it must be the lab's own."""
        if not self.paths.state_file.exists():
            return None
        self._check_trusted()
        state = LabState.load(self.paths.state_file)
        if state is None:
            return None
        if Path(state.root) != self.paths.root:
            raise LabError(f"{self.paths.state_file} names {state.root!r}, not its own directory: not trusted")
        foreign = [n for n in state.netns if not n.startswith(network.PREFIX)]
        if foreign or state.host_link not in (None, network.HOST_LINK):
            raise LabError(f"{self.paths.state_file} names network objects the lab never makes: not trusted")
        strangers = sorted(set(state.watched) - set(WATCHED))
        if strangers:
            raise LabError(
                f"{self.paths.state_file} names directories the lab never watches ({', '.join(strangers)}):"
                " not trusted; remove the lab directory by hand after checking it"
            )
        return state

    def _check_trusted(self) -> None:
        """The lab's directory and state file are this user's and nobody else can write them."""
        for path in (self.paths.root, self.paths.state_file):
            try:
                info = path.lstat()
            except OSError as exc:
                raise LabError(f"{path} cannot be read: {exc.strerror}") from exc
            if stat.S_ISLNK(info.st_mode):
                raise LabError(f"{path} is a symbolic link: not trusted")
            if info.st_uid != os.geteuid():
                raise LabError(f"{path} belongs to uid {info.st_uid}, not to this user: not trusted")
            if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise LabError(f"{path} can be written by other users: not trusted")

    def _save(self, state: LabState) -> None:
        state.save(self.paths.state_file)

    def _step(self, state: LabState, name: str) -> None:
        state.steps_done.append(name)
        self._save(state)
        if os.environ.get(FAIL_AFTER_ENV) == name:
            raise LabError(f"failing on purpose after step {name!r} ({FAIL_AFTER_ENV} is set)")

    def is_up(self) -> bool:
        statuses = self.status()
        return bool(statuses) and all(s.up for s in statuses)

    # ------------------------------------------------------------------ up
    def up(self, nodes: int = 1, observer: bool = False) -> float:
        """Bring the lab up; return the seconds it took. A running lab is left as it is.

        One node (the default) is the fast single-node lab on loopback; 2 or 3 nodes make the
        multi-node lab, the last node an observer with ``observer``.
        """
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it starts Ceph, libvirtd, corosync and pacemaker)")
        try:
            planned = nodes_plan(nodes, observer)
        except ValueError as exc:
            raise LabError(str(exc)) from exc
        self._t0 = time.monotonic()
        existing = self.state()
        if existing is not None:
            if existing.up_seconds is not None and self.is_up():
                layout = [(n.name, n.observer) for n in existing.nodes]
                if layout != [(n.name, n.observer) for n in planned]:
                    raise LabError(
                        f"the lab running in {self.paths.root} has another layout ({describe_layout(existing.nodes)})",
                        hint="run `vmconsole lab down` first",
                    )
                self.log(f"lab already running in {self.paths.root}")
                return 0.0
            raise LabError(
                f"a lab that is not fully up exists in {self.paths.root}",
                hint="run `vmconsole lab down` first",
            )
        if planned:
            return self._up_nodes(planned)
        return self._up_single()

    def _up_single(self) -> float:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.root.chmod(0o755)  # QEMU (libvirt-qemu) and pacemaker (hacluster) read files in it
        self.paths.logs.mkdir(exist_ok=True)
        state = LabState(root=str(self.paths.root), started_at=time.time())
        state.watched = {d: sorted(os.listdir(d)) for d in WATCHED if os.path.isdir(d)}
        self._save(state)

        errors: list[BaseException] = []

        def ceph_branch() -> None:
            try:
                ceph.up(self.paths, self.log)
                self._step(state, "ceph")
            except BaseException as exc:  # reported below, after both branches stopped
                errors.append(exc)

        ceph_thread = threading.Thread(target=ceph_branch, name="lab-ceph")
        ceph_thread.start()
        try:
            state.domain_type = hostvirt.fix_kvm(state, self.log)
            self._save(state)
            hostvirt.up(self.paths, state, self.log)
            self._step(state, "libvirt")
            cluster.up(self.paths, state, self.log)
            self._step(state, "pacemaker")
        except BaseException as exc:
            errors.append(exc)
        ceph_thread.join()
        if not errors:
            try:
                hostvirt.define_secret(self.paths, state, ceph.libvirt_key(self.paths), self.log)
                self._step(state, "secret")
                self._prepare_guests()
                ceph.wait_mgr(self.paths)
                self._write_config()
                self._step(state, "config")
            except BaseException as exc:
                errors.append(exc)
        if errors:
            self._save(state)
            first = errors[0]
            message = str(first) if isinstance(first, VmConsoleError | RuntimeError) else repr(first)
            raise LabError(
                f"lab up failed: {message}",
                hint=f"logs are in {self.paths.root}; `vmconsole lab down` cleans up",
            )
        state.up_seconds = round(time.monotonic() - self._t0, 2)
        self._save(state)
        self.log(f"lab up in {state.up_seconds:.1f} s; config: {self.paths.config_file}")
        return state.up_seconds

    def _prepare_guests(self) -> None:
        self.paths.guests.mkdir(exist_ok=True)
        # SeaBIOS prints on the serial port only when told to: etc/sercon-port = 0x3f8
        self.paths.sercon.write_bytes(b"\xf8\x03")
        self.paths.sercon.chmod(0o644)

    def config(self, multi_node: bool = False) -> configuration.Config:
        """The configuration of the lab; a multi-node lab's is for vmconsole run inside a node
        (``lab exec``), where libvirt and pacemaker are the node's and Ceph is on the host link."""
        addr = network.HOST_ADDR if multi_node else ceph.MON_ADDR
        return configuration.Config(
            ceph=configuration.CephSection(
                conf=str(self.paths.ceph_conf),
                client_id="admin",
                pool="rbd",
                monitors=(f"{addr}:{ceph.MON_PORT_V1}",),
            ),
            libvirt=configuration.LibvirtSection(uri=hostvirt.URI),
            # each node has its own /etc/pacemaker (its /etc is an overlay), as on SEAPATH
            pacemaker=configuration.PacemakerSection(
                xml_dir="/etc/pacemaker" if multi_node else str(self.paths.xml_dir)
            ),
            # the lab's nodes reach each other's libvirt over SSH as root, with the lab's key
            console=configuration.ConsoleSection(ssh_user="root") if multi_node else configuration.ConsoleSection(),
            lab_dir=str(self.paths.root),
        )

    def _write_config(self, multi_node: bool = False) -> None:
        header = "# Written by `vmconsole lab up`: points vmconsole at the local lab cluster.\n"
        if multi_node:
            header += (
                "# A multi-node lab: use it inside a node, `vmconsole lab exec NODE -- vmconsole ...`\n"
                "# (libvirt and pacemaker are the node's own; Ceph listens on the host link).\n"
            )
        self.paths.config_file.write_text(header + configuration.render_toml(self.config(multi_node)))

    # ------------------------------------------------------------------ multi-node
    def _up_nodes(self, planned: list[NodeState]) -> float:
        """The multi-node lab: network, then Ceph on the host link beside the nodes' start-up."""
        for system_dir in ("/etc", "/var"):
            if self.paths.root == Path(system_dir) or self.paths.root.is_relative_to(system_dir):
                raise LabError(f"a multi-node lab cannot live under {system_dir} (each node overlays it)")
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.root.chmod(0o755)
        self.paths.logs.mkdir(exist_ok=True)
        # nothing of a node lands in the host's directories: no host entry is watched (and so none
        # that the single-node lab beside it creates is ever taken for ours)
        state = LabState(root=str(self.paths.root), started_at=time.time(), nodes=planned, ceph_addr=network.HOST_ADDR)
        self._save(state)

        def save() -> None:
            self._save(state)

        errors: list[BaseException] = []
        ceph_thread: threading.Thread | None = None
        try:
            nodes.preflight()
            network.preflight()
            network.up_hub(state, save)
            for node in planned:
                network.up_node(state, node.name, node.address, save)
                node.net_ns = nodes.read_net_ns(node.name)
                save()
            self._step(state, "network")

            def ceph_branch() -> None:
                try:
                    ceph.up(self.paths, self.log, network.HOST_ADDR, network.NETWORK)
                    self._step(state, "ceph")
                except BaseException as exc:  # reported below, after both branches stopped
                    errors.append(exc)

            ceph_thread = threading.Thread(target=ceph_branch, name="lab-ceph")
            ceph_thread.start()
            state.domain_type = hostvirt.fix_kvm(state, self.log)
            save()
            nodes.prepare(self.paths, state)
            nodes.start_all(self.paths, state, planned, save, self.log)
            self._step(state, "nodes")
            seconds = nodes.wait_online(state, [n.name for n in planned])
            self.log(f"{len(planned)} nodes online ({seconds:.1f} s after the last one started)")
            nodes.crm_attribute(state, "stonith-enabled", "true")
            self._step(state, "pacemaker")
        except BaseException as exc:
            errors.append(exc)
        if ceph_thread is not None:
            ceph_thread.join()
        if not errors:
            try:
                nodes.write_ceph_client(self.paths, state)
                state.secret_uuid = str(uuid.uuid4())
                key = ceph.libvirt_key(self.paths)
                for node in nodes.hypervisors(state):
                    nodes.define_secret(self.paths, node, state.secret_uuid, key)
                self._step(state, "secret")
                self._prepare_guests()
                ceph.wait_mgr(self.paths)
                self._write_config(multi_node=True)
                self._step(state, "config")
            except BaseException as exc:
                errors.append(exc)
        if errors:
            self._save(state)
            first = errors[0]
            message = str(first) if isinstance(first, VmConsoleError | RuntimeError) else repr(first)
            raise LabError(
                f"lab up failed: {message}",
                hint=f"logs are in {self.paths.root}; `vmconsole lab down` cleans up",
            )
        state.up_seconds = round(time.monotonic() - self._t0, 2)
        self._save(state)
        self.log(
            f"lab up in {state.up_seconds:.1f} s: {describe_layout(planned)}; run vmconsole inside a node with"
            f" `vmconsole lab --dir {self.paths.root} exec {planned[0].name} -- vmconsole ...`"
        )
        return state.up_seconds

    def _down_nodes(self, state: LabState) -> float:
        """Power every node off (nothing of theirs outlives them), then Ceph and the network."""
        for node in state.nodes:
            count = nodes.power_off(node)
            if count:
                self.log(f"node {node.name} powered off ({count} processes)")
            self._save(state)
        ceph.stop(self.paths, self.log)
        network.down(state, self.log, lambda: self._save(state))
        self._save(state)
        users = _kvm_users()
        if users:
            # the single-node lab (or the host's libvirt) set it up so too, and still uses it
            self.log(f"/dev/kvm left as it is: {', '.join(users)} still run")
        else:
            hostvirt.restore_kvm(state)
        shutil.rmtree(self.paths.root, ignore_errors=True)
        seconds = time.monotonic() - self._t0
        self.log(f"lab down in {seconds:.1f} s, {self.paths.root} removed")
        return seconds

    def _node(self, name: str) -> tuple[LabState, NodeState]:
        state = self.state()
        if state is None:
            raise LabError(f"no lab in {self.paths.root}", hint="`vmconsole lab up --nodes 3` first")
        if not state.nodes:
            raise LabError(f"the lab in {self.paths.root} has one node only", hint="`lab up --nodes 2` or 3")
        node = state.find_node(name)
        if node is None:
            raise LabError(f"no node {name!r} in the lab (nodes: {', '.join(n.name for n in state.nodes)})")
        return state, node

    def crash(self, name: str) -> float:
        """Kill a node hard, as a power cut would: its QEMUs, libvirtd, pacemaker, corosync, all at
        once. The other nodes notice, fence it (a no-op by then) and restart its VMs."""
        self._t0 = time.monotonic()
        state, node = self._node(name)
        count = nodes.power_off(node)
        node.crashed = True
        self._save(state)
        seconds = time.monotonic() - self._t0
        self.log(f"node {name} crashed: {count} processes killed in {seconds:.2f} s")
        return seconds

    def rejoin(self, name: str, timeout: float = 90) -> float:
        """Start a crashed (or fenced) node again and wait until the cluster has it online."""
        self._t0 = time.monotonic()
        state, node = self._node(name)
        if nodes.processes(node):
            raise LabError(f"node {name} is running", hint=f"`vmconsole lab crash {name}` first")
        for stale in self.paths.node(name).var.joinpath("lib", "corosync").iterdir():
            if stale.is_file():
                stale.unlink()  # the ring id of the node's last life

        def before_cluster() -> None:
            if state.secret_uuid:
                nodes.define_secret(self.paths, node, state.secret_uuid, ceph.libvirt_key(self.paths))

        try:
            nodes.start(self.paths, state, node, lambda: self._save(state), self.log, before_cluster)
            nodes.wait_online(state, [name], timeout)
        except BackendError as exc:
            raise LabError(f"node {name} did not rejoin: {exc}", hint=f"logs in {self.paths.node(name).logs}") from exc
        seconds = time.monotonic() - self._t0
        self.log(f"node {name} online again in {seconds:.1f} s")
        return seconds

    def node_argv(self, name: str, command: list[str], cwd: str | None = None) -> list[str]:
        """The argv that runs ``command`` inside node ``name`` (its network, mount, UTS namespaces)."""
        _, node = self._node(name)
        try:
            return nodes.enter_argv(node, command, cwd)
        except BackendError as exc:
            raise LabError(str(exc), hint=f"`vmconsole lab rejoin {name}`") from exc

    def node_env(self) -> dict[str, str]:
        """What vmconsole run inside a node needs to find this lab (added to the environment)."""
        return {configuration.ENV_VAR: str(self.paths.config_file), ENV_DIR: str(self.paths.root)}

    def run_on(
        self, name: str, command: list[str], *, timeout: float, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside node ``name`` with the lab's configuration; output captured."""
        return subprocess.run(
            self.node_argv(name, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            env={**os.environ, **self.node_env()},
            check=False,
        )

    def current_node(self) -> str | None:
        """The node of this lab whose namespaces this process runs in (None: the host)."""
        state = self.state()
        mine = nodes.own_net_ns()
        for node in state.nodes if state else []:
            if mine is not None and nodes.node_net_ns(node) == mine:
                return node.name
        return None

    def seed_node(self) -> str | None:
        """Where the demo VMs of a multi-node lab are made from: a hypervisor that runs (None for
        the single-node lab, or when this process is inside a node already)."""
        state = self.state()
        if state is None or not state.nodes or self.current_node() is not None:
            return None
        for node in nodes.hypervisors(state):
            if nodes.processes(node):
                return node.name
        raise LabError("no hypervisor of the lab runs", hint="`vmconsole lab rejoin NODE`")

    def node_status(self, state: LabState | None = None) -> list[NodeStatus]:
        state = state or self.state()
        if state is None or not state.nodes:
            return []
        view = nodes.members(state) or {}
        result: list[NodeStatus] = []
        for node in state.nodes:
            running = bool(node.holder and procs.alive(node.holder))
            daemons = {
                d: (node.pids.get(d) if nodes.daemon_up(node, d) else None) for d in nodes.expected_daemons(node)
            }
            member = view.get(node.name)
            result.append(
                NodeStatus(
                    name=node.name,
                    role="observer" if node.observer else "hypervisor",
                    address=node.address,
                    holder=node.holder if running else None,
                    daemons=daemons,
                    online=bool(member and member.online),
                    dc=bool(member and member.dc),
                )
            )
        return result

    # ------------------------------------------------------------------ down
    def down(self) -> float:
        """Stop everything the lab started, undo what it changed, remove its directory."""
        self._t0 = time.monotonic()
        state = self.state()
        if state is None:
            if self.paths.root.exists():
                shutil.rmtree(self.paths.root, ignore_errors=True)
                self.log(f"removed {self.paths.root} (no lab state found in it)")
            else:
                self.log("no lab to take down")
            return time.monotonic() - self._t0
        if state.nodes:
            return self._down_nodes(state)
        vm_names = self._vm_names_best_effort()
        cluster.down(self.paths, state, self.log)
        hostvirt.down(self.paths, state, vm_names, self.log)
        ceph.stop(self.paths, self.log)
        hostvirt.restore_kvm(state)
        self._remove_new_host_entries(state)
        shutil.rmtree(self.paths.root, ignore_errors=True)
        seconds = time.monotonic() - self._t0
        self.log(f"lab down in {seconds:.1f} s, {self.paths.root} removed")
        return seconds

    def _vm_names_best_effort(self) -> set[str]:
        """VM names in the lab's pool, so that guests on a shared libvirtd can be cleaned up."""
        if ceph.daemon_pid(self.paths, "mon.a") is None or ceph.daemon_pid(self.paths, "osd.0") is None:
            return set()
        try:
            result = run(
                ["rbd", "-c", str(self.paths.ceph_conf), "group", "list", "--pool", "rbd"],
                timeout=10,
                backend="ceph",
            )
        except BackendError:
            return set()
        return set(result.stdout.split()) if result.ok else set()

    def _remove_new_host_entries(self, state: LabState) -> None:
        for directory, before in state.watched.items():
            prefixes = WATCHED.get(directory)
            try:
                now = os.listdir(directory)
            except OSError:
                continue
            for name in sorted(set(now) - set(before)):
                if prefixes is not None and not any(name.startswith(p) for p in prefixes):
                    continue
                if name == "libvirt" and directory == "/run" and not state.libvirtd_ours:
                    continue
                target = Path(directory) / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)

    # ------------------------------------------------------------------ status
    def status(self) -> list[ComponentStatus]:
        state = self.state()
        if state is None:
            return []
        result = self._ceph_status()
        if state.nodes:
            return result + [s.component() for s in self.node_status(state)]
        return result + self._host_status(state)

    def _ceph_status(self) -> list[ComponentStatus]:
        result: list[ComponentStatus] = []
        for daemon in ("mon.a", "mgr.x", "osd.0"):
            pid = ceph.daemon_pid(self.paths, daemon)
            result.append(ComponentStatus(f"ceph-{daemon.split('.')[0]}", pid is not None, pid))
        if result[0].up:
            try:
                health, checks = ceph.health(self.paths)
            except BackendError as exc:
                health, checks = "unreachable", [str(exc)]
            for item in result:
                item.health = health if item.up else "down"
                item.detail = checks
        return result

    def _host_status(self, state: LabState) -> list[ComponentStatus]:
        result: list[ComponentStatus] = []
        for daemon, ours in (("virtlogd", state.virtlogd_ours), ("libvirtd", state.libvirtd_ours)):
            pid = procs.read_pidfile(self.paths.libvirt / f"{daemon}.pid")
            alive = procs.matches(pid, daemon)
            if daemon == "libvirtd":
                reachable = hostvirt.reachable()
                up = reachable if not ours else alive and reachable
                result.append(
                    ComponentStatus(daemon, up, pid if alive else None, "reachable" if reachable else "unreachable")
                )
            else:
                up = alive or not ours
                result.append(
                    ComponentStatus(
                        daemon,
                        up,
                        pid if alive else None,
                        "running" if alive else ("shared" if not ours else "down"),
                    )
                )
        corosync_pid = state.pids.get("corosync")
        corosync_up = procs.matches(corosync_pid, "corosync")
        quorate = corosync_up and run(["corosync-quorumtool", "-s"], timeout=5, backend="corosync").ok
        result.append(
            ComponentStatus(
                "corosync",
                bool(quorate),
                corosync_pid if corosync_up else None,
                "quorate" if quorate else "down",
            )
        )
        pcmk_pid = state.pids.get("pacemakerd")
        pcmk_up = procs.matches(pcmk_pid, "pacemakerd")
        dc = False
        if pcmk_up:
            try:
                dc = cluster.node_is_dc(state.node)
            except BackendError:
                dc = False
        result.append(
            ComponentStatus(
                "pacemaker",
                pcmk_up and dc,
                pcmk_pid if pcmk_up else None,
                f"node {state.node} online, DC" if dc else "down",
            )
        )
        return result


def _kvm_users() -> list[str]:
    """libvirtd and QEMU processes that run (a multi-node lab's own are gone when this is asked)."""
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if (comm == "libvirtd" or comm.startswith("qemu-system")) and procs.alive(int(entry.name)):
            found.append(f"{comm} {entry.name}")
    return found


def daemon_pids(lab: Lab) -> dict[str, int]:
    """PIDs of the lab's daemons, by name (for fault tests that stop one mid-operation)."""
    found: dict[str, int] = {}
    for daemon in ("mon.a", "mgr.x", "osd.0"):
        pid = ceph.daemon_pid(lab.paths, daemon)
        if pid:
            found[f"ceph-{daemon.split('.')[0]}"] = pid
    state = lab.state()
    if state is not None:
        pacemakerd = state.pids.get("pacemakerd")
        if pacemakerd and procs.alive(pacemakerd):
            found["pacemakerd"] = pacemakerd
            for child in procs.children(pacemakerd):
                name = (procs.cmdline(child) or ["?"])[0].rsplit("/", 1)[-1]
                found[name] = child
    return found


def restart_osd(lab: Lab, timeout: float = 90) -> None:
    """Start osd.0 again after a fault test stopped it, and wait until it is up."""
    if ceph.daemon_pid(lab.paths, "osd.0") is None:
        procs.run_daemonizing(
            ["ceph-osd", "-c", str(lab.paths.ceph_conf), "-i", "0"],
            lab.paths.ceph / "log" / "daemons.out",
            timeout=timeout,
        )
    deadline = time.monotonic() + timeout
    while not ceph._osd_up(lab.paths):
        if time.monotonic() > deadline:
            raise LabError("osd.0 did not come back up")
        time.sleep(0.5)
