"""The failure landscape: Wilson intervals, per-cell statistics counted by seed, screening, ranking, effects."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fade_hub.characterize import compute_landscape
from fade_hub.errors import BadConfig, BadSpace
from fade_hub.landscape import (
    LANDSCAPE_COLUMNS,
    LandscapeConfig,
    clean_baseline,
    factor_levels,
    failure_modes,
    format_mode_table,
    marginal_effects,
    pairwise_effects,
)
from fade_hub.stats import wilson_interval, wilson_intervals
from fade_hub.perturb import ConceptSpace, Factor


@pytest.fixture
def space() -> ConceptSpace:
    """rotation (3 levels) × brightness (2 levels): six cells, ids 0..5 row-major."""
    return ConceptSpace(
        modality="image",
        factors=[Factor("rotation", "rotate", (-10, 0, 10)), Factor("brightness", "brightness", (1.0, 0.5))],
        name="tiny",
    )


def rec(action_id: int, fail: bool, phase: str = "explore", severity: float | None = None, seed_id: str = "e0") -> dict:
    """One query record with just the fields the landscape reads."""
    severity = severity if severity is not None else float(fail)
    return {"action_id": action_id, "phase": phase, "is_failure": fail, "severity": severity, "seed_id": seed_id}


def many(action_id: int, n: int, k: int, phase: str = "explore", severity: float = 1.0, prefix: str = "e") -> list[dict]:
    """n records of one cell on seeds PREFIX0.., the first k failing with ``severity``."""
    return [rec(action_id, i < k, phase, severity if i < k else 0.0, f"{prefix}{i}") for i in range(n)]


def clean(n: int, k: int, prefix: str = "e") -> list[dict]:
    """n clean-phase records (unperturbed seeds PREFIX0..), the first k failing."""
    return many(-1, n, k, phase="clean", prefix=prefix)


@pytest.fixture
def records() -> list[dict]:
    """Clean: 1/20 explore seeds, 0/4 held-out seeds. Explore: id0 5/10 (sev .8), id1 3/3, id2 0/6, id3 1/6 (sev .2);
    confirm on the held-out seeds: id0 0/4, id3 4/4; ids 4-5 unvisited."""
    return (
        clean(20, 1)
        + clean(4, 0, prefix="h")
        + many(0, 10, 5, severity=0.8)
        + many(1, 3, 3)
        + many(2, 6, 0)
        + many(3, 6, 1, severity=0.2)
        + many(0, 4, 0, phase="confirm", prefix="h")
        + many(3, 4, 4, phase="confirm", prefix="h")
    )


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [(0, 10, (0.0, 0.2775)), (5, 10, (0.2366, 0.7634)), (10, 10, (0.7225, 1.0)), (1, 100, (0.0018, 0.0545)), (0, 0, (0.0, 1.0))],
)
def test_wilson_interval_known_values(k, n, expected):
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


def test_wilson_intervals_are_symmetric_and_reject_bad_counts():
    low, high = wilson_intervals(np.array([2, 7]), np.array([9, 9]))
    assert low[0] == pytest.approx(1 - high[1])
    with pytest.raises(BadConfig):
        wilson_interval(5, 3)


def test_landscape_counts_rates_and_columns(space, records):
    land = compute_landscape(records, space)
    assert list(land.columns) == ["rotation", "brightness"] + LANDSCAPE_COLUMNS
    assert len(land) == space.num_cells == 6
    assert land["seeds"].tolist() == [10, 3, 6, 6, 0, 0]
    assert land["queries"].tolist() == [10, 3, 6, 6, 0, 0]
    assert land["failures"].tolist() == [5, 3, 0, 1, 0, 0]
    row = land.iloc[0]
    assert row["failure_rate"] == 0.5
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert row["mean_severity"] == pytest.approx(0.8)
    assert land.iloc[2]["mean_severity"] == 0.0
    assert math.isnan(land.iloc[0]["policy_prob"])
    # cells and their level strings agree with the space's own row-major numbering
    for _, cell in land.iterrows():
        action = space.action_from_id(int(cell["action_id"]))
        assert space.level_strings(action) == {"rotation": cell["rotation"], "brightness": cell["brightness"]}


def test_unvisited_cells_and_uncertain_flags(space, records):
    land = compute_landscape(records, space)
    unvisited = land[land["seeds"] == 0]
    assert unvisited["action_id"].tolist() == [4, 5]
    assert unvisited["failure_rate"].isna().all()
    assert (unvisited["ci_low"] == 0).all() and (unvisited["ci_high"] == 1).all()
    assert land["uncertain"].tolist() == [False, True, False, False, True, True]
    relaxed = compute_landscape(records, space, config=LandscapeConfig(min_queries=3))
    assert relaxed["uncertain"].tolist() == [False, False, False, False, True, True]


def test_a_pair_asked_twice_counts_once(space):
    """A (cell, seed) pair is one piece of evidence however often it was asked: a seed failing twice is 1/1."""
    records = clean(20, 0) + [rec(0, True, seed_id="s1"), rec(0, True, seed_id="s1"), rec(0, False, seed_id="s2")]
    land = compute_landscape(records, space).set_index("action_id")
    assert (land.loc[0, "seeds"], land.loc[0, "failures"], land.loc[0, "queries"]) == (2, 1, 3)
    assert land.loc[0, "failure_rate"] == 0.5


def test_confirm_columns_come_from_held_out_rows_only(space, records):
    land = compute_landscape(records, space).set_index("action_id")
    assert land.loc[0, "seeds"] == 10  # confirm rows do not leak into explore counts
    assert (land.loc[0, "confirm_seeds"], land.loc[0, "confirm_failures"], land.loc[0, "confirm_rate"]) == (4, 0, 0.0)
    assert land.loc[0, "confirm_ci_low"] == 0.0
    assert (land.loc[3, "confirm_seeds"], land.loc[3, "confirm_failures"]) == (4, 4)
    assert land.loc[3, "confirm_ci_low"] == pytest.approx(wilson_interval(4, 4)[0])
    assert land.loc[1, "confirm_seeds"] == 0 and math.isnan(land.loc[1, "confirm_rate"])
    # cells are confirmed only inside a region confirmed on held-out seeds (fade_hub.characterize)
    assert not land["confirmed"].any() and not land["region_confirmed"].any()


def test_screening_against_the_exploration_seeds_clean_rate(space, records):
    land = compute_landscape(records, space).set_index("action_id")
    # the held-out seeds' clean answers (h0-h3) are not the screening baseline: 3/3 against 1/20
    assert land.loc[1, "p_value"] == pytest.approx(4 / 1771)
    excess = land.loc[1, ["excess", "excess_low", "excess_high"]].tolist()
    assert excess[0] == pytest.approx(0.95) and 0.05 < excess[1] < 0.95 < excess[2] <= 1.0
    assert land.loc[1, "significant"] and not land.loc[3, "significant"]


def test_ranking_modes_first_then_lower_bound(space, records):
    land = compute_landscape(records, space)
    # id1 (3/3, low .44) and id0 (5/10, low .24) are significant; id3 failed once; failure-free cells follow
    assert land.sort_values("rank")["action_id"].tolist()[:3] == [1, 0, 3]
    assert sorted(land["rank"].tolist()) == [1, 2, 3, 4, 5, 6]
    assert failure_modes(land)["action_id"].tolist() == [1, 0]
    assert failure_modes(land, top_k=1)["action_id"].tolist() == [1]


def test_ranking_ties_break_on_severity_then_action_id(space):
    records = clean(30, 0) + many(0, 4, 2, severity=0.3) + many(1, 4, 2, severity=0.9) + many(2, 4, 2, severity=0.3)
    land = compute_landscape(records, space)
    assert failure_modes(land)["action_id"].tolist() == [1, 0, 2]


def test_policy_probs_and_bad_inputs(space, records):
    probs = np.arange(6, dtype=float) / 15
    land = compute_landscape(records, space, policy_probs=probs.reshape(space.shape))
    assert land["policy_prob"].tolist() == pytest.approx(probs.tolist())
    with pytest.raises(BadConfig, match="6 cells"):
        compute_landscape(records, space, policy_probs=np.ones(5))
    with pytest.raises(BadSpace, match="another space"):
        compute_landscape(records + [rec(6, True)], space)
    with pytest.raises(BadConfig, match="is_failure"):
        compute_landscape([{"action_id": 0}], space)
    with pytest.raises(BadConfig, match="phase"):
        compute_landscape(records + [rec(0, True, phase="train")], space)
    no_phase = compute_landscape([{"action_id": 2, "is_failure": True}], space)  # records without phase are explore
    assert no_phase.loc[2, "failures"] == 1 and no_phase.loc[2, "mean_severity"] == 0.0


def test_empty_run_gives_all_cells_unvisited(space):
    land = compute_landscape([], space)
    assert len(land) == 6 and land["seeds"].sum() == 0 and land["uncertain"].all()
    assert land.sort_values("rank")["action_id"].tolist() == list(range(6))
    assert failure_modes(land).empty
    assert format_mode_table(failure_modes(land), space) == "no failure-mode cells"


def test_marginal_effects_pool_over_other_factors(space, records):
    effects = marginal_effects(records, space)
    assert set(effects) == {"rotation", "brightness"}
    rotation = effects["rotation"]
    assert rotation["level"].tolist() == factor_levels(space)["rotation"] == ["-10", "0", "10"]
    assert rotation["seeds"].tolist() == [13, 12, 0]  # explore only: confirm rows are not counted
    assert rotation["failures"].tolist() == [8, 1, 0]
    assert rotation.loc[0, "failure_rate"] == pytest.approx(8 / 13)
    assert (rotation.loc[0, "ci_low"], rotation.loc[0, "ci_high"]) == pytest.approx(wilson_interval(8, 13))
    assert math.isnan(rotation.loc[2, "failure_rate"]) and rotation.loc[2, "ci_high"] == 1.0
    brightness = effects["brightness"].set_index("level")
    assert (brightness.loc["1.0", "seeds"], brightness.loc["1.0", "failures"]) == (16, 5)


def test_pairwise_effects_tables():
    space3 = ConceptSpace(
        modality="image",
        factors=[Factor("rotation", "rotate", (0, 10)), Factor("brightness", "brightness", (1.0, 0.5)),
                 Factor("saturation", "saturation", (1.0, 0.0))],
    )
    # cells: (r, b, s) -> id 4r + 2b + s
    records = many(0, 4, 1) + many(2, 4, 3) + many(1, 2, 2) + many(5, 5, 0)
    tables = pairwise_effects(records, space3)
    assert list(tables) == [("rotation", "brightness"), ("rotation", "saturation"), ("brightness", "saturation")]
    rb = tables[("rotation", "brightness")]
    assert rb.index.name == "rotation" and rb.columns.name == "brightness"
    assert rb.index.tolist() == ["0", "10"] and rb.columns.tolist() == ["1.0", "0.5"]
    assert rb.loc["0", "1.0"] == pytest.approx(3 / 6)  # ids 0 and 1, pooled over saturation
    assert rb.loc["0", "0.5"] == pytest.approx(3 / 4)
    assert rb.loc["10", "1.0"] == 0.0  # id 5: visited, no failure
    assert math.isnan(rb.loc["10", "0.5"])  # ids 6, 7: never visited
    rs = tables[("rotation", "saturation")]
    assert rs.loc["0", "1.0"] == pytest.approx(4 / 8) and rs.loc["0", "0.0"] == 1.0


def test_format_mode_table(space, records):
    land = compute_landscape(records, space, policy_probs=np.full(6, 1 / 6))
    text = format_mode_table(failure_modes(land), space, max_rows=1)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["rank", "cell"] and "policy p" in lines[0] and "seeds" in lines[0]
    assert "rotation=-10 brightness=0.5" in lines[2] and "1.00 [0.44, 1.00]" in lines[2]  # id1, rank 1
    assert "3 (uncertain)" in lines[2] and "not run" in lines[2]
    assert lines[-1] == "... 1 more"
    assert "rotation=-10 brightness=1.0" in format_mode_table(failure_modes(land), space)


def test_a_cell_needs_the_minimum_excess(space):
    """Significant is not enough: the lower bound of the excess over clean must reach --min-excess."""
    records = clean(400, 0) + many(0, 400, 20)  # 5 % against 0 %: p tiny, excess lower bound about 0.03
    land = compute_landscape(records, space).set_index("action_id")
    assert land.loc[0, "q_value"] < 1e-4 and land.loc[0, "excess_low"] < 0.05 and not land.loc[0, "significant"]
    relaxed = compute_landscape(records, space, config=LandscapeConfig(min_excess=0.0)).set_index("action_id")
    assert relaxed.loc[0, "significant"]


def test_a_mode_must_fail_more_often_than_the_clean_inputs(space):
    """A 10 % clean error that every cell shares is no failure mode; a cell far above it is."""
    records = clean(40, 4) + [r for cell in range(5) for r in many(cell, 40, 4)] + many(5, 40, 30)
    land = compute_landscape(records, space).set_index("action_id")
    assert land["p_value"].iloc[:5].min() > 0.4 and land.loc[5, "p_value"] < 1e-6
    assert failure_modes(land.reset_index())["action_id"].tolist() == [5]
    assert clean_baseline(records) == {"queries": 40, "failures": 4, "rate": 0.1,
                                       "ci_low": pytest.approx(0.0396, abs=1e-4), "ci_high": pytest.approx(0.2306, abs=1e-4)}


def test_benjamini_hochberg_adjusts_over_the_cells_tested(space):
    records = clean(20, 1) + many(0, 3, 3) + many(1, 3, 3) + many(2, 6, 0)
    land = compute_landscape(records, space).set_index("action_id")
    p = 4 / 1771  # P(X >= 3), X ~ Hypergeometric(N=23, K=4, n=3): 3/3 failures against a clean 1/20
    assert land.loc[0, "p_value"] == pytest.approx(p) and land.loc[0, "q_value"] == pytest.approx(3 * p / 2)
    assert land.loc[2, "q_value"] == 1.0 and math.isnan(land.loc[4, "q_value"])  # unvisited cells are not tested


def test_without_clean_queries_the_baseline_is_the_other_cells(space):
    records = many(0, 10, 9) + many(1, 10, 1) + many(2, 10, 1) + many(3, 10, 1)
    land = compute_landscape(records, space)
    assert failure_modes(land)["action_id"].tolist() == [0]


def test_cells_that_are_not_judged_are_never_modes():
    space = ConceptSpace("text", [Factor("case", "case", ("none", "upper")),
                                  Factor("shuffle", "shuffle", (False, True), expect="unjudgeable")])
    land = compute_landscape(clean(10, 0) + many(0, 10, 9) + many(1, 10, 0) + many(3, 10, 0), space)
    assert land["expectation"].tolist() == ["invariant", "not judged (shuffle)", "invariant", "not judged (shuffle)"]
    assert land["judged"].tolist() == [True, False, True, False]
    assert math.isnan(land.iloc[1]["p_value"]) and failure_modes(land)["action_id"].tolist() == [0]
