"""Compare and check on real runs of the shapes classifier over the dark/rotated 2x2 space: a model against itself
explored with two random seeds, the gate and its JUnit report, runs over different spaces, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import IMAGE_2X2, space_file

from fade_hub.cli import main
from fade_hub.comparison import CompareConfig, compare
from fade_hub.stats import independent_change, paired_change

REGION = "rotation 40 and brightness 0.2, on square and triangle seeds"


@pytest.fixture(scope="module")
def runs(shapes_model, block_space, tmp_path_factory):
    """Two grid runs of the shapes classifier over the same seeds and space with random seeds 0 and 1, and one over
    another space."""
    from fade_hub.demo.shapes import write_seed_folder
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore

    root = tmp_path_factory.mktemp("compare")
    seeds = write_seed_folder(root / "seeds", per_class=6, seed=7)

    def grid(name, space, seed):
        return explore(ExploreConfig(model=str(shapes_model), seeds=str(seeds), space=str(space), algorithm="grid",
                                     seed=seed, output=str(root / name), show_progress=False)).path

    other = space_file(root, "other", IMAGE_2X2)
    return {"a": grid("a", block_space, 0), "b": grid("b", block_space, 1), "other": grid("other", other, 0),
            "root": root}


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_a_model_against_itself_fixes_nothing_adds_nothing_and_every_region_persists(runs):
    comparison = compare(CompareConfig(run_a=str(runs["a"]), run_b=str(runs["b"])))
    mine = [region for region in comparison.regions if region.side == "a"]
    assert [region.description for region in mine] == [REGION]
    assert comparison.counts == {"fixed": 0, "persisting": len(mine), "unresolved": 0, "new": 0}
    [region] = mine
    assert region.matches == ["rotation=40&brightness=0.2&class=square,triangle"]
    # the model answers the same seeds at the same cells the same way: the shared pairs agree one by one
    assert region.change.design == "paired" and region.change.change == 0.0
    assert region.change.before_failures == region.change.after_failures >= 10
    assert region.excess_significant and region.excess.change_low > 0.5
    assert comparison.clean.design == "paired" and comparison.clean.change == 0.0
    cells = comparison.cells.set_index(["rotation", "brightness"])
    assert cells.loc[("40", "0.2"), "a_rate"] >= 0.6 and cells.loc[("40", "0.2"), "b_rate"] >= 0.6
    assert (cells["change"] == 0.0).all()


def test_compare_prints_words_and_writes_json_and_a_picture(runs, tmp_path, capsys):
    out_json, out_png = tmp_path / "comparison.json", tmp_path / "comparison.png"
    assert main(["compare", str(runs["a"]), str(runs["b"]), "--json", str(out_json), "--plot", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert f"persisting: still a failure region in B (1)\n  - {REGION}: A fails 100% " in text
    assert "clean failure rate: A 0% [0, 18] of 18 seeds, B 0% [0, 18] of 18 seeds" in text
    assert "0 fixed, 1 persisting, 0 unresolved, 0 new" in text
    document = json.loads(out_json.read_text())
    assert document["counts"] == {"fixed": 0, "persisting": 1, "unresolved": 0, "new": 0}
    assert document["space_fingerprint"] and document["task"] == "image-classification"
    [region] = [r for r in document["regions"] if r["side"] == "a"]
    assert region["status"] == "persisting" and region["design"] == "paired"
    assert region["a"]["ci_low"] < region["a"]["rate"] <= region["a"]["ci_high"] == 1.0
    assert region["change"]["ci_low"] < 0 < region["change"]["ci_high"]
    assert len(document["cells"]) == 4
    assert out_png.read_bytes().startswith(b"\x89PNG")


def test_runs_over_different_spaces_are_refused_in_one_line(runs, capsys):
    assert main(["compare", str(runs["a"]), str(runs["other"])]) == 2
    assert _error_line(capsys) == ("error: cannot compare runs over different concept spaces: factor rotation has "
                                   "levels 0, 40 in A, 0, 15 in B; explore both with the same --concepts")


def test_a_run_with_itself_and_a_missing_run_are_refused(runs, tmp_path, capsys):
    assert main(["compare", str(runs["a"]), str(runs["a"]) + "/"]) == 2
    assert "RUN_A and RUN_B are the same run" in _error_line(capsys)
    assert main(["compare", str(runs["a"]), str(tmp_path / "nowhere")]) == 2
    assert "is not a run directory" in _error_line(capsys)
    assert main(["compare", str(runs["a"]), str(runs["b"]), "--json", str(tmp_path / "missing" / "c.json")]) == 2
    assert "folder" in _error_line(capsys) and not (tmp_path / "missing").exists()


def test_check_fails_the_demo_like_run_naming_its_region_and_writes_junit(runs, tmp_path, capsys):
    from junitparser import Failure, JUnitXml

    report = tmp_path / "check.xml"
    assert main(["check", str(runs["a"]), "--junit", str(report)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"fade-hub check {runs['a']}: FAILED (1 of 1 test cases)")
    assert f"FAIL  region 1: {REGION}: fails 100% [61, 100] of 6 held-out seeds vs 0% clean: excess +100 points" in out
    [suite] = list(JUnitXml.fromfile(str(report)))
    cases = list(suite)
    assert len(cases) == 1 and suite.tests == 1 and suite.failures == 1
    assert cases[0].name == f"region 1: {REGION}" and cases[0].classname == "fade-hub.region"
    assert isinstance(cases[0].result[0], Failure) and "above --max-excess 10 points" in cases[0].result[0].message


def test_check_gates_the_clean_rate_and_passes_a_run_against_itself(runs, tmp_path, capsys):
    assert main(["check", str(runs["a"]), "--max-excess", "1", "--max-clean", "0.5"]) == 0
    assert "pass  clean failure rate: clean inputs fail 0% [0, 18] of 18 seeds, under --max-clean 50%" in \
        capsys.readouterr().out
    assert main(["check", str(runs["a"]), "--max-excess", "1", "--max-clean", "0"]) == 1
    assert "FAIL  clean failure rate" in capsys.readouterr().out
    # a regression gate: the region is known to the base run, so nothing is new
    assert main(["check", str(runs["b"]), "--against", str(runs["a"])]) == 0
    assert f"pass  region 1: {REGION}: known: --against has it too" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--max-excess", "2"], "error: --max-excess must be in [0, 1], got 2.0"),
    (["--junit", "{missing}/report.xml"], "folder {missing} does not exist"),
])
def test_check_refuses_bad_input_in_one_line(runs, tmp_path, capsys, flags, message):
    missing = tmp_path / "reports"
    flags = [flag.format(missing=missing) for flag in flags]
    assert main(["check", str(runs["a"]), *flags]) == 2
    assert message.format(missing=missing) in _error_line(capsys)
    assert not missing.exists()


def test_paired_and_independent_changes_agree_with_hand_counts():
    # 20 units: 8 fail before only, 2 fail both, 10 neither: the rate falls from 0.5 to 0.1
    before = np.array([True] * 10 + [False] * 10)
    after = np.array([False] * 8 + [True] * 2 + [False] * 10)
    paired = paired_change(before, after)
    assert (paired.before_failures, paired.after_failures, paired.before_units) == (10, 2, 20)
    assert paired.change == pytest.approx(-0.4) and paired.change_low < -0.4 < paired.change_high < 0
    assert paired.p_lower == pytest.approx(0.5 ** 8 / 2)  # McNemar mid-p: 8 discordant pairs, all one way
    assert paired.p_higher == 1.0  # no pair failed only after
    independent = independent_change(10, 20, 2, 20)
    assert independent.change == pytest.approx(-0.4)
    assert independent.change_high - independent.change_low > paired.change_high - paired.change_low
    assert 0 < independent.p_lower < 0.05 < independent.p_higher
    assert math.isnan(independent_change(0, 0, 3, 10).p_higher)  # nothing to compare with


def test_mitigate_recheck_refuses_a_full_recheck_folder_before_training(runs, tmp_path, capsys):
    taken = tmp_path / "adapter-recheck"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert main(["mitigate", str(runs["a"]), "--modes", "confirmed", "--output", str(tmp_path / "adapter"),
                 "--recheck", "--no-progress"]) == 2
    assert f"--recheck explores the variant into {taken}, which is not empty" in _error_line(capsys)
    assert (taken / "keep.txt").read_text() == "mine" and not (tmp_path / "adapter").exists()
