"""What vmconsole trusts on this host: configuration files, SEAPATH's cluster description and the lab's
state file are used only when they are this user's (or root's) and nobody else can write them; the lab's
state file is checked before ``lab down`` acts on it as root, and a recorded PID is signalled only when
it is still the daemon the lab started.

Nothing here touches a cluster: files under tmp_path, and processes this test starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from vmconsole import config
from vmconsole.domain.errors import ConfigError
from vmconsole.lab import cluster, procs
from vmconsole.lab.lab import Lab, LabError
from vmconsole.lab.paths import LabPaths
from vmconsole.lab.state import LabState

NOBODY = 65534  # another user: the files are given to it with chown (the tests run as root)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")

CONFIG = '[ceph]\npool = "evil"\nconf = "/tmp/evil/ceph.conf"\n'
CLUSTER_CONF = "[machines]\nhypervisor1 = hv1\nobserver = obs1\n"


def written(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# --- configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "shown"), [(0o666, "666"), (0o646, "646"), (0o664, "664"), (0o620, "620")])
def test_a_config_others_may_write_is_refused_before_it_is_read(tmp_path: Path, mode: int, shown: str) -> None:
    path = written(tmp_path / "config.toml", CONFIG, mode)
    with pytest.raises(ConfigError) as caught:
        config.load_file(path)
    message = str(caught.value)
    assert str(path) in message and "not trusted" in message and f"mode {shown}" in message
    assert caught.value.hint == f"chmod go-w {path}"
    # whichever way it is named: --config, $VMCONSOLE_CONFIG
    with pytest.raises(ConfigError, match="not trusted"):
        config.load(str(path))


@needs_root
def test_a_config_of_another_user_is_refused(tmp_path: Path) -> None:
    path = written(tmp_path / "config.toml", CONFIG)
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(ConfigError) as caught:
        config.load_file(path)
    assert f"uid {NOBODY}" in str(caught.value) and "not trusted" in str(caught.value)


def test_a_config_that_is_ours_and_closed_is_read(tmp_path: Path) -> None:
    path = written(tmp_path / "config.toml", CONFIG, 0o600)
    assert config.load_file(path).ceph.pool == "evil"
    path.chmod(0o644)  # others may read it: that is fine
    assert config.load_file(path).ceph.pool == "evil"


def test_a_lab_config_under_tmp_is_never_picked_up_implicitly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab_config = written(tmp_path / "vmconsole.toml", CONFIG)
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    found = config.find_config_path()
    assert found is None or not str(found).startswith("/tmp"), found
    assert found != lab_config


# --- SEAPATH's /etc/cluster.conf ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_a_cluster_description_others_may_write_names_no_observer(tmp_path: Path, mode: int) -> None:
    section = config.PacemakerSection(cluster_conf=str(written(tmp_path / "cluster.conf", CLUSTER_CONF, mode)))
    with pytest.raises(ConfigError) as caught:
        config.read_observer(section)
    assert "the cluster description" in str(caught.value) and "not trusted" in str(caught.value)


@needs_root
def test_a_cluster_description_of_another_user_names_no_observer(tmp_path: Path) -> None:
    path = written(tmp_path / "cluster.conf", CLUSTER_CONF)
    section = config.PacemakerSection(cluster_conf=str(path))
    assert config.read_observer(section) == "obs1"
    os.chown(path, NOBODY, NOBODY)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1))  # what was read before is not reused
    with pytest.raises(ConfigError, match=f"uid {NOBODY}"):
        config.read_observer(section)


# --- the lab's state file ------------------------------------------------------------------------------


@pytest.fixture
def lab_dir(tmp_path: Path) -> Lab:
    """A lab directory with a state file as ``up`` writes it (nothing runs)."""
    root = tmp_path / "lab"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    lab = Lab(root)
    LabState(root=str(lab.paths.root)).save(lab.paths.state_file)
    lab.paths.state_file.chmod(0o644)
    return lab


def test_a_state_file_as_up_writes_it_is_trusted(lab_dir: Lab) -> None:
    state = lab_dir.state()
    assert state is not None and state.root == str(lab_dir.paths.root)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"root": "/etc"}, "names '/etc', not its own directory"),
        ({"root": "/"}, "not its own directory"),
        ({"watched": {"/etc": []}}, "directories the lab never watches (/etc)"),
        ({"watched": {"/run": [], "/etc/ssh": ["sshd_config"]}}, "never watches (/etc/ssh)"),
        ({"netns": ["default"]}, "network objects the lab never makes"),
        ({"host_link": "eth0"}, "network objects the lab never makes"),
    ],
)
def test_a_state_file_naming_what_is_not_the_labs_is_refused(
    lab_dir: Lab, change: dict[str, object], words: str
) -> None:
    replace(LabState(root=str(lab_dir.paths.root)), **change).save(lab_dir.paths.state_file)  # type: ignore[arg-type]
    lab_dir.paths.state_file.chmod(0o644)
    with pytest.raises(LabError) as caught:
        lab_dir.state()
    assert words in str(caught.value) and "not trusted" in str(caught.value)
    # `lab down` refuses the same file before it acts on anything, and leaves it for a human to check
    with pytest.raises(LabError, match="not trusted"):
        lab_dir.down()
    assert lab_dir.paths.state_file.exists()


@pytest.mark.parametrize("which", ["state file", "directory"])
def test_a_state_file_or_lab_directory_others_may_write_is_refused(lab_dir: Lab, which: str) -> None:
    path = lab_dir.paths.state_file if which == "state file" else lab_dir.paths.root
    path.chmod(0o777 if which == "directory" else 0o666)
    with pytest.raises(LabError, match="can be written by other users: not trusted"):
        lab_dir.state()
    with pytest.raises(LabError, match="not trusted"):
        lab_dir.down()
    assert lab_dir.paths.state_file.exists()


@needs_root
def test_a_state_file_of_another_user_or_a_link_is_refused(lab_dir: Lab, tmp_path: Path) -> None:
    os.chown(lab_dir.paths.state_file, NOBODY, NOBODY)
    with pytest.raises(LabError, match=f"belongs to uid {NOBODY}, not to this user: not trusted"):
        lab_dir.state()
    os.chown(lab_dir.paths.state_file, 0, 0)
    elsewhere = tmp_path / "elsewhere.json"
    lab_dir.paths.state_file.rename(elsewhere)
    lab_dir.paths.state_file.symlink_to(elsewhere)
    with pytest.raises(LabError, match="is a symbolic link: not trusted"):
        lab_dir.state()


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process of this host that is not a lab daemon, whose command line mentions one (as a
    ``tail -f`` of its log would): what a recorded PID may have become since."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "/var/log/pacemakerd corosync.log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while procs.cmdline(proc.pid)[-1:] != ["/var/log/pacemakerd corosync.log"]:
        assert time.monotonic() < deadline, "the bystander did not start"
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait(10)


def test_a_recorded_pid_that_is_not_the_daemon_is_left_alone(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    paths = LabPaths(tmp_path)
    state = LabState(root=str(tmp_path), pids={"pacemakerd": bystander.pid, "corosync": bystander.pid})
    logged: list[str] = []
    cluster.down(paths, state, logged.append)
    time.sleep(0.2)
    assert bystander.poll() is None, f"lab down signalled a process that is not its daemon: {logged}"
    assert logged == []
    assert state.pids == {}, "the stale PIDs are forgotten"
    assert not procs.is_daemon(bystander.pid, "pacemakerd")
    assert not procs.is_daemon(bystander.pid, "corosync")


def test_a_recorded_pid_that_is_the_daemon_is_recognised(tmp_path: Path) -> None:
    daemon = subprocess.Popen(["sleep", "120"])
    try:
        deadline = time.monotonic() + 10
        while procs.cmdline(daemon.pid)[:1] != ["sleep"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert procs.is_daemon(daemon.pid, "sleep")
        assert not procs.is_daemon(daemon.pid, "slee") and not procs.is_daemon(None, "sleep")
    finally:
        daemon.kill()
        daemon.wait(10)
    assert not procs.is_daemon(daemon.pid, "sleep"), "a PID that is gone is no daemon"
