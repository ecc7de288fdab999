"""``vmconsole lab up | down | status``: bring the whole local cluster up and tear it down."""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmconsole import config as configuration
from vmconsole.backends.proc import run
from vmconsole.domain.errors import BackendError, VmConsoleError
from vmconsole.lab import ceph, cluster, hostvirt, procs
from vmconsole.lab.paths import LabPaths, default_dir
from vmconsole.lab.state import LabState

Log = Callable[[str], None]

# Host directories where the lab's daemons create entries of their own: whatever appears there
# between up and down (and matches the names below) is removed by down.
WATCHED: dict[str, tuple[str, ...] | None] = {
    "/run": ("crm", "resource-agents", "libvirt", "libvirtd.pid", "virtlogd.pid", "mount"),
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
    def up(self) -> float:
        """Bring the lab up; return the seconds it took. A running lab is left as it is."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it starts Ceph, libvirtd, corosync and pacemaker)")
        self._t0 = time.monotonic()
        existing = self.state()
        if existing is not None:
            if existing.up_seconds is not None and self.is_up():
                self.log(f"lab already running in {self.paths.root}")
                return 0.0
            raise LabError(
                f"a lab that is not fully up exists in {self.paths.root}",
                hint="run `vmconsole lab down` first",
            )
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

    def config(self) -> configuration.Config:
        return configuration.Config(
            ceph=configuration.CephSection(
                conf=str(self.paths.ceph_conf),
                client_id="admin",
                pool="rbd",
                monitors=(f"{ceph.MON_ADDR}:{ceph.MON_PORT_V1}",),
            ),
            libvirt=configuration.LibvirtSection(uri=hostvirt.URI),
            pacemaker=configuration.PacemakerSection(xml_dir=str(self.paths.xml_dir)),
            console=configuration.ConsoleSection(),
            lab_dir=str(self.paths.root),
        )

    def _write_config(self) -> None:
        self.paths.config_file.write_text(
            "# Written by `vmconsole lab up`: points vmconsole at the local lab cluster.\n"
            + configuration.render_toml(self.config())
        )

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
