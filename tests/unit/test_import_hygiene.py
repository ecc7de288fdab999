"""The headless core never imports Textual (nor the faces): checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE_MODULES = [
    "vmconsole.core.services",
    "vmconsole.core.vms",
    "vmconsole.core.snapshots",
    "vmconsole.core.placement",
    "vmconsole.core.diagnose",
    "vmconsole.core.state",
    "vmconsole.core.tasks",
    "vmconsole.core.journal",
    "vmconsole.core.recovery",
    "vmconsole.domain.model",
    "vmconsole.domain.validate",
    "vmconsole.backends.rbd",
    "vmconsole.backends.pacemaker",
    "vmconsole.backends.libvirt",
    "vmconsole.backends.qemu_img",
    "vmconsole.config",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_never_imports_the_ui(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'vmconsole.tui',"
        " 'vmconsole.cli', 'vmconsole.lab')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} pulls in {result.stdout.strip()}"


def test_backends_do_not_import_services() -> None:
    code = (
        "import sys, vmconsole.backends.rbd, vmconsole.backends.pacemaker, vmconsole.backends.libvirt\n"
        "bad = sorted(m for m in sys.modules if m.startswith('vmconsole.core'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_the_faces_never_call_a_backend_directly() -> None:
    """The console and the CLI go through the service layer (design rule), checked in the sources."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "vmconsole"
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for face in ("tui", "cli")
        for path in sorted((root / face).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.lstrip().startswith(("import vmconsole.backends", "from vmconsole.backends"))
    ]
    assert offenders == []
