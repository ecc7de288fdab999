"""The ``vmconsole`` command ends as soon as its answer is out: everything it printed is there, its exit
code is the command's, and a reader that went away (``| head``) gets no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

LEAVE = (
    "from vmconsole.cli.main import leave\nimport sys\n"
    "print('answer', end='')\nprint('note', end='', file=sys.stderr)\nleave(11)\n"
)


def test_the_answer_is_flushed_and_the_code_kept() -> None:
    result = subprocess.run([sys.executable, "-c", LEAVE], capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (11, "answer", "note")


def test_the_command_entry_point_exits_with_mains_code() -> None:
    code = "import sys\nsys.argv = ['vmconsole', 'vm', 'nosuchverb']\nfrom vmconsole.cli.main import run\nrun()\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_a_reader_that_went_away_gets_no_traceback() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the first write fails as it does after `| head` has left
    code = "import sys\nsys.argv = ['vmconsole', '--help']\nfrom vmconsole.cli.main import run\nrun()\n"
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141 and "Traceback" not in result.stderr
