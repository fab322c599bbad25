"""Smoke test of benchmarks/discovery.py: a quick run prints a table per fixture and writes its JSON and plot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "discovery.py"
IDEAL = SCRIPT.with_name("discovery_ideal.py")
ALGORITHMS = ("ppo", "random", "epsilon-greedy", "bo", "covering", "paper-dqn")
CELLS = {"shapes": 125, "shapes-hard": 1296, "shapes-mixed": 1296, "text": 1296}


@pytest.mark.slow
def test_discovery_smoke(tmp_path):
    """--quick trains the fixtures briefly, measures their grids, runs each algorithm once and reports the figures."""
    output = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--output", str(output), "--cache-dir", str(tmp_path / "cache")],
        cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    result = json.loads((output / "discovery.json").read_text(encoding="utf-8"))
    has_sb3 = find_spec("stable_baselines3") is not None
    for fixture, cells in CELLS.items():
        truth = result["ground_truth"][fixture]
        assert len(truth["rates"]) == cells and truth["queries_per_cell"] == (4 if fixture == "text" else 6)
        assert truth["true_failure_cells"] == sum(r >= truth["threshold"] for r in truth["rates"])
        assert f"[{fixture}] ground truth" in out and f"{truth['true_failure_cells']} true failure cells" in out
        image = fixture != "text"
        expected = [a for a in ALGORITHMS if a != "paper-dqn" or (image and has_sb3)]
        rows = [row for row in result["table"] if row["fixture"] == fixture]
        assert sorted(row["algorithm"] for row in rows) == sorted(expected)
        assert all(row["budget"] == 64 for row in rows)
        if "paper-dqn" not in expected:  # the row is skipped with the reason printed
            reason = result["skipped"][fixture]["paper-dqn"]
            assert f"paper-dqn: skipped, {reason}" in out
            assert ("image fixtures only" in reason) if not image else ("pip install '.[paper]'" in reason)
    table = out[out.index("[shapes] ground truth"):]
    header = next(line for line in table.splitlines() if line.startswith("algorithm"))
    for column in ("regions found", "false regions", "queries to all regions: median (worst seed)", "hit rate",
                   "found all reachable: seeds", "x random", "spearman", "wall s"):
        assert column in header
    for run in result["runs"]:
        truth = result["ground_truth"][run["fixture"]]
        true_cells = {i for i, rate in enumerate(truth["rates"]) if rate >= truth["threshold"]}
        assert run["queries"] == 64 and 0 <= run["failures"] <= 64
        assert run["hit_rate"] == pytest.approx(run["failures"] / 64)
        assert 0.0 <= run["top5_precision"] <= 1.0 and len(run["top_modes"]) <= 5
        assert set(map(int, run["true_cells_first_failure"])) <= true_cells
        assert run["true_cells_found"] == len(run["true_cells_first_failure"])
        assert all(1 <= t <= 64 for t in run["true_cells_first_failure"].values())
        assert run["seconds"] > 0
        assert run["queries_to_all_regions"] is None or 0 < run["queries_to_all_regions"] <= 64
        assert run["spearman"] is None or -1 <= run["spearman"] <= 1
        assert set(run["reachable"]) <= set(result["ground_truth"][run["fixture"]]["planted_regions"])
    for row in result["table"]:
        to_all = [r["queries_to_all_regions"] or r["queries"] for r in result["runs"]
                  if (r["fixture"], r["algorithm"]) == (row["fixture"], row["algorithm"])]
        assert row["queries_to_all_regions_worst"] == max(to_all)
        assert 0 <= row["found_all_reachable"] <= len(row["seeds"]) and 0 <= row["seeds_all_reachable"] <= len(row["seeds"])
    checks = {(c["fixture"], c["check"]) for c in result["acceptance"]}
    assert any("hit rate" in check for _, check in checks) and any("covering" in check for _, check in checks)
    assert "acceptance (issue 26):" in out
    assert result["versions"]["trl"] and result["settings"]["quick"] is True
    assert (output / "discovery.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "results"]
    # the ideal-policy replay reads the same cache: each fixture's modes, per seed, from its grid truth
    ideal = subprocess.run(
        [sys.executable, str(IDEAL), "--quick", "--cache-dir", str(tmp_path / "cache"), "--fixtures", "shapes-hard",
         "text", "--seeds", "0", "1", "--budget", "64"],
        cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ideal.returncode == 0, ideal.stderr[-3000:]
    for fixture in ("shapes-hard", "text"):
        lines = [line for line in ideal.stdout.splitlines() if line.startswith(f"{fixture} seed ")]
        assert len(lines) == 2 and all(re.search(r"seed \d: \d+ of \d+ modes \[.*\], \d+ false \(unscreened\), "
                                                 r"hit rate [01]\.\d{3}$", line) for line in lines), ideal.stdout
        assert f"{fixture}: modes found per seed [" in ideal.stdout


def _yardstick(monkeypatch, pair_rates: np.ndarray, grid_region: list[int], planted: list[int]):
    """``match_regions`` on a grid truth over brightness x saturation (2 levels each) and three classes, with one mode
    ``dim-triangles`` planted on triangles at ``planted`` cells, the grid's own region for it at ``grid_region``: a
    function of region ids."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from discovery_fixtures import GroundTruth
    from discovery_metrics import match_regions

    from fade_hub.perturb import ConceptSpace

    space = ConceptSpace.from_dict({"modality": "image", "factors": [
        {"name": "brightness", "op": "brightness", "levels": [1.0, 0.5]},
        {"name": "saturation", "op": "saturation", "levels": [1.0, 0.5]},
    ]})  # fmt: skip
    truth = GroundTruth(np.zeros(4), 4, 0.25, [""] * 4, {"dim-triangles": grid_region}, {"dim-triangles": planted},
                        ["circle", "square", "triangle"], pair_rates, np.zeros(3), {"dim-triangles": ["triangle"]})

    def scored(*region_ids: str) -> dict:
        return match_regions(pd.DataFrame({"region_id": list(region_ids)}), truth, space)

    return scored


