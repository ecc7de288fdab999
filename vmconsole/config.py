"""vmconsole's TOML configuration: where the cluster is and how to reach it.

Looked up in this order: ``--config PATH``, ``$VMCONSOLE_CONFIG``, ``~/.config/vmconsole/config.toml``,
``/etc/vmconsole/config.toml``. The defaults match a real SEAPATH hypervisor, so a file is only needed
where a cluster differs (or for the local lab, whose ``lab up`` writes its own file).
"""

from __future__ import annotations

import configparser
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vmconsole.domain.errors import ConfigError

ENV_VAR = "VMCONSOLE_CONFIG"
USER_PATH = Path("~/.config/vmconsole/config.toml")
SYSTEM_PATH = Path("/etc/vmconsole/config.toml")


@dataclass(frozen=True)
class CephSection:
    conf: str = "/etc/ceph/ceph.conf"
    client_id: str = "admin"
    pool: str = "rbd"
    namespace: str = ""
    # Management calls give up after this many seconds instead of hanging on a sick cluster.
    timeout: float = 10.0
    libvirt_user: str = "libvirt"
    secret_usage: str = "client.libvirt secret"
    # Monitor addresses written into VM disk XML; empty means "read them from the monmap".
    monitors: tuple[str, ...] = ()
    # A copy or an import whose progress does not move for this long is stopped and undone.
    copy_stall_timeout: float = 300.0


@dataclass(frozen=True)
class LibvirtSection:
    uri: str = "qemu:///system"
    timeout: float = 30.0  # seconds before a libvirt call gives up


@dataclass(frozen=True)
class PacemakerSection:
    crm_mon: str = "crm_mon"
    cibadmin: str = "cibadmin"
    crm_resource: str = "crm_resource"
    crm_attribute: str = "crm_attribute"
    crm_diff: str = "crm_diff"
    timeout: float = 30.0
    # Where the resource agent caches each VM's domain XML (vm_manager: /etc/pacemaker).
    xml_dir: str = "/etc/pacemaker"
    # The observer node (never runs VMs, banned for every VM); empty means "read it from cluster_conf".
    observer: str = ""
    # SEAPATH's cluster description (`[machines] observer = ...`), as vm_manager reads it.
    cluster_conf: str = "/etc/cluster.conf"


SNAPSHOT_KINDS = ("image", "group")


@dataclass(frozen=True)
class SnapshotsSection:
    # "image": one snapshot name on every disk of the VM, taken at one instant (vm_manager lists,
    # purges, removes and rolls them back); "group": RBD group snapshots, which vm_manager cannot use.
    kind: str = "image"


@dataclass(frozen=True)
class ConsoleSection:
    refresh_interval: float = 2.0
    ssh_user: str = "libvirtadmin"
    read_only: bool = False
    theme: str = ""  # a Textual theme name; empty = the default
    # binding id -> keys, e.g. {"vm.remove" = "ctrl+delete"} (the ids are listed by `?` in the console)
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    ceph: CephSection = field(default_factory=CephSection)
    libvirt: LibvirtSection = field(default_factory=LibvirtSection)
    pacemaker: PacemakerSection = field(default_factory=PacemakerSection)
    console: ConsoleSection = field(default_factory=ConsoleSection)
    snapshots: SnapshotsSection = field(default_factory=SnapshotsSection)
    # Where this configuration came from (None: built-in defaults).
    source: Path | None = None
    # Set when the configuration points at the local lab.
    lab_dir: str | None = None


_SECTIONS: dict[str, type[Any]] = {
    "ceph": CephSection,
    "libvirt": LibvirtSection,
    "pacemaker": PacemakerSection,
    "console": ConsoleSection,
    "snapshots": SnapshotsSection,
}


def _coerce(path: Path, key: str, value: Any, default: Any) -> Any:
    """Check one value against the type of its default; name the file and key when it is wrong."""
    where = f"{path}: {key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", field=where)
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {value!r}", field=where)
        if value <= 0:
            raise ConfigError(f"must be greater than 0, got {value!r}", field=where)
        return float(value)
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(f"expected a table of strings, got {value!r}", field=where)
        return dict(value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"expected a list of strings, got {value!r}", field=where)
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {value!r}", field=where)
    return value


