"""Smoke test of benchmarks/discovery.py: a quick run prints the table and writes its JSON and plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "discovery.py"
ALGORITHMS = ("ppo", "random", "epsilon-greedy")


@pytest.mark.slow
def test_discovery_smoke(tmp_path):
    """--quick trains the fixture, measures the grid, runs each algorithm once and reports the figures."""
    output = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--output", str(output), "--cache-dir", str(tmp_path / "cache")],
        cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("algorithm"))
    assert "hit rate" in lines[header] and "top-5 prec." in lines[header] and "spearman" in lines[header]
    assert [lines[header + 2 + i].split()[0] for i in range(3)] == list(ALGORITHMS)

    result = json.loads((output / "discovery.json").read_text(encoding="utf-8"))
    truth = result["ground_truth"]
    assert len(truth["rates"]) == 125 and truth["queries_per_cell"] == 12
    assert truth["true_failure_cells"] == sum(r >= truth["threshold"] for r in truth["rates"])
    assert f"{truth['true_failure_cells']} true failure cells" in done.stdout
    assert [(row["algorithm"], row["budget"]) for row in result["table"]] == [(a, 64) for a in ALGORITHMS]
    true_cells = {i for i, rate in enumerate(truth["rates"]) if rate >= truth["threshold"]}
    for run in result["runs"]:
        assert run["queries"] == 64 and 0 <= run["failures"] <= 64
        assert run["hit_rate"] == pytest.approx(run["failures"] / 64)
        assert 0.0 <= run["top5_precision"] <= 1.0 and len(run["top_modes"]) <= 5
        assert set(map(int, run["true_cells_first_failure"])) <= true_cells
        assert all(1 <= t <= 64 for t in run["true_cells_first_failure"].values())
    ppo = next(run for run in result["runs"] if run["algorithm"] == "ppo")
    assert ppo["spearman_policy"] is not None
    assert result["versions"]["trl"] and result["settings"]["quick"] is True
    assert (output / "discovery.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "results"]
