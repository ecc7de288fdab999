"""The nodes of the multi-node lab: each in its own network, mount and UTS namespaces, on one machine.

A node is one holder process (``nsinit`` then ``sleep infinity``) that owns the node's namespaces,
and the daemons that enter them with nsenter: corosync and pacemaker on every node, and on a
hypervisor virtlogd, libvirtd and sshd (libvirt's ``qemu+ssh`` live migration, SEAPATH's default).
An observer runs corosync and pacemaker only, and has no libvirt: ``virsh`` is hidden from it, so the
VirtualDomain agent answers "not installed" there, as on a real observer.

Inside a node, /run and /dev/shm are fresh tmpfs, /etc and /var are overlays whose upper layers are
the node's directory (its CIB, libvirt state, logs, ``/etc/cluster.conf``, ``/etc/hosts``,
corosync.conf and SSH keys live there), /etc/ceph is the node's client configuration, and the lab's
OCF agent and fence agent are overlaid on /usr/lib/ocf/resource.d and /usr/sbin. The host sees
none of it.

A node is powered off by stopping, then killing, every process in its network namespace: that is
what ``lab crash`` and the lab fence agent do.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vmconsole.backends.proc import Completed, run
from vmconsole.domain import xmlsafe
from vmconsole.domain.errors import BackendError
from vmconsole.lab import ceph, cluster, network, procs
from vmconsole.lab.cluster import OCF_RESOURCE_DIR
from vmconsole.lab.hostvirt import SECRET_USAGE, URI
from vmconsole.lab.paths import LabPaths
from vmconsole.lab.state import LabState, NodeState

MAX_NODES = 3
FENCE_AGENT = "fence_vmclab"
FENCE_DEVICE = "fence-lab"
SSH_KEY = "vmclab_id_ed25519"  # the lab's client key, in every node's /etc/ssh
SSH_HOST_KEY = "vmclab_host_ed25519_key"
SSH_AUTHORIZED = "vmclab_authorized_keys"
HYPERVISOR_DAEMONS = ("virtlogd", "libvirtd", "sshd")
CLUSTER_DAEMONS = ("corosync", "pacemakerd")

Log = Callable[[str], None]
Save = Callable[[], None]


def plan(count: int, observer: bool) -> list[NodeState]:
    """Nodes n1..nN; with ``observer`` the last one is the observer."""
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"a lab has 1 to {MAX_NODES} nodes, not {count}")
    if observer and count < 2:
        raise ValueError("an observer needs at least one hypervisor beside it (--nodes 2 or 3)")
    return [
        NodeState(name=f"n{i}", address=network.node_address(i), observer=observer and i == count)
        for i in range(1, count + 1)
    ]


def preflight() -> None:
    """Every program a node needs (sshd only for migration, but a hypervisor without it is not one)."""
    for tool in ("ip", "nsenter", "unshare", "corosync", "pacemakerd", "libvirtd", "virtlogd", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise BackendError("lab", f"{tool} is not installed (run scripts/bootstrap)")
    if not os.access("/usr/sbin/sshd", os.X_OK):
        raise BackendError("lab", "/usr/sbin/sshd is not installed (openssh-server; run scripts/bootstrap)")


def hypervisors(state: LabState) -> list[NodeState]:
    return [n for n in state.nodes if not n.observer]


# ---------------------------------------------------------------------------------------------
# the files of a node


def cluster_conf(nodes: Sequence[NodeState]) -> str:
    """/etc/cluster.conf as SEAPATH's configure_ha role writes it (the same on every node)."""
    lines = ["[machines]"]
    lines += [f"hypervisor{i} = {n.name}" for i, n in enumerate((n for n in nodes if not n.observer), start=1)]
    lines += [f"observer = {n.name}" for n in nodes if n.observer]
    return "\n".join(lines) + "\n"


def hosts_file(nodes: Sequence[NodeState]) -> str:
    lines = ["127.0.0.1\tlocalhost", f"{network.HOST_ADDR}\tlab-ceph"]
    lines += [f"{n.address}\t{n.name}" for n in nodes]
    return "\n".join(lines) + "\n"


