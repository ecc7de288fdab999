from __future__ import annotations

from pathlib import Path

import pytest

from vmconsole import config
from vmconsole.domain.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_match_a_real_seapath_host() -> None:
    cfg = config.Config()
    assert cfg.ceph.conf == "/etc/ceph/ceph.conf"
    assert cfg.ceph.pool == "rbd"
    assert cfg.libvirt.uri == "qemu:///system"
    assert cfg.pacemaker.xml_dir == "/etc/pacemaker"


def test_values_are_read(tmp_path: Path) -> None:
    cfg = config.load_file(write(tmp_path, '[ceph]\npool = "vms"\ntimeout = 5\n[console]\nread_only = true\n'))
    assert cfg.ceph.pool == "vms"
    assert cfg.ceph.timeout == 5.0
    assert cfg.console.read_only is True
    assert cfg.source == tmp_path / "config.toml"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[ceph]\npol = 'x'\n", "ceph.pol"),
        ("[cephh]\n", "[cephh]"),
        ("[ceph]\ntimeout = 'ten'\n", "ceph.timeout"),
        ("[ceph]\ntimeout = -1\n", "ceph.timeout"),
        ("[console]\nread_only = 'yes'\n", "console.read_only"),
        ("[ceph]\nmonitors = '1.2.3.4'\n", "ceph.monitors"),
    ],
)
def test_a_bad_value_names_the_file_and_the_key(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load_file(path)
    assert str(path) in str(caught.value)
    assert where in str(caught.value)


def test_missing_and_broken_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load_file(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load_file(write(tmp_path, "[ceph\n"))


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = write(tmp_path, "")
    monkeypatch.setenv(config.ENV_VAR, str(env_file))
    assert config.find_config_path("/explicit.toml") == Path("/explicit.toml")
    assert config.find_config_path() == env_file


def test_render_round_trips(tmp_path: Path) -> None:
    original = config.Config(ceph=config.CephSection(pool="p", monitors=("1.2.3.4:6789",)), lab_dir="/tmp/x")
    path = write(tmp_path, config.render_toml(original))
    loaded = config.load_file(path)
    assert loaded.ceph == original.ceph
    assert loaded.lab_dir == "/tmp/x"


def test_console_keys_and_theme(tmp_path: Path) -> None:
    cfg = config.load_file(write(tmp_path, '[console]\ntheme = "gruvbox"\nkeys = { "vm.remove" = "ctrl+delete" }\n'))
    assert cfg.console.theme == "gruvbox"
    assert cfg.console.keys == {"vm.remove": "ctrl+delete"}
    assert config.load_file(write(tmp_path, config.render_toml(cfg))).console.keys == {"vm.remove": "ctrl+delete"}
    with pytest.raises(ConfigError, match=r"console\.keys"):
        config.load_file(write(tmp_path, "[console]\nkeys = { a = 1 }\n"))