def test_a_region_finds_a_planted_mode_when_it_holds_it_where_the_model_fails(monkeypatch):
    """The benchmark's yardstick on a grid truth: a mode planted on triangles at one cell, where the model in fact
    fails on triangles at both saturations. The region drawn exactly there finds it (four times the planted cells:
    Jaccard on cells would miss it); the same cells on every class, where circles and squares are fine, bury it and
    are not false (the triangles fail); a region away from it is false."""
    pair_rates = np.zeros((3, 4))
    pair_rates[2, [2, 3]] = 0.9  # triangles fail at brightness 0.5, whatever the saturation
    scored = _yardstick(monkeypatch, pair_rates, grid_region=[2, 3], planted=[2])  # planted at saturation 1.0 only

    assert scored("brightness=0.5&class=triangle") == {"found": ["dim-triangles"], "false": 0, "other": 0}
    assert scored("brightness=0.5") == {"found": [], "false": 0, "other": 1}  # 0.3 excess: real, not the mode
    assert scored("brightness=1.0&class=triangle") == {"found": [], "false": 1, "other": 0}


def test_a_mode_learned_narrower_than_planted_is_found_by_the_grids_own_region(monkeypatch):
    """Planted on triangles at brightness 0.5 (both saturations), the model fails only at saturation 1.0: the
    region the grid reports there holds half the planted pairs, and still finds the mode; the planted cells on
    every class do not (Jaccard 1/6 with the grid's region, and an excess a third of the planted pairs')."""
    pair_rates = np.zeros((3, 4))
    pair_rates[2, 2] = 0.9  # triangles fail at brightness 0.5 and saturation 1.0 only
    scored = _yardstick(monkeypatch, pair_rates, grid_region=[2], planted=[2, 3])

    assert scored("brightness=0.5&saturation=1.0&class=triangle") == {"found": ["dim-triangles"], "false": 0,
                                                                       "other": 0}
    assert scored("brightness=0.5")["found"] == []
    assert scored("saturation=1.0&class=triangle")["found"] == []  # half the grid's region's pairs are not its own


def test_set_takes_any_option_by_its_flat_name_and_refuses_others(monkeypatch, capsys):
    """``--set`` names an option as the CLI's flags do (``entropy_coef`` lives in the ppo section), and an unknown
    name is refused in one line (exit 2)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import argparse

    from discovery import _parse_options

    assert _parse_options(argparse.ArgumentParser(), ["entropy_coef=0.15", "num-iterations=8", "budget=5"]) == {
        "entropy_coef": 0.15, "num_iterations": 8, "budget": 5}
    with pytest.raises(SystemExit) as stop:
        _parse_options(argparse.ArgumentParser(), ["no_such_option=1"])
    assert stop.value.code == 2 and "one of ExploreConfig's options" in capsys.readouterr().err


def test_the_planted_fixtures_are_the_shipped_weights_unless_asked_to_train(monkeypatch, tmp_path):
    """Every machine benchmarks the same planted models: the shipped safetensors are copied into the cache, byte for
    byte, and load as the fixture's classifier; the text fixture's seeds and space are written beside them."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from discovery_fixtures import PLANTED_VERSIONS, SHIPPED, prepare_fixture

    fixture = prepare_fixture("text", tmp_path, 4, 0, False)
    shipped = SHIPPED / f"sentiment-modes-{PLANTED_VERSIONS['text']}"
    assert fixture.model == tmp_path / f"{shipped.name}-shipped"
    assert (fixture.model / "model.safetensors").read_bytes() == (shipped / "model.safetensors").read_bytes()
    assert len(fixture.seeds.read_text().splitlines()) == 8 and Path(fixture.space).is_file()
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(fixture.model)
    assert model.config.num_labels == 2
    for name in ("shapes-hard", "shapes-mixed"):  # every planted fixture ships, at the version the benchmark uses
        assert (SHIPPED / f"{name}-{PLANTED_VERSIONS[name]}" / "model.safetensors").is_file()


