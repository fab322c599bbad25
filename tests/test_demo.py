"""The README's main command: `fade-hub demo` end to end in a fresh process."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_finds_dark_rotated_failures_and_pushes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}
    env["HF_HOME"] = str(tmp_path / "hf_home")
    done = subprocess.run(
        [sys.executable, "-m", "fade_hub.cli", "demo", "--output", str(tmp_path / "run"),
         "--cache-dir", str(tmp_path / "cache"), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    seconds = int(re.search(r"failures in \d+ cells \((\d+) s\)", out).group(1))
    assert seconds < 300
    table = out[out.index("rank"):out.index("run directory")]
    modes = [line for line in table.splitlines()[2:] if line.strip()]
    assert len(modes) == 5
    # the model never saw dark and rotated shapes in training: that is where it must fail
    assert all("brightness=0.2" in line or "brightness=0.4" in line for line in modes), table
    assert (tmp_path / "run" / "README.md").is_file()
    assert list((tmp_path / "run" / "plots").glob("heatmap_*.png"))
    assert "pushed dataset: http://127.0.0.1:" in out
    assert (tmp_path / "cache" / "demo-hub").is_dir()
    # a second demo reuses the cached model and replaces the earlier run
    again = subprocess.run(
        [sys.executable, "-m", "fade_hub.cli", "demo", "--output", str(tmp_path / "run"),
         "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--budget", "64"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    queries = int(re.search(r"fade-hub demo: (\d+) queries", again.stdout).group(1))
    clean = 48  # every seed once, unperturbed (16 per class)
    assert 64 + clean <= queries <= 64 + clean + 5 * 16, "64 explore + the clean seeds + at most 5 cells x 16 held out"