def parse_config(data: dict[str, Any], path: Path) -> Config:
    sections: dict[str, Any] = {}
    lab_dir: str | None = None
    for name, body in data.items():
        if name == "lab":
            if not isinstance(body, dict) or not isinstance(body.get("dir"), str):
                raise ConfigError("expected a table with a string 'dir'", field=f"{path}: lab")
            lab_dir = body["dir"]
            continue
        section_type = _SECTIONS.get(name)
        if section_type is None:
            known = ", ".join(sorted([*_SECTIONS, "lab"]))
            raise ConfigError(f"unknown section (known: {known})", field=f"{path}: [{name}]")
        if not isinstance(body, dict):
            raise ConfigError("expected a table", field=f"{path}: {name}")
        defaults = section_type()
        known_keys = {f.name: getattr(defaults, f.name) for f in fields(section_type)}
        values: dict[str, Any] = {}
        for key, value in body.items():
            if key not in known_keys:
                raise ConfigError(
                    f"unknown key (known: {', '.join(sorted(known_keys))})", field=f"{path}: {name}.{key}"
                )
            values[key] = _coerce(path, f"{name}.{key}", value, known_keys[key])
        if name == "snapshots" and values.get("kind", "image") not in SNAPSHOT_KINDS:
            raise ConfigError(
                f"expected one of {', '.join(SNAPSHOT_KINDS)}, got {values['kind']!r}", field=f"{path}: snapshots.kind"
            )
        sections[name] = replace(defaults, **values)
    return Config(**sections, source=path, lab_dir=lab_dir)


def check_trusted(path: Path, what: str = "file") -> None:
    """A configuration is trusted only when its owner is this user (or root) and nobody else may write
    it: a file another user could change would decide where vmconsole writes and what it runs."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} does not exist", field=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read: {exc.strerror}", field=str(path)) from exc
    if info.st_uid not in (os.geteuid(), 0):
        raise ConfigError(
            f"{what} belongs to uid {info.st_uid}, not to this user ({os.geteuid()}) or root: not trusted",
            field=str(path),
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{what} can be written by other users (mode {stat.S_IMODE(info.st_mode):o}): not trusted",
            field=str(path),
            hint=f"chmod go-w {path}",
        )


def read_observer(section: PacemakerSection) -> str | None:
    """The cluster's observer: ``[pacemaker] observer``, else ``[machines] observer`` of SEAPATH's
    ``cluster_conf`` (an INI file, as vm_manager reads it). None when neither names one (a missing file
    is a cluster without an observer); a file that is not trusted or not readable is a ConfigError."""
    if section.observer:
        if not _NODE_NAME.fullmatch(section.observer):
            raise ConfigError(f"{section.observer!r} is not a node name", field="pacemaker.observer")
        return section.observer
    path = Path(section.cluster_conf)
    if not path.exists():
        return None
    check_trusted(path, "the cluster description")
    try:
        info = path.stat()
        key = (str(path), info.st_mtime_ns, info.st_size, info.st_ino)
        if key in _OBSERVER_CACHE:
            return _OBSERVER_CACHE[key]
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"the cluster description cannot be read: {exc}", field=str(path)) from exc
    observer = parser.get("machines", "observer", fallback="").strip() or None
    if observer is not None and not _NODE_NAME.fullmatch(observer):
        raise ConfigError(f"[machines] observer = {observer!r} is not a node name", field=str(path))
    _OBSERVER_CACHE.clear()
    _OBSERVER_CACHE[key] = observer
    return observer


_OBSERVER_CACHE: dict[tuple[str, int, int, int], str | None] = {}
_NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def load_file(path: Path) -> Config:
    check_trusted(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError("file does not exist", field=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", field=str(path)) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"is not valid TOML: {exc}", field=str(path)) from exc
    return parse_config(data, path)


def find_config_path(explicit: str | None = None) -> Path | None:
    """The configuration file to use, or None when none is configured anywhere."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    for candidate in (USER_PATH.expanduser(), SYSTEM_PATH):
        if candidate.exists():
            return candidate
    return None


def load(explicit: str | None = None) -> Config:
    """Load the configuration; the built-in defaults (a real SEAPATH host) when none is found."""
    path = find_config_path(explicit)
    return load_file(path) if path else Config()


def render_toml(config: Config) -> str:
    """Write a configuration back as TOML (used by the lab to point the console at itself)."""
    lines: list[str] = []
    if config.lab_dir:
        lines += ["[lab]", f"dir = {_toml_value(config.lab_dir)}", ""]
    for name in _SECTIONS:
        section = getattr(config, name)
        lines.append(f"[{name}]")
        for f in fields(section):
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