def corosync_conf(nodes: Sequence[NodeState], log_file: Path) -> str:
    two_node = "\n    two_node: 1" if len(nodes) == 2 else ""
    members = "".join(
        f"    node {{\n        name: {n.name}\n        nodeid: {i}\n        ring0_addr: {n.address}\n    }}\n"
        for i, n in enumerate(nodes, start=1)
    )
    # corosync's own default token (1 s, plus 650 ms for each node past two): a crashed node is noticed
    # in about 5 s; a 3 s token took 9.5 s, and a VM's failover then missed 10 s
    return f"""# vmconsole multi-node lab: knet inside the lab network, no crypto (lab only)
totem {{
    version: 2
    cluster_name: vmconsole-mlab
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: 1000
}}
logging {{
    to_stderr: no
    to_logfile: yes
    logfile: {log_file}
    to_syslog: no
    timestamp: on
}}
quorum {{
    provider: corosync_votequorum{two_node}
}}
nodelist {{
{members}}}
"""


def sshd_config(node: NodeState) -> str:
    return f"""# vmconsole multi-node lab: root by the lab key only, for libvirt's qemu+ssh migration
ListenAddress {node.address}
HostKey /etc/ssh/{SSH_HOST_KEY}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile /etc/ssh/{SSH_AUTHORIZED}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile /run/sshd.pid
"""


def ssh_config() -> str:
    return f"""# vmconsole multi-node lab: the nodes reach each other with the lab key; host keys change
# with every lab, so none is remembered
Host *
    IdentityFile /etc/ssh/{SSH_KEY}
    IdentitiesOnly yes
    BatchMode yes
    ConnectTimeout 5
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    GlobalKnownHostsFile /dev/null
    LogLevel ERROR
"""


# Two libvirtds on one kernel name their QEMUs' cgroups alike (qemu-1-<vm>), and a crashed node's
# libvirtd can no longer remove its own: the nodes' QEMUs get no cgroup.
QEMU_CONF = """# vmconsole multi-node lab: libvirt's defaults, but no cgroup for the QEMUs
cgroup_controllers = [ ]
"""


def _ids(user: str, group: str) -> tuple[int, int]:
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


def _opaque(path: Path) -> None:
    """An upper directory that hides the host's directory below it (a fresh, empty one)."""
    path.mkdir(parents=True, exist_ok=True)
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def seed_cib(path: Path, nodes: Sequence[NodeState]) -> None:
    """The CIB every node starts from: fencing off until all nodes are in (an unseen node would be
    fenced at start-up), the lab fence device ready, DC elected fast, a little stickiness."""
    text = run(["cibadmin", "--empty"], timeout=10, backend="pacemaker", check=True).stdout
    path.write_text(text)
    env = {"CIB_file": str(path)}
    for name, value in (
        ("stonith-enabled", "false"),
        ("dc-deadtime", "2s"),
        ("cluster-recheck-interval", "60s"),
    ):
        run(
            ["crm_attribute", "--type", "crm_config", "--name", name, "--update", value],
            timeout=10,
            backend="pacemaker",
            env=env,
            check=True,
        )
    host_list = " ".join(n.name for n in nodes)
    for scope, xml in (
        (
            "configuration",
            '<rsc_defaults><meta_attributes id="rsc-options"><nvpair id="rsc-options-resource-stickiness"'
            ' name="resource-stickiness" value="1"/></meta_attributes></rsc_defaults>',
        ),
        (
            "resources",
            f'<primitive id="{FENCE_DEVICE}" class="stonith" type="{FENCE_AGENT}">'
            f'<instance_attributes id="{FENCE_DEVICE}-instance_attributes">'
            f'<nvpair id="{FENCE_DEVICE}-instance_attributes-pcmk_host_list" name="pcmk_host_list"'
            f' value="{host_list}"/></instance_attributes>'
            f'<operations><op id="{FENCE_DEVICE}-monitor-60s" name="monitor" interval="60s"/></operations>'
            "</primitive>",
        ),
    ):
        run(
            ["cibadmin", "--create", "--scope", scope, "--xml-text", xml],
            timeout=10,
            backend="pacemaker",
            env=env,
            check=True,
        )


def fence_agent_text(paths: LabPaths) -> str:
    return f"""#!/bin/sh
# vmconsole lab fence agent: powers off a node of the multi-node lab in {paths.root}
exec {sys.executable} -m vmconsole.lab.fence --lab {paths.root} "$@"
"""


