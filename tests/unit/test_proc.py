"""``proc.run``, the one way vmconsole runs a tool: argv only, a timeout always, text out."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pytest

from vmconsole.backends.proc import run
from vmconsole.domain.errors import BackendError, BackendTimeout


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_output_error_and_exit_code_come_back_as_text_with_universal_newlines() -> None:
    code = "import sys; sys.stdout.write('a\\r\\nb\\rc\\n'); sys.stderr.write('first\\nlast complaint\\n'); sys.exit(3)"
    result = run(python(code), timeout=30, backend="test")
    assert (result.returncode, result.stdout, result.ok) == (3, "a\nb\nc\n", False)
    assert result.error_text() == "last complaint"


def test_input_reaches_the_tool_whole_even_when_large() -> None:
    text = "".join(f"<line n='{i}'>é</line>\n" for i in range(100_000))  # ~2.4 MB, as a 500-VM CIB
    code = "import sys, hashlib; data = sys.stdin.buffer.read(); print(len(data), hashlib.sha256(data).hexdigest())"
    result = run(python(code), timeout=30, backend="test", input_text=text)
    data = text.encode()
    assert result.stdout.split() == [str(len(data)), hashlib.sha256(data).hexdigest()]


def test_without_input_the_tool_reads_nothing_rather_than_waiting() -> None:
    result = run(python("import sys; print(repr(sys.stdin.read()))"), timeout=10, backend="test")
    assert result.stdout == "''\n"


def test_check_raises_with_the_tools_own_last_line() -> None:
    with pytest.raises(BackendError) as caught:
        run(python("import sys; sys.exit('no such resource')"), timeout=30, backend="pacemaker", check=True)
    assert "no such resource" in str(caught.value) and caught.value.backend == "pacemaker"


def test_a_tool_that_hangs_is_stopped_at_the_timeout_and_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        run(python(code), timeout=1.0, backend="ceph")
    assert time.monotonic() - started < 10
    assert "did not answer within 1 s" in str(caught.value)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_missing_tool_is_named() -> None:
    with pytest.raises(BackendError) as caught:
        run(["vmconsole-no-such-tool"], timeout=5, backend="libvirt")
    assert "vmconsole-no-such-tool is not installed" in str(caught.value)


def test_the_answer_comes_at_the_tools_exit_even_when_a_child_keeps_its_output_open() -> None:
    """A pipe would wait for every holder of the tool's output to close it."""
    code = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(5)']); "
        "print('answered')"
    )
    started = time.monotonic()
    result = run(python(code), timeout=20, backend="test")
    assert result.stdout == "answered\n"
    assert time.monotonic() - started < 4.5  # the grandchild holds the output for 5 s


def test_env_entries_are_added_to_the_environment() -> None:
    code = "import os; print(os.environ['CIB_file'], 'PATH' in os.environ)"
    assert run(python(code), timeout=30, backend="test", env={"CIB_file": "/dev/stdin"}).stdout == "/dev/stdin True\n"