def test_the_ideal_replay_answers_with_each_seeds_own_answer(monkeypatch):
    """Every triangle seed fails at brightness 0.2, whatever the saturation, and nothing else fails: the replay asks
    the seeds themselves (the grid's rates, all zero here, are not what answers) and its scan finds the mode."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from discovery_fixtures import GroundTruth
    from discovery_ideal import replay

    from fade_hub.explore.config import ExploreConfig
    from fade_hub.perturb import ConceptSpace

    space = ConceptSpace.from_dict({"modality": "image", "factors": [
        {"name": "brightness", "op": "brightness", "levels": [1.0, 0.6, 0.2]},
        {"name": "saturation", "op": "saturation", "levels": [1.0, 0.5, 0.0]},
    ]})  # fmt: skip
    dim = [space.action_id((2, s)) for s in range(3)]
    classes = {f"{label}/{i}": label for label in ("circle", "square", "triangle") for i in range(6)}
    failures = {seed: np.isin(np.arange(9), dim) & (label == "triangle") for seed, label in classes.items()}
    truth = GroundTruth(np.zeros(9), 18, 0.25, [""] * 9, {"dim-triangles": dim}, {"dim-triangles": dim},
                        ["circle", "square", "triangle"], np.zeros((3, 9)), np.zeros(3),
                        {"dim-triangles": ["triangle"]}, failures, classes)
    result = replay(truth, space, ExploreConfig(budget=60), seed=0)
    assert result["found"] == ["dim-triangles"] and result["false"] == 0
    assert 0 < result["hit_rate"] <= 9 / 60  # the three explore seeds of each triangle cell at most


def test_the_ideal_replay_refuses_a_cache_without_the_grid_truth(tmp_path):
    """Run before discovery.py filled the cache, the replay says in one line what to run first (exit 2)."""
    done = subprocess.run([sys.executable, str(IDEAL), "--cache-dir", str(tmp_path), "--fixtures", "shapes"],
                          cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (f"error: {tmp_path} holds no grid ground truth for shapes; run "
                                                    f"benchmarks/discovery.py --fixtures shapes --cache-dir {tmp_path} "
                                                    "first")


@pytest.mark.parametrize("failing", ["every seed", "explored", "held out"])
def test_a_mode_is_reachable_only_when_the_explored_seeds_hold_it_and_the_held_out_seeds_confirm_it(
        monkeypatch, tmp_path, failing):
    """``reachable_regions`` is what the run would report had it asked every cell of the seeds it explored: the grid's
    answers there screen the mode only when the explored seeds fail on it, and the run's own confirmation (answered
    by the grid) confirms it only when the held-out seeds fail on it too."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from discovery_fixtures import GroundTruth
    from discovery_metrics import LoggedRun, reachable_regions

    from fade_hub.perturb import ConceptSpace
    from fade_hub.store import RunStore

    space = ConceptSpace.from_dict({"modality": "image", "factors": [
        {"name": "brightness", "op": "brightness", "levels": [1.0, 0.8, 0.6, 0.4]},
        {"name": "saturation", "op": "saturation", "levels": [1.0, 0.5]},
    ]})  # fmt: skip
    seeds = [f"s{i:02d}" for i in range(40)]
    held = seeds[20:]
    dark = np.array([False] * 6 + [True] * 2)  # brightness 0.4, either saturation
    fails = {"every seed": seeds, "explored": seeds[:20], "held out": held}[failing]
    answers = {seed: dark if seed in fails else np.zeros(8, dtype=bool) for seed in seeds}
    pair_rates = np.mean([answers[seed] for seed in seeds], axis=0, keepdims=True)
    truth = GroundTruth(pair_rates[0], 40, 0.25, [""] * 8, {"dark": [6, 7]}, {"dark": [6, 7]}, [""], pair_rates,
                        np.zeros(1), {}, answers, dict.fromkeys(seeds, ""))
    store = RunStore(tmp_path / "run")
    store.queries_path.parent.mkdir(parents=True)
    store.write_meta({"space": space.to_dict(), "config": {"confirm": {"confirm_top": 5}}, "seed": 0,
                      "confirmation": {"held_out": held}})
    store.append({"query_id": i, "phase": "clean", "seed_id": seed, "context": "", "action_id": -1,
                  "is_failure": False, "severity": 0.0} for i, seed in enumerate(seeds))
    store.close()

    assert reachable_regions(LoggedRun.read(tmp_path / "run"), truth) == (["dark"] if failing == "every seed" else [])
