"""The headless core never imports Textual (nor the faces): checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys


def headless_modules() -> list[str]:
    """Every module of the headless layers (core, backends, domain) and the configuration, found in
    the tree, so a new module is checked without being listed."""
    import pkgutil

    import vmconsole

    found = ["vmconsole.config"]
    for info in pkgutil.walk_packages(vmconsole.__path__, "vmconsole."):
        if info.name.startswith(("vmconsole.core", "vmconsole.backends", "vmconsole.domain")):
            found.append(info.name)
    return sorted(found)


def test_core_never_imports_the_ui() -> None:
    modules = headless_modules()
    assert "vmconsole.core.timeline" in modules and "vmconsole.domain.status" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'vmconsole.tui',"
        " 'vmconsole.cli', 'vmconsole.lab')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "", f"the headless layers pull in {result.stdout.strip()}"


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
