"""corosync + pacemaker for the lab: one node on 127.0.0.1, online and DC in a few seconds.

Both daemons run in a private mount namespace (``lab.nsinit``) where the lab's directories are bound
over /var/lib/pacemaker, /var/lib/corosync and /var/log/pacemaker, and where the lab's
``seapath/VirtualDomain`` agent is overlaid on /usr/lib/ocf/resource.d. The host's own files are
never touched, and the mounts disappear with the daemons.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from vmconsole.backends.proc import run
from vmconsole.domain import xmlsafe
from vmconsole.domain.errors import BackendError
from vmconsole.lab import procs
from vmconsole.lab.paths import LabPaths
from vmconsole.lab.state import LabState

OCF_RESOURCE_DIR = "/usr/lib/ocf/resource.d"
Log = Callable[[str], None]


def node_name() -> str:
    return os.uname().nodename


def _chown_cluster(path: Path, mode: int) -> None:
    os.chown(path, pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid)
    path.chmod(mode)


def prepare(paths: LabPaths) -> None:
    paths.corosync_conf.parent.mkdir(parents=True, exist_ok=True)
    paths.corosync_lib.mkdir(parents=True, exist_ok=True)
    for sub in ("cib", "pengine", "blackbox", "cores"):
        (paths.pacemaker_lib / sub).mkdir(parents=True, exist_ok=True)
        _chown_cluster(paths.pacemaker_lib / sub, 0o750)
    paths.pacemaker_log.mkdir(parents=True, exist_ok=True)
    _chown_cluster(paths.pacemaker_log, 0o770)
    paths.xml_dir.mkdir(parents=True, exist_ok=True)
    install_agent(paths)


def install_agent(paths: LabPaths) -> None:
    """``seapath/VirtualDomain`` in the lab's OCF directory (overlaid where pacemaker runs)."""
    agent_dir = paths.ocf_root / "seapath"
    agent_dir.mkdir(parents=True, exist_ok=True)
    agent = agent_dir / "VirtualDomain"
    source = resources.files("vmconsole.lab") / "ra" / "VirtualDomain"
    agent.write_bytes(source.read_bytes())
    agent.chmod(0o755)


def _ns_argv(paths: LabPaths, command: list[str]) -> list[str]:
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-m",
        "vmconsole.lab.nsinit",
        "--bind",
        f"{paths.pacemaker_lib}:/var/lib/pacemaker",
        "--bind",
        f"{paths.corosync_lib}:/var/lib/corosync",
        "--bind",
        f"{paths.pacemaker_log}:/var/log/pacemaker",
        "--overlay",
        f"{paths.ocf_root}:{OCF_RESOURCE_DIR}:{OCF_RESOURCE_DIR}",
        "--",
        *command,
    ]


def corosync_conf(paths: LabPaths, node: str) -> str:
    return f"""# vmconsole lab: one node, knet on loopback, no crypto (lab only)
totem {{
    version: 2
    cluster_name: vmconsole-lab
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: 3000
}}
logging {{
    to_stderr: no
    to_logfile: yes
    logfile: {paths.logs / "corosync.log"}
    to_syslog: no
    timestamp: on
}}
quorum {{
    provider: corosync_votequorum
}}
nodelist {{
    node {{
        name: {node}
        nodeid: 1
        ring0_addr: 127.0.0.1
    }}
}}
"""