def prepare(paths: LabPaths, state: LabState) -> None:
    """Every file of every node, written before any node starts (overlay layers are filled first)."""
    paths.nodes.mkdir(exist_ok=True)
    _write(paths.sbin / FENCE_AGENT, fence_agent_text(paths), 0o755)
    cluster.install_agent(paths)
    paths.ssh.mkdir(mode=0o700, exist_ok=True)
    client_key = paths.ssh / "id_ed25519"
    run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmconsole-lab", "-f", str(client_key)],
        timeout=30,
        backend="ssh",
        check=True,
    )
    seed = paths.nodes / "cib-seed.xml"
    seed_cib(seed, state.nodes)
    hacluster = _ids("hacluster", "haclient")
    for node in state.nodes:
        n = paths.node(node.name)
        for directory in (n.root, n.logs, n.work / "etc", n.work / "var", n.ceph):
            directory.mkdir(parents=True, exist_ok=True)
        etc, var = n.etc, n.var
        _write(etc / "hostname", node.name + "\n")
        _write(etc / "hosts", hosts_file(state.nodes))
        _write(etc / "cluster.conf", cluster_conf(state.nodes))
        (etc / "ceph").mkdir(exist_ok=True)  # the mount point of the node's client configuration
        _write(etc / "corosync" / "corosync.conf", corosync_conf(state.nodes, n.logs / "corosync.log"))
        (etc / "pacemaker").mkdir(exist_ok=True)  # the agent's XML cache, as on SEAPATH
        for sub in ("qemu", "secrets", "storage"):
            _opaque(etc / "libvirt" / sub)  # no domain, secret or pool of the host's libvirt
        _write(etc / "libvirt" / "qemu.conf", QEMU_CONF)
        _write(etc / "ssh" / "ssh_config", ssh_config())
        _write(etc / "ssh" / "sshd_config", sshd_config(node))
        _write(etc / "ssh" / SSH_KEY, client_key.read_text(), 0o600)
        _write(etc / "ssh" / SSH_AUTHORIZED, (paths.ssh / "id_ed25519.pub").read_text())
        host_key = etc / "ssh" / SSH_HOST_KEY
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node.name, "-f", str(host_key)],
            timeout=30,
            backend="ssh",
            check=True,
        )
        _opaque(var / "lib" / "corosync")
        lib = var / "lib" / "pacemaker"
        _opaque(lib)
        os.chown(lib, *hacluster)
        lib.chmod(0o750)
        for sub in ("cib", "pengine", "blackbox", "cores"):
            (lib / sub).mkdir(exist_ok=True)
            os.chown(lib / sub, *hacluster)
            (lib / sub).chmod(0o750)
        cib = lib / "cib" / "cib.xml"
        cib.write_bytes(seed.read_bytes())
        os.chown(cib, *hacluster)
        cib.chmod(0o600)
        pacemaker_log = n.logs / "pacemaker.log"
        pacemaker_log.touch()
        os.chown(pacemaker_log, *hacluster)
        pacemaker_log.chmod(0o660)


def write_ceph_client(paths: LabPaths, state: LabState) -> None:
    """Each node's /etc/ceph: the monitors on the host link, the admin and libvirt keys."""
    conf = ceph.client_conf_text(ceph.fsid(paths), network.HOST_ADDR)
    for node in state.nodes:
        target = paths.node(node.name).ceph
        _write(target / "ceph.conf", conf)
        for key in ("ceph.client.admin.keyring", "ceph.client.libvirt.keyring"):
            _write(target / key, (paths.ceph / key).read_text(), 0o600)


# ---------------------------------------------------------------------------------------------
# inside a node


def enter_argv(node: NodeState, command: Sequence[str], cwd: str | None = None) -> list[str]:
    """``command`` run in ``node``'s network, mount and UTS namespaces."""
    if not node.holder or not procs.alive(node.holder) or _net_ns(node.holder) != node_net_ns(node):
        raise BackendError("lab", f"node {node.name} is down")
    argv = ["nsenter", "-t", str(node.holder), "-m", "-n", "-u"]
    if cwd:
        argv.append(f"--wd={cwd}")
    return [*argv, "--", *command]


def run_in(node: NodeState, command: Sequence[str], *, timeout: float, check: bool = False) -> Completed:
    return run(enter_argv(node, command), timeout=timeout, backend=f"lab node {node.name}", check=check)


def _holder_argv(paths: LabPaths, node: NodeState) -> list[str]:
    n = paths.node(node.name)
    argv = [
        "nsenter",
        f"--net={network.netns_path(node.name)}",
        "--",
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-m",
        "vmconsole.lab.nsinit",
        "--hostname",
        node.name,
        "--tmpfs",
        "/run:755",
        "--tmpfs",
        "/dev/shm:1777",
        "--mkdir",
        "/run/lock:1777",
        "--mkdir",
        "/run/sshd:755",
        "--overlay-rw",
        f"{n.etc}:{n.work / 'etc'}:/etc",
        "--overlay-rw",
        f"{n.var}:{n.work / 'var'}:/var",
        "--bind",
        f"{n.ceph}:/etc/ceph",
    ]
    if node.observer:
        argv += ["--bind", "/dev/null:/usr/bin/virsh"]  # no libvirt on an observer
    argv += [
        "--overlay",
        f"{paths.ocf_root}:{OCF_RESOURCE_DIR}:{OCF_RESOURCE_DIR}",
        "--overlay",
        f"{paths.sbin}:/usr/sbin:/usr/sbin",
        "--ready",
        str(n.ready),
        "--",
        "sleep",
        "infinity",
    ]
    return argv


