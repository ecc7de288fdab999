"""The headless core never imports Textual (nor the faces): checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE_MODULES = [
    "vmconsole.core.services",
    "vmconsole.core.vms",
    "vmconsole.core.snapshots",
    "vmconsole.core.state",
    "vmconsole.core.tasks",
    "vmconsole.core.recovery",
    "vmconsole.core.model",
    "vmconsole.core.validate",
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
        "bad = sorted(m for m in sys.modules if m in ('vmconsole.core.services', 'vmconsole.core.vms',"
        " 'vmconsole.core.snapshots', 'vmconsole.core.state'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
