"""Single-node Ceph for the lab: one mon, one mgr, one bluestore OSD on a sparse file, pool ``rbd``.

All daemons run as root, bound to 127.0.0.1, with every file under ``<lab>/ceph``. Nothing is
written to /etc/ceph or /var/lib/ceph.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from vmconsole.backends.proc import Completed, run
from vmconsole.domain.errors import BackendError
from vmconsole.lab import procs
from vmconsole.lab.paths import LabPaths

MON_ADDR = "127.0.0.1"
MON_PORT_V1 = 6789
MON_PORT_V2 = 3300
OSD_SIZE = 10 * 1024**3
DAEMONS = ("osd.0", "mgr.x", "mon.a")  # in stopping order
LOOPBACK = "127.0.0.0/8"

Log = Callable[[str], None]


def conf_text(paths: LabPaths, fsid: str, addr: str = MON_ADDR, network: str = LOOPBACK) -> str:
    d = paths.ceph
    return f"""[global]
fsid = {fsid}
mon initial members = a
mon host = {mon_host(addr)}
public network = {network}
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {d}/$cluster.$name.keyring
run dir = {d}/run
admin socket = {d}/run/$cluster-$name.asok
pid file = {d}/run/$cluster-$name.pid
log file = {d}/log/$cluster-$name.log
crash dir = {d}/crash
exec dir = {d}/tmp
# one OSD: size-1 pools and no host failure domain
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8

[mon]
mon data = {d}/mon/$cluster-$id
# the global keyring line applies to daemons too: each needs its own
keyring = {d}/mon/$cluster-$id/keyring
mon allow pool delete = true
auth allow insecure global id reclaim = false
# a host disk fuller than 70 % must not raise MON_DISK_LOW (or stop the mon at 5 %)
mon data avail warn = 2
mon data avail crit = 1
# each RBD snapshot create/remove waits one osdmap commit: 1 s by default, 50 ms here.
# A real cluster keeps 1 s; the benchmarks say which figure they measured with.
paxos propose interval = 0.05
# a lone OSD has no peer to report its death: without this a killed OSD stays "up" for 900 s
mon osd report timeout = 15

[mgr]
mgr data = {d}/mgr/$cluster-$id
keyring = {d}/mgr/$cluster-$id/keyring

[osd]
osd data = {d}/osd/$cluster-$id
keyring = {d}/osd/$cluster-$id/keyring
osd objectstore = bluestore
bluestore block create = true
bluestore block size = {OSD_SIZE}
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728
# the disk reports itself rotational: hdd defaults sleep 5 s between snapshot trims
osd snap trim sleep hdd = 0
osd recovery sleep hdd = 0
osd beacon report interval = 3

[client]
# many short-lived clients: no admin socket collisions
admin socket =
log file = {d}/log/client.log

[client.admin]
# management clients give up instead of hanging while a daemon is down (never set for QEMU's
# client.libvirt: a VM's I/O must wait, not fail)
client mount timeout = 10
rados osd op timeout = 10
rados mon op timeout = 10
"""


def mon_host(addr: str = MON_ADDR) -> str:
    return f"[v2:{addr}:{MON_PORT_V2},v1:{addr}:{MON_PORT_V1}]"


def client_conf_text(fsid: str, addr: str) -> str:
    """A client's /etc/ceph/ceph.conf, as on a SEAPATH host: the monitors and cephx, nothing else."""
    return f"""[global]
fsid = {fsid}
mon host = {mon_host(addr)}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx

[client.admin]
client mount timeout = 10
rados osd op timeout = 10
rados mon op timeout = 10
"""


def fsid(paths: LabPaths) -> str:
    for line in paths.ceph_conf.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "fsid":
            return value.strip()
    raise BackendError("ceph", f"no fsid in {paths.ceph_conf}")


def ceph(paths: LabPaths, *args: str, timeout: float = 60.0, check: bool = True) -> Completed:
    return run(
        ["ceph", "-c", str(paths.ceph_conf), "--connect-timeout", "15", *args],
        timeout=timeout,
        backend="ceph",
        check=check,
    )


