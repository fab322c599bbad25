"""The README's main command: `fade-hub demo` end to end in a fresh process, the whole loop."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


def _demo(tmp_path, *flags: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}
    env["HF_HOME"] = str(tmp_path / "hf_home")
    done = subprocess.run(
        [sys.executable, "-m", "fade_hub.cli", "demo", "--output", str(tmp_path / "demo"),
         "--cache-dir", str(tmp_path / "cache"), "--no-progress", *flags],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_demo_closes_the_loop_offline(tmp_path):
    out = _demo(tmp_path)
    table = out[out.index("rank"):out.index("simulated reviewer")]
    modes = [line for line in table.splitlines()[2:] if line.strip()]
    assert 1 <= len(modes) <= 5
    # the model never saw dark and rotated shapes in training: that is where it must fail
    assert all("brightness=0.2" in line or "brightness=0.4" in line for line in modes), table
    assert "simulated reviewer (not a person): marked the" in out
    drop = int(re.search(r"targeted drop (-?\d+)%", out).group(1))
    assert drop >= 60, out
    same, total = map(int, re.search(r"stock peft \(PeftModel.from_pretrained\): (\d+) of (\d+)", out).groups())
    assert same == total > 0
    seconds = int(re.search(r"total time:\s+(\d+) s", out).group(1))
    assert seconds < 300
    assert (tmp_path / "demo" / "run" / "README.md").is_file()
    assert list((tmp_path / "demo" / "run" / "plots").glob("heatmap_*.png"))
    assert (tmp_path / "demo" / "adapter" / "adapter_model.safetensors").is_file()
    assert "pushed dataset: http://127.0.0.1:" in out and "pushed variant: http://127.0.0.1:" in out
    assert (tmp_path / "cache" / "demo-hub").is_dir()
    # a second demo reuses the cached model and replaces the earlier one
    again = _demo(tmp_path, "--budget", "64", "--mitigation-steps", "5")
    queries = int(re.search(r"fade-hub demo: (\d+) queries", again).group(1))
    clean = 48  # every seed once, unperturbed (16 per class)
    assert 64 + clean <= queries <= 64 + clean + 5 * 16, "64 explore + the clean seeds + at most 5 cells x 16 held out"