def seed_cib(paths: LabPaths) -> None:
    """A pre-seeded CIB: no fencing, quorum ignored, DC elected in ~4 s instead of ~22 s."""
    seed = paths.pacemaker_lib / "cib" / "cib.xml"
    text = run(["cibadmin", "--empty"], timeout=10, backend="pacemaker", check=True).stdout
    seed.write_text(text)
    env = {"CIB_file": str(seed)}
    for name, value in (
        ("stonith-enabled", "false"),
        ("no-quorum-policy", "ignore"),
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
    # a little stickiness: healthy VMs do not move back and forth on every membership change
    run(
        [
            "cibadmin",
            "--create",
            "--scope",
            "configuration",
            "--xml-text",
            '<rsc_defaults><meta_attributes id="rsc-options"><nvpair id="rsc-options-resource-stickiness"'
            ' name="resource-stickiness" value="1"/></meta_attributes></rsc_defaults>',
        ],
        timeout=10,
        backend="pacemaker",
        env=env,
        check=True,
    )
    _chown_cluster(seed, 0o600)


def node_is_dc(expected_node: str) -> bool:
    result = run(["crm_mon", "--output-as=xml"], timeout=10, backend="pacemaker")
    if not result.ok:
        return False
    root = xmlsafe.parse(result.stdout, what="crm_mon output")
    return any(
        n.get("name") == expected_node and n.get("online") == "true" and n.get("is_dc") == "true"
        for n in root.iter("node")
    )


def up(paths: LabPaths, state: LabState, log: Log) -> None:
    for tool in ("corosync", "pacemakerd", "crm_mon", "cibadmin", "unshare"):
        if shutil.which(tool) is None:
            raise BackendError("pacemaker", f"{tool} is not installed (run scripts/bootstrap)")
    for daemon in ("corosync", "pacemakerd"):
        pid = procs.read_pidfile(Path(f"/run/{daemon}.pid"))
        if procs.alive(pid):
            raise BackendError("pacemaker", f"a {daemon} not started by this lab is running (pid {pid})")
    node = state.node = node_name()
    prepare(paths)
    paths.corosync_conf.write_text(corosync_conf(paths, node))
    run(["corosync", "-t", "-c", str(paths.corosync_conf)], timeout=10, backend="corosync", check=True)
    started = time.monotonic()
    state.pids["corosync"] = procs.spawn(
        _ns_argv(paths, ["corosync", "-f", "-c", str(paths.corosync_conf)]), paths.logs / "corosync.out"
    )
    deadline = time.monotonic() + 20
    while not run(["corosync-quorumtool", "-s"], timeout=5, backend="corosync").ok:
        if time.monotonic() > deadline or not procs.alive(state.pids["corosync"]):
            raise BackendError("corosync", f"not quorate after 20 s, see {paths.logs / 'corosync.log'}")
        time.sleep(0.1)
    log(f"corosync up (pid {state.pids['corosync']}), quorate in {time.monotonic() - started:.1f} s")

    seed_cib(paths)
    env = {
        "PCMK_logfile": str(paths.pacemaker_log / "pacemaker.log"),
        "PCMK_logfacility": "none",
        # the seapath agent reads each VM's domain XML with the rbd CLI
        "CEPH_CONF": str(paths.ceph_conf),
    }
    started = time.monotonic()
    state.pids["pacemakerd"] = procs.spawn(_ns_argv(paths, ["pacemakerd"]), paths.logs / "pacemakerd.out", env=env)
    deadline = time.monotonic() + 60
    while not node_is_dc(node):
        if time.monotonic() > deadline or not procs.alive(state.pids["pacemakerd"]):
            raise BackendError("pacemaker", f"node {node} not online as DC, see {paths.pacemaker_log}")
        time.sleep(0.2)
    log(
        f"pacemaker up (pid {state.pids['pacemakerd']}), node {node} online and DC in "
        f"{time.monotonic() - started:.1f} s"
    )


def down(paths: LabPaths, state: LabState, log: Log) -> None:
    # pacemakerd stops every resource (the VMs) before it exits
    for daemon, timeout in (("pacemakerd", 60.0), ("corosync", 15.0)):
        pid = state.pids.get(daemon)
        if pid and procs.is_daemon(pid, daemon):
            seconds = procs.stop(pid, timeout=timeout)
            log(f"{daemon} (pid {pid}) stopped in {seconds:.1f} s")
        state.pids.pop(daemon, None)