def _wait(what: str, predicate: Callable[[], bool], timeout: float, alive: Callable[[], bool] | None = None) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise BackendError("lab", f"{what}: not within {timeout:g} s")
        if alive is not None and not alive():
            raise BackendError("lab", f"{what}: the process died")
        time.sleep(0.1)
    return time.monotonic() - started


def start(
    paths: LabPaths,
    state: LabState,
    node: NodeState,
    save: Save,
    log: Log,
    before_cluster: Callable[[], None] | None = None,
) -> None:
    """Start the node's holder and its daemons, recording each PID as it starts: libvirt first
    (then ``before_cluster``, e.g. the Ceph secret), corosync and pacemaker last. It does not wait
    for the cluster to take the node in (``wait_online`` does)."""
    n = paths.node(node.name)
    n.ready.unlink(missing_ok=True)
    node.crashed = False
    node.pids = {}
    node.holder = procs.spawn(_holder_argv(paths, node), n.logs / "holder.out")
    save()
    _wait(f"node {node.name} mounts", n.ready.exists, 30, lambda: procs.alive(node.holder))

    def daemon(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        node.pids[name] = procs.spawn(enter_argv(node, argv), n.logs / f"{name}.out", env=env)
        save()

    if not node.observer:
        daemon("virtlogd", ["virtlogd"], {"LIBVIRT_LOG_OUTPUTS": f"3:file:{n.logs / 'virtlogd.log'}"})
        daemon("libvirtd", ["libvirtd"], {"LIBVIRT_LOG_OUTPUTS": f"3:file:{n.logs / 'libvirtd.log'}"})
        daemon("sshd", ["/usr/sbin/sshd", "-D", "-e"])
        wait_libvirt(node)
    if before_cluster is not None:
        before_cluster()
    # corosync reads the node's /etc/corosync/corosync.conf
    daemon("corosync", ["corosync", "-f"])
    _wait(
        f"corosync of {node.name}",
        lambda: run_in(node, ["corosync-cfgtool", "-s"], timeout=5).ok,
        20,
        lambda: procs.alive(node.pids.get("corosync")),
    )
    daemon(
        "pacemakerd",
        ["pacemakerd"],
        {
            "PCMK_logfile": str(n.logs / "pacemaker.log"),
            "PCMK_logfacility": "none",
            "CEPH_CONF": "/etc/ceph/ceph.conf",  # the seapath agent reads the domain XML with rbd
        },
    )
    log(f"node {node.name} ({'observer' if node.observer else 'hypervisor'}) started, holder pid {node.holder}")


def wait_libvirt(node: NodeState, timeout: float = 30) -> None:
    _wait(
        f"libvirtd of {node.name}",
        lambda: run_in(node, ["virsh", "-q", "-c", URI, "version"], timeout=10).ok,
        timeout,
        lambda: procs.alive(node.pids.get("libvirtd")),
    )


def start_all(paths: LabPaths, state: LabState, nodes: Sequence[NodeState], save: Save, log: Log) -> None:
    """Start nodes side by side (their corosyncs must find each other early)."""
    errors: list[BaseException] = []
    lock = threading.Lock()

    def locked_save() -> None:
        with lock:
            save()

    def one(node: NodeState) -> None:
        try:
            start(paths, state, node, locked_save, log)
        except BaseException as exc:  # reported below, once every node's thread stopped
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(node,), name=f"lab-{node.name}") for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@dataclass(frozen=True)
class Member:
    name: str
    online: bool
    dc: bool
    unclean: bool


