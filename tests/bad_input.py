"""The bad-input contract the bad-input tables share (``test_bad_input*.py``, ``test_judges_bad_input.py``).

A row is a ``Case``: a ``fade-hub`` argv with placeholders its table's ``bed`` fixture fills, a needle its error line
holds, and the environment it needs. ``fails_cleanly`` runs it and asserts: exit status 2, at most three lines on
stderr of at most 1,000 characters (the last one the ``error:`` line holding the needle), no traceback, and a test
bed whose every file and folder is byte-for-byte as it was.

Rows run in this process through ``fade_hub.cli.main`` (what ``python -m fade_hub.cli`` calls, stdout and stderr
captured), each in the bed's folder: the model stack is imported once, not once per row. A row that sets
environment variables (read at import time by the Hub libraries) runs in a fresh ``python -m fade_hub.cli`` process,
and so does a row marked ``process=True``: each table keeps a few, so that what a user's process prints (library
warnings included) is checked on every command that loads a model, seeds, feedback or the Hub.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """One bad command: its argv (with placeholders), a needle its error line holds, extra environment, and whether
    it runs in a fresh process (rows with ``env`` always do)."""

    argv: tuple[str, ...]
    needle: str | None
    env: dict[str, str] = field(default_factory=dict)
    process: bool = False


def snapshot(root: Path) -> dict[str, str]:
    """Every file (by its sha256) and folder under ``root``."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(root.rglob("*"))
    }


def run_in_process(argv: list[str], cwd: str) -> tuple[int, str]:
    """``fade-hub ARGV`` run by ``fade_hub.cli.main`` in ``cwd``: (exit status, stderr)."""
    from fade_hub.cli import main

    err = io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as stop:  # argparse's usage errors, as in a process
                status = stop.code if isinstance(stop.code, int) else 1
    finally:
        os.chdir(here)
    return status, err.getvalue()


def run_in_a_process(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[int, str]:
    """``python -m fade_hub.cli ARGV`` in a fresh process in ``cwd`` with ``env`` added: (exit status, stderr)."""
    done = subprocess.run([sys.executable, "-m", "fade_hub.cli", *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env}, cwd=cwd)
    return done.returncode, done.stderr


def fails_cleanly(case: Case, bed: dict[str, str]) -> str:
    """Run a case's command and assert it failed cleanly: exit 2, at most three stderr lines of at most 1,000
    characters, no traceback, the needle in the last (error) line, the test bed unchanged; its stderr."""
    argv = [part.format(**bed) for part in case.argv]
    before = snapshot(Path(bed["root"]))
    if case.env or case.process:
        status, stderr = run_in_a_process(argv, bed["root"], case.env)
    else:
        status, stderr = run_in_process(argv, bed["root"])
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2, (status, stderr[-3000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) <= 3 and all(len(line) <= 1000 for line in lines), stderr[:3000]
    if case.needle is not None:
        assert "error:" in lines[-1] and case.needle.format(**bed) in lines[-1], lines
    assert snapshot(Path(bed["root"])) == before, "a failed command changed the test bed"
    return stderr
