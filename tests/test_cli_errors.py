"""Every `opte` error is one line on stderr (MEASURES.md section 11), argument errors included."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from home_processes import opte  # noqa: E402


@pytest.mark.parametrize("args, words", [
    (["build", "--cutoff", "2010-13-01"], "opte build: argument --cutoff: expected a date as YYYY-MM-DD, got '2010-13-01'"),
    (["publish"], "opte publish: the following arguments are required: --month"),
    (["publish", "--month", "March"], "opte publish: argument --month: expected a month as YYYY-MM, got 'March'"),
    (["synth", "--out", "x", "--dirty", "lots"], "opte synth: argument --dirty: expected a fraction in [0, 1), got lots"),
    (["synth", "--out", "x", "--people", "many"], "opte synth: argument --people: invalid int value: 'many'"),
    (["land", "--inbox", "x", "--bogus"], "opte: unrecognized arguments: --bogus"),
    (["nosuch"], "opte: argument COMMAND: invalid choice: 'nosuch'"),
    ([], "opte: the following arguments are required: COMMAND"),
])
def test_argument_errors_are_one_line(tmp_path, args, words):
    proc = opte(tmp_path, *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(words), proc.stderr
    assert "usage:" not in proc.stderr and "--help" in proc.stderr


def test_help_still_prints_help(tmp_path):
    for args in (["--help"], ["build", "--help"]):
        proc = opte(tmp_path, *args)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: opte") and "--home" in opte(tmp_path, "-h").stdout


def test_an_error_message_spanning_lines_is_printed_as_one(tmp_path):
    """An inbox path with a newline in it still gives one line."""
    inbox = tmp_path / "in\nbox"
    proc = opte(tmp_path, "land", "--inbox", str(inbox))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("opte land: inbox folder") and "does not exist" in proc.stderr
