"""Does this operator have the rights to change the cluster? If not, the console opens read-only.

Changing a SEAPATH cluster needs root (Pacemaker's tools, libvirt's system socket) and a readable
Ceph keyring. This only looks at local files; it never calls the cluster.
"""

from __future__ import annotations

import configparser
import contextlib
import os
from pathlib import Path

from vmconsole.config import Config

DEFAULT_KEYRINGS = (
    "/etc/ceph/$cluster.$name.keyring",
    "/etc/ceph/$cluster.keyring",
    "/etc/ceph/keyring",
    "/etc/ceph/keyring.bin",
)


def _keyring_candidates(config: Config) -> list[Path]:
    name = f"client.{config.ceph.client_id}"
    patterns: list[str] = []
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    with contextlib.suppress(configparser.Error, UnicodeDecodeError):
        parser.read(config.ceph.conf, encoding="utf-8")
    for section in (name, "client", "global"):
        if parser.has_section(section) and parser.has_option(section, "keyring"):
            patterns = [p.strip() for p in parser.get(section, "keyring").split(",") if p.strip()]
            break
    patterns = patterns or list(DEFAULT_KEYRINGS)
    return [
        Path(p.replace("$cluster", "ceph").replace("$name", name).replace("$id", config.ceph.client_id))
        for p in patterns
    ]


def read_only_reason(config: Config) -> str | None:
    """Why this process cannot change the cluster, or None when it (most likely) can."""
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "not running as root (Pacemaker, libvirt and Ceph changes need root)"
    keyrings = _keyring_candidates(config)
    if not any(os.access(path, os.R_OK) for path in keyrings):
        return f"the Ceph keyring is not readable ({', '.join(str(p) for p in keyrings)})"
    return None
