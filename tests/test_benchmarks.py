"""Smoke tests of the benchmark scripts: they run end to end and report their figures (no speed asserted)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_env_throughput_smoke(tmp_path):
    """A tiny-ViT run prints both throughputs and their ratio and writes them to the --output JSON."""
    output = tmp_path / "results" / "env_throughput.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "env_throughput.py"), "--small", "--queries", "16", "--repeats", "1",
         "--output", str(output)],
        cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r"ratio env / raw: (\d+\.\d+)", done.stdout)
    assert match, done.stdout
    result = json.loads(output.read_text(encoding="utf-8"))
    assert match.group(1) == f"{result['ratio']:.3f}"  # the printed ratio is the written one, to 3 decimals
    assert result["env_qps"] > 0 and result["raw_qps"] > 0
    assert abs(result["ratio"] - result["env_qps"] / result["raw_qps"]) < 1e-3
    assert result["setup"]["queries"] == 16 and result["setup"]["repeats"] == 1
    assert len(result["env_qps_runs"]) == len(result["raw_qps_runs"]) == 1
    assert result["machine"]["cpu_count"] == os.cpu_count()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


@pytest.mark.slow
def test_env_throughput_causal_lm_with_auto_batch_smoke(tmp_path):
    """The language-model workload on --device auto with --batch-size auto: the batch it found is recorded."""
    output = tmp_path / "results" / "lm.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "env_throughput.py"), "--model", "causal-lm", "--small", "--queries", "8",
         "--repeats", "1", "--device", "auto", "--batch-size", "auto", "--output", str(output)],
        cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(output.read_text(encoding="utf-8"))
    assert result["setup"]["batch_size_requested"] == "auto" and result["setup"]["batch_size"] == 32  # the CPU limit
    assert result["setup"]["device"] == "cpu" and result["env_qps"] > 0 and result["raw_qps"] > 0
    assert "generate" in result["raw_definition"] and "batch 32 (asked: auto)" in done.stdout


@pytest.mark.slow
def test_endpoint_throughput_smoke(tmp_path):
    """Concurrency 1 and 4 against the fixed-answer server process: figures printed and written, nothing retried."""
    output = tmp_path / "results" / "endpoint.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "endpoint_throughput.py"), "--quick", "--output", str(output)],
        cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(output.read_text(encoding="utf-8"))
    levels = {level["concurrency"]: level for level in result["levels"]}
    assert sorted(levels) == [1, 4] and all(level["retries"] == 0 for level in levels.values())
    assert levels[1]["speedup"] == 1.0 and levels[4]["qps"] > levels[1]["qps"]
    for level in levels.values():
        assert level["ideal_qps"] == level["concurrency"] / 0.05
        assert level["efficiency"] == pytest.approx(level["qps"] / level["ideal_qps"], abs=1e-3)
        assert f"{level['qps']:.1f}" in done.stdout
        cpu = level["cpu_ms_per_query"]  # where the time goes: the process's threads are part of it
        threads = cpu["fade_hub_main_thread"] + cpu["fade_hub_requests_loop"] + cpu["fade_hub_inputs_worker"]
        assert min(cpu["fade_hub_main_thread"], cpu["fade_hub_requests_loop"], cpu["fade_hub_inputs_worker"]) > 0
        assert threads <= cpu["fade_hub"] + 0.005 and cpu["client"] > 0  # rounding
        assert level["cpu_vs_client"] == pytest.approx(cpu["client"] / cpu["fade_hub"], rel=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


@pytest.mark.slow
def test_seed_image_memory_smoke(tmp_path):
    """The bomb is skipped, the JPEG kept at 1024 px, and the peaks are written with their excess over the baseline."""
    output = tmp_path / "seed_image_memory.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "seed_image_memory.py"), "--repeats", "1", "--output", str(output)],
        cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(output.read_text(encoding="utf-8"))
    assert set(result["peak_mib"]) == {"small", "bomb", "jpeg"}
    assert result["seeds_kept"]["bomb"] == {"circle/small.png": [32, 32]}  # the bomb never decoded
    assert result["seeds_kept"]["jpeg"]["circle/photo.jpg"] == [1024, 768]
    assert result["folder_bytes"]["bomb"] < 64_000
    assert re.search(r"bomb .* peak RSS +\d+\.\d MiB", done.stdout), done.stdout


@pytest.mark.slow
def test_policy_fit_learns_a_block_target_and_refuses_a_budget_below_one_batch(tmp_path):
    """policy_fit.py trains the policy on a block target and prints its fit per class: the policy puts most of its
    mass on the block; a budget below one generated batch is one error line (exit 2)."""
    script = str(BENCHMARKS / "policy_fit.py")
    done = subprocess.run([sys.executable, script, "--targets", "block"], cwd=tmp_path, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    masses = [float(m) for m in re.findall(r"valuable pairs: policy (\d\.\d+), target 0\.99", done.stdout)]
    assert len(masses) == 2 and min(masses) >= 0.9, done.stdout
    refused = subprocess.run([sys.executable, script, "--budget", "10"], cwd=tmp_path, env=dict(os.environ),
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].endswith("error: --budget must be at least 64 (one generated batch)")
    assert list(tmp_path.iterdir()) == []