def _wait(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise BackendError("ceph", f"{what} did not happen within {timeout:g} s")


def daemon_pid(paths: LabPaths, daemon: str) -> int | None:
    """PID of ``mon.a``/``mgr.x``/``osd.0``, only when it is alive and really runs our conf."""
    pid = procs.read_pidfile(paths.ceph_run / f"ceph-{daemon}.pid")
    return pid if procs.matches(pid, str(paths.ceph_conf)) else None


def _osd_up(paths: LabPaths) -> bool:
    result = ceph(paths, "osd", "dump", "-f", "json", check=False, timeout=20)
    if not result.ok:
        return False
    osds = json.loads(result.stdout).get("osds", [])
    return any(o.get("osd") == 0 and o.get("up") == 1 for o in osds)


def up(paths: LabPaths, log: Log, addr: str = MON_ADDR, network: str = LOOPBACK) -> None:
    """Bring Ceph up with its daemons bound to ``addr`` (loopback, or the multi-node lab's host link)."""
    d = paths.ceph
    for sub in ("run", "log", "crash", "tmp", "mon/ceph-a", "mgr/ceph-x", "osd/ceph-0"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    fsid = str(uuid.uuid4())
    paths.ceph_conf.write_text(conf_text(paths, fsid, addr, network))
    conf = str(paths.ceph_conf)
    tmp = d / "tmp"
    admin_keyring = d / "ceph.client.admin.keyring"

    def tool(*argv: str) -> None:
        run(list(argv), timeout=60, backend="ceph", check=True)

    tool(
        "ceph-authtool",
        "--create-keyring",
        str(tmp / "mon.keyring"),
        "--gen-key",
        "-n",
        "mon.",
        "--cap",
        "mon",
        "allow *",
    )
    tool(
        "ceph-authtool",
        "--create-keyring",
        str(admin_keyring),
        "--gen-key",
        "-n",
        "client.admin",
        "--cap",
        "mon",
        "allow *",
        "--cap",
        "osd",
        "allow *",
        "--cap",
        "mds",
        "allow *",
        "--cap",
        "mgr",
        "allow *",
    )
    tool("ceph-authtool", str(tmp / "mon.keyring"), "--import-keyring", str(admin_keyring))
    tool(
        "monmaptool",
        "--create",
        "--enable-all-features",
        "--fsid",
        fsid,
        "--addv",
        "a",
        mon_host(addr),
        str(tmp / "monmap"),
    )
    tool(
        "ceph-mon",
        "-c",
        conf,
        "--mkfs",
        "-i",
        "a",
        "--monmap",
        str(tmp / "monmap"),
        "--keyring",
        str(tmp / "mon.keyring"),
    )
    daemon_log = d / "log" / "daemons.out"
    procs.run_daemonizing(["ceph-mon", "-c", conf, "-i", "a"], daemon_log, timeout=60)
    _wait("mon quorum", lambda: ceph(paths, "mon", "stat", check=False, timeout=20).ok, 30)
    log(f"ceph mon.a up (pid {daemon_pid(paths, 'mon.a')})")

    ceph(
        paths,
        "auth",
        "get-or-create",
        "mgr.x",
        "mon",
        "allow profile mgr",
        "osd",
        "allow *",
        "mds",
        "allow *",
        "-o",
        str(d / "mgr/ceph-x/keyring"),
    )
    procs.run_daemonizing(["ceph-mgr", "-c", conf, "-i", "x"], daemon_log, timeout=60)

    osd_uuid = str(uuid.uuid4())
    osd_id = ceph(paths, "osd", "new", osd_uuid).stdout.strip()
    if osd_id != "0":
        raise BackendError("ceph", f"expected OSD id 0, got {osd_id!r}")
    ceph(
        paths,
        "auth",
        "get-or-create",
        "osd.0",
        "mon",
        "allow profile osd",
        "mgr",
        "allow profile osd",
        "osd",
        "allow *",
        "-o",
        str(d / "osd/ceph-0/keyring"),
    )
    tool("ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
    # the parent returns once the daemon is up
    procs.run_daemonizing(["ceph-osd", "-c", conf, "-i", "0"], daemon_log, timeout=90)
    _wait("osd.0 up", lambda: _osd_up(paths), 60)
    log(f"ceph osd.0 up (pid {daemon_pid(paths, 'osd.0')})")

    ceph(paths, "osd", "pool", "create", "rbd", "8", "8")
    run(["rbd", "-c", conf, "pool", "init", "rbd"], timeout=60, backend="ceph", check=True)
    # SEAPATH's restricted key for QEMU/libvirt
    ceph(
        paths,
        "auth",
        "get-or-create",
        "client.libvirt",
        "mon",
        "profile rbd",
        "osd",
        "profile rbd pool=rbd",
        "-o",
        str(d / "ceph.client.libvirt.keyring"),
    )
    log("ceph pool rbd ready, client.libvirt key created")


def wait_mgr(paths: LabPaths, timeout: float = 60) -> None:
    def available() -> bool:
        result = ceph(paths, "mgr", "stat", check=False, timeout=20)
        return result.ok and bool(json.loads(result.stdout or "{}").get("available"))

    _wait("mgr active", available, timeout)


def libvirt_key(paths: LabPaths) -> str:
    return ceph(paths, "auth", "print-key", "client.libvirt").stdout.strip()


def health(paths: LabPaths) -> tuple[str, list[str]]:
    result = ceph(paths, "health", "-f", "json", check=False, timeout=15)
    if not result.ok:
        return "unreachable", [result.error_text()]
    data = json.loads(result.stdout)
    checks = [f"{k}: {v.get('summary', {}).get('message', '')}" for k, v in data.get("checks", {}).items()]
    return str(data.get("status", "unknown")), checks


def stop(paths: LabPaths, log: Log) -> None:
    """Kill the daemons (the data is thrown away, so no orderly shutdown is owed)."""
    import signal

    for daemon in DAEMONS:
        pid = daemon_pid(paths, daemon)
        if pid:
            procs.stop(pid, timeout=5, sig=signal.SIGKILL)
            log(f"ceph {daemon} (pid {pid}) stopped")