def members(state: LabState) -> dict[str, Member] | None:
    """Cluster membership as a live node's pacemaker sees it (None when no node answers)."""
    for node in state.nodes:
        if node.crashed or not node.holder or not procs.alive(node.holder):
            continue
        try:
            result = run_in(node, ["crm_mon", "--output-as=xml"], timeout=10)
        except BackendError:
            continue
        if not result.ok:
            continue
        root = xmlsafe.parse(result.stdout, what="crm_mon output")
        nodes_element = root.find("nodes")
        if nodes_element is None:
            continue
        return {
            n.get("name", ""): Member(
                n.get("name", ""),
                n.get("online") == "true" and n.get("pending") != "true",  # pending: not ready to run VMs yet
                n.get("is_dc") == "true",
                n.get("unclean") == "true",
            )
            for n in nodes_element.iter("node")
        }
    return None


def wait_online(state: LabState, names: Sequence[str], timeout: float = 90) -> float:
    def online() -> bool:
        seen = members(state)
        return seen is not None and all(seen.get(n, Member(n, False, False, False)).online for n in names)

    return _wait(f"nodes {', '.join(names)} online", online, timeout)


def crm_attribute(state: LabState, name: str, value: str) -> None:
    for node in state.nodes:
        if not node.crashed and node.holder and procs.alive(node.holder):
            run_in(
                node,
                ["crm_attribute", "--type", "crm_config", "--name", name, "--update", value],
                timeout=30,
                check=True,
            )
            return
    raise BackendError("lab", "no node is up")


def define_secret(paths: LabPaths, node: NodeState, secret_uuid: str, key: str) -> None:
    """The Ceph secret QEMU authenticates with, in the node's libvirtd (ephemeral: memory only)."""
    secret_xml = paths.libvirt / "secret.xml"
    key_file = paths.libvirt / "secret.key"
    paths.libvirt.mkdir(exist_ok=True)
    if not secret_xml.exists():
        secret_xml.write_text(
            f"<secret ephemeral='yes' private='no'><uuid>{secret_uuid}</uuid>"
            f"<usage type='ceph'><name>{SECRET_USAGE}</name></usage></secret>"
        )
        key_file.write_text(key)
        key_file.chmod(0o600)
    run_in(node, ["virsh", "-q", "-c", URI, "secret-define", str(secret_xml)], timeout=30, check=True)
    run_in(
        node,
        ["virsh", "-q", "-c", URI, "secret-set-value", secret_uuid, "--file", str(key_file)],
        timeout=30,
        check=True,
    )


# ---------------------------------------------------------------------------------------------
# power off


def _net_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def own_net_ns() -> str | None:
    return _net_ns(os.getpid())


def read_net_ns(name: str) -> str:
    """The network namespace the host's /run/netns holds for node ``name``, as /proc names it."""
    return f"net:[{os.stat(network.netns_path(name)).st_ino}]"


def node_net_ns(node: NodeState) -> str | None:
    """The node's network namespace. It is what tells a node's processes apart: every one of them
    is in it (QEMU too, which libvirt gives a mount namespace of its own) and nothing else is.

    On the host, /run/netns says (its bind mount keeps the namespace's number from being reused);
    inside a node, whose /run is its own, the number recorded at ``up`` is trusted: the lab forgets
    it before it deletes the namespace.
    """
    if not node.net_ns:
        return None  # not made by this lab (another lab's, or none yet): never ours to touch
    try:
        current = read_net_ns(node.name)
    except OSError:
        current = None
    if current is not None or Path(network.netns_path(network.HUB)).exists():
        return current if current == node.net_ns else None  # the host's view
    return node.net_ns


def processes(node: NodeState) -> list[int]:
    """Every live process of the node (none once its network namespace is gone)."""
    net_ns = node_net_ns(node)
    if net_ns is None:
        return []
    found = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _net_ns(int(entry.name)) == net_ns
    ]
    return sorted(p for p in found if procs.alive(p) and p != os.getpid())


def power_off(node: NodeState, timeout: float = 20) -> int:
    """Kill every process of the node at once, as a power cut would; return how many there were.

    Each round stops them all first (so that none forks or restarts another), then kills them.
    """
    victims = processes(node)
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while victims and time.monotonic() < deadline:
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        killed.update(victims)
        procs.wait_gone(victims, 5)
        victims = processes(node)
    if victims:
        raise BackendError("lab", f"node {node.name}: processes {victims} survived SIGKILL")
    node.holder = None
    node.pids = {}
    return len(killed)


def daemon_up(node: NodeState, name: str) -> bool:
    pid = node.pids.get(name)
    return procs.matches(pid, name) and pid is not None and _net_ns(pid) == node_net_ns(node)


def expected_daemons(node: NodeState) -> tuple[str, ...]:
    return CLUSTER_DAEMONS if node.observer else (*HYPERVISOR_DAEMONS, *CLUSTER_DAEMONS)
