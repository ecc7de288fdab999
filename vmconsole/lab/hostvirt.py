"""libvirtd + virtlogd for the lab, without systemd, and the Ceph secret QEMU uses."""

from __future__ import annotations

import os
import stat
import subprocess
import time
import uuid
from collections.abc import Callable

from vmconsole.backends.proc import run
from vmconsole.domain.errors import BackendError
from vmconsole.lab import procs
from vmconsole.lab.paths import LabPaths
from vmconsole.lab.state import LabState

URI = "qemu:///system"
SECRET_USAGE = "client.libvirt secret"
KVM = "/dev/kvm"

Log = Callable[[str], None]


def virsh(*args: str, timeout: float = 30, check: bool = True) -> str:
    return run(["virsh", "-q", "-c", URI, *args], timeout=timeout, backend="libvirt", check=check).stdout


def reachable() -> bool:
    try:
        return run(["virsh", "-q", "-c", URI, "version"], timeout=10, backend="libvirt").ok
    except BackendError:
        return False


def fix_kvm(state: LabState, log: Log) -> str:
    """Give /dev/kvm the group and mode udev would have given it; return the usable domain type.

    Without udev it is root:root 0600: QEMU (run as libvirt-qemu) gets EACCES, and libvirtd
    re-probes QEMU on every API call, making a define take ~45 s.
    """
    if not os.path.exists(KVM):
        log("no /dev/kvm: guests run under TCG (domain type qemu)")
        return "qemu"
    st = os.stat(KVM)
    if state.kvm_mode is None:
        state.kvm_mode = f"{stat.S_IMODE(st.st_mode):o} {st.st_uid} {st.st_gid}"
    import grp

    os.chown(KVM, -1, grp.getgrnam("kvm").gr_gid)
    os.chmod(KVM, 0o660)
    # -machine none initialises the accelerator and then idles: a timeout means KVM works.
    try:
        subprocess.run(
            ["qemu-system-x86_64", "-machine", "none,accel=kvm", "-nodefaults", "-display", "none", "-S"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=2,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "kvm"
    log("KVM is not usable here: guests run under TCG (domain type qemu)")
    return "qemu"


def restore_kvm(state: LabState) -> None:
    if state.kvm_mode and os.path.exists(KVM):
        mode, uid, gid = state.kvm_mode.split()
        os.chown(KVM, int(uid), int(gid))
        os.chmod(KVM, int(mode, 8))
        state.kvm_mode = None


def up(paths: LabPaths, state: LabState, log: Log) -> None:
    paths.libvirt.mkdir(parents=True, exist_ok=True)
    if reachable():
        log("libvirtd already running: reusing it (it will be left running by down)")
        return
    env = {"LIBVIRT_LOG_OUTPUTS": f"3:file:{paths.libvirt / 'virtlogd.log'}"}
    if not procs.alive(procs.read_pidfile(paths.libvirt / "virtlogd.pid")):
        procs.run_daemonizing(
            ["virtlogd", "-d", "-p", str(paths.libvirt / "virtlogd.pid")],
            paths.libvirt / "daemons.out",
            timeout=30,
            env=env,
        )
        state.virtlogd_ours = True
    env = {"LIBVIRT_LOG_OUTPUTS": f"3:file:{paths.libvirt / 'libvirtd.log'}"}
    procs.run_daemonizing(
        ["libvirtd", "-d", "-p", str(paths.libvirt / "libvirtd.pid")],
        paths.libvirt / "daemons.out",
        timeout=30,
        env=env,
    )
    state.libvirtd_ours = True
    deadline = time.monotonic() + 30
    while not reachable():
        if time.monotonic() > deadline:
            raise BackendError("libvirt", f"libvirtd not reachable after 30 s, see {paths.libvirt}")
        time.sleep(0.1)
    log(f"libvirtd up (pid {procs.read_pidfile(paths.libvirt / 'libvirtd.pid')})")


def define_secret(paths: LabPaths, state: LabState, key: str, log: Log) -> None:
    """The ceph secret QEMU authenticates with, as on SEAPATH: usage name 'client.libvirt secret'."""
    existing = virsh("secret-list", "--all", check=False)
    for line in existing.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and SECRET_USAGE in parts[1]:
            state.secret_uuid = parts[0]
            break
    if state.secret_uuid is None:
        secret_xml = paths.libvirt / "secret.xml"
        secret_uuid = str(uuid.uuid4())
        # ephemeral: kept in libvirtd's memory only, so nothing lands in /etc/libvirt/secrets
        secret_xml.write_text(
            f"<secret ephemeral='yes' private='no'><uuid>{secret_uuid}</uuid>"
            f"<usage type='ceph'><name>{SECRET_USAGE}</name></usage></secret>"
        )
        virsh("secret-define", str(secret_xml))
        state.secret_uuid = secret_uuid
        state.secret_ours = True
    key_file = paths.libvirt / "secret.key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    # the file holds the key as ceph prints it (base64), which is what --file expects
    virsh("secret-set-value", state.secret_uuid, "--file", str(key_file))
    log(f"libvirt secret {state.secret_uuid} holds the client.libvirt key")


def lab_domains(names: set[str]) -> list[str]:
    """Running or defined domains among ``names``."""
    out = virsh("list", "--all", "--name", check=False)
    return [n for n in (line.strip() for line in out.splitlines()) if n in names]


def down(paths: LabPaths, state: LabState, vm_names: set[str], log: Log) -> None:
    if reachable():
        # when the libvirtd is ours, every domain on it is a lab guest
        names = set(virsh("list", "--all", "--name", check=False).split()) if state.libvirtd_ours else vm_names
        for name in lab_domains(names):
            virsh("destroy", name, check=False)
            virsh("undefine", name, "--nvram", check=False)
            log(f"guest {name} destroyed")
        if state.secret_ours and state.secret_uuid:
            virsh("secret-undefine", state.secret_uuid, check=False)
    for daemon, ours in (("libvirtd", state.libvirtd_ours), ("virtlogd", state.virtlogd_ours)):
        pid = procs.read_pidfile(paths.libvirt / f"{daemon}.pid")
        if ours and procs.is_daemon(pid, daemon) and pid:
            seconds = procs.stop(pid, timeout=10)
            log(f"{daemon} (pid {pid}) stopped in {seconds:.1f} s")
