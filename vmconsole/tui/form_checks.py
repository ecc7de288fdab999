"""Live checks of the create/clone forms, as the operator types (local and instant only).

The names and the XML go through core's validators; files are only checked to exist and be
readable here (the image format is checked by the service when it plans the task).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from vmconsole.domain import domain_xml, validate
from vmconsole.domain.errors import ValidationError

MAX_XML_BYTES = 1024 * 1024


def check_vm_name(name: str, existing: Collection[str]) -> str | None:
    try:
        validate.vm_name(name)
    except ValidationError as exc:
        return exc.message
    if name in existing:
        return f"a VM named {name} already exists"
    return None


def check_file(path: str, what: str) -> str | None:
    if not path:
        return f"give the {what}"
    target = Path(path).expanduser()
    if not target.exists():
        return f"{path} does not exist"
    if not target.is_file():
        return f"{path} is not a regular file"
    if not os.access(target, os.R_OK):
        return f"{path} is not readable"
    return None


def read_xml(path: str) -> tuple[str | None, str | None]:
    """The XML text and None, or None and what is wrong with the file or its content."""
    problem = check_file(path, "domain XML file")
    if problem:
        return None, problem
    target = Path(path).expanduser()
    if target.stat().st_size > MAX_XML_BYTES:
        return None, f"{path} is larger than 1 MiB: not a domain XML"
    try:
        content = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read {path}: {exc}"
    try:
        domain_xml.check_base_xml(content)
    except ValidationError as exc:
        return None, exc.message
    return content, None
