"""Regions of a run with their screening and confirmation statistics, and the false-region rate under the null."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fade_hub.characterize import REGION_COLUMNS, Confirmation, characterize, choose_test
from fade_hub.evidence import Evidence
from fade_hub.explore.bo import BetaPosteriors
from fade_hub.explore.confirm import plan_queries
from fade_hub.explore.querier import SeedChooser
from fade_hub.landscape import LandscapeConfig
from fade_hub.perturb import load_space
from fade_hub.seeds import Seed
from fade_hub.stats import fisher_greater, mcnemar_greater

SPACE = load_space("builtin:demo-shapes")
REGION = {20, 21, 22, 23, 24, 120, 121, 122, 123, 124}  # rotation ±30, brightness 0.2


def record(phase: str, cell: int, seed: str, fail: bool, context: str = "") -> dict:
    """One query record with the fields characterize reads."""
    return {"phase": phase, "action_id": cell, "seed_id": seed, "context": context, "is_failure": bool(fail),
            "severity": float(fail)}


def planted_run(clean_fail: float = 0.0, held_out: int = 20, region_rate: float = 0.6, seed: int = 0):
    """40 exploration seeds asked at every cell of the region and of a band outside it, 20 held-out seeds asked once
    each in the region (cells in rotation); a clean answer per seed. Returns (records, held-out ids)."""
    rng = np.random.default_rng(seed)
    explore = [f"e{i}" for i in range(40)]
    held = [f"h{i}" for i in range(held_out)]
    records = [record("clean", -1, s, rng.random() < clean_fail) for s in explore + held]
    outside = [c for c in range(0, 125, 3) if c not in REGION]
    for cell in sorted(REGION) + outside:
        rate = region_rate if cell in REGION else clean_fail
        records += [record("explore", cell, s, rng.random() < rate) for s in explore[:20]]
    cells = sorted(REGION)
    records += [record("confirm", cells[i % len(cells)], s, rng.random() < region_rate) for i, s in enumerate(held)]
    return records, set(held)


def test_region_table_screens_and_confirms_a_planted_region():
    records, held = planted_run()
    confirmation = Confirmation("pooled", ["rotation=-30,30&brightness=0.2"], sorted(held), 0.0)
    found = characterize(records, SPACE, confirmation=confirmation)
    regions = found.regions
    assert list(regions.columns) == REGION_COLUMNS
    top = regions.iloc[0]
    assert top["region_id"] == "rotation=-30,30&brightness=0.2"
    assert top["description"] == "rotation ±30 and brightness 0.2 (any saturation)"
    assert sorted(top["cells"]) == sorted(REGION) and json.loads(top["factors"]) == {"rotation": ["-30", "30"],
                                                                                     "brightness": ["0.2"]}
    assert top["screened"] and top["confirmed"] and top["is_mode"] and top["rank"] == 1
    # the held-out test: 20 seeds, one query each, against the clean answers of all 60 seeds
    k = sum(r["is_failure"] for r in records if r["phase"] == "confirm")
    assert (top["confirm_seeds"], top["confirm_failures"], top["confirm_baseline_seeds"]) == (20, k, 60)
    assert top["confirm_p"] == pytest.approx(fisher_greater(k, 20, 0, 60))
    assert top["confirm_excess_low"] > 0.05 and top["confirm_test"] == "pooled"
    # cells: every cell of a confirmed region is a failure-mode cell, with the region named
    land = found.landscape.set_index("action_id")
    assert land.loc[sorted(REGION), "region_confirmed"].all() and not land.loc[0, "region_confirmed"]
    assert (land.loc[sorted(REGION), "region_id"] == top["region_id"]).all()
    assert land.loc[20, "confirm_seeds"] == 2 and not np.isnan(land.loc[20, "confirm_q_value"])


def test_without_confirmation_regions_are_screened_only():
    records, held = planted_run()
    found = characterize([r for r in records if r["phase"] != "confirm"], SPACE)
    top = found.regions.iloc[0]
    assert top["screened"] and not top["confirmed"] and top["confirm_test"] == ""
    assert top["is_mode"]  # nothing was held out: screened regions are reported, as unconfirmed


def test_a_region_the_held_out_seeds_do_not_confirm_is_no_failure_mode():
    records, held = planted_run()
    records = [dict(r, is_failure=False) if r["phase"] == "confirm" else r for r in records]
    found = characterize(records, SPACE, confirmation=Confirmation("pooled", ["rotation=-30,30&brightness=0.2"],
                                                                   sorted(held)))
    top = found.regions.set_index("region_id").loc["rotation=-30,30&brightness=0.2"]
    assert top["confirm_failures"] == 0 and not top["confirmed"] and not top["is_mode"]
    assert not found.landscape["region_confirmed"].any() and not found.landscape["confirmed"].any()


def test_high_clean_rate_confirms_with_paired_answers():
    records, held = planted_run(clean_fail=0.2, region_rate=0.9)
    test, rate = choose_test(Evidence.from_queries(records, held), LandscapeConfig())
    assert test == "paired" and rate >= 0.1  # decided on the exploration seeds' clean answers
    found = characterize(records, SPACE, confirmation=Confirmation(test, ["rotation=-30,30&brightness=0.2"],
                                                                   sorted(held), rate))
    top = found.regions.set_index("region_id").loc["rotation=-30,30&brightness=0.2"]
    clean = {r["seed_id"]: r["is_failure"] for r in records if r["phase"] == "clean"}
    inside = {r["seed_id"]: r["is_failure"] for r in records if r["phase"] == "confirm"}
    only_in = sum(inside[s] and not clean[s] for s in inside)
    only_clean = sum(clean[s] and not inside[s] for s in inside)
    assert top["confirm_test"] == "paired" and top["confirm_baseline_seeds"] == 20
    assert top["confirm_p"] == pytest.approx(mcnemar_greater(only_in, only_clean))


def test_a_class_that_fails_anyway_is_not_a_perturbation_failure():
    """Squares fail 40 % clean and 40 % everywhere: tested against the clean rate of squares, no region."""
    rng = np.random.default_rng(1)
    records = []
    for i in range(60):
        shape = ("circle", "square", "triangle")[i % 3]
        rate = 0.4 if shape == "square" else 0.0
        records.append(record("clean", -1, f"s{i}", rng.random() < rate, shape))
        records += [record("explore", c, f"s{i}", rng.random() < rate, shape) for c in range(0, 125, 5)]
    found = characterize(records, SPACE)
    assert not found.regions["screened"].any() and not found.regions["is_mode"].any()
    assert found.grid.classes == ("circle", "square", "triangle")


def test_prompt_spaces_confirm_against_answers_outside_the_regions():
    grid_space = load_space("builtin:paper-prompts")
    found = characterize([record("explore", 0, "t0", True)], grid_space)
    assert choose_test(Evidence.from_queries([record("explore", 0, "t0", True)]), LandscapeConfig())[0] == "paired-outside"
    region = found.grid.parse("descriptor=unique")
    judged = np.ones(grid_space.num_cells, dtype=bool)
    seeds = [Seed(f"h{i}", "a {descriptor} {profession} in a {setting}") for i in range(6)]
    pairs = plan_queries([region], found.grid, judged, seeds, "paired-outside", np.random.default_rng(0))
    inside = {cell for cell, _ in pairs[:6]}
    assert len(pairs) == 12 and inside <= set(region.cells(found.grid.shape))
    assert all(cell not in region.cells(found.grid.shape) for cell, _ in pairs[6:])
    assert sorted(seed for _, seed in pairs[6:]) == sorted(s.seed_id for s in seeds)


# ---- under the null: no region or cell fails more often than clean inputs ------------------------------------------


def _null_run(sampler: str, rng: np.random.Generator, clean_rate: float, budget: int = 600, seeds: int = 36):
    """One simulated exploration and confirmation of a model whose every cell fails as often as clean inputs.

    The target is deterministic: each (seed, cell) answer is drawn once. The querier's seed choice is the real one
    (an unused seed for an answered pair). Samplers: ``random``; ``bo`` (the real Thompson sampler); ``ppo-like``
    (70 % of queries revisit the cells that failed so far, in proportion to their failures)."""
    from fade_hub.explore.confirm import split_holdout

    pool = [Seed(f"s{i}", None) for i in range(seeds)]
    explore, held = split_holdout(pool, fraction=0.25, minimum=24, random_seed=int(rng.integers(1 << 30)))
    answers = rng.random((seeds, SPACE.num_cells)) < clean_rate
    clean = rng.random(seeds) < clean_rate
    index = {s.seed_id: i for i, s in enumerate(pool)}
    chooser = SeedChooser(explore, int(rng.integers(1 << 30)))
    records = [record("clean", -1, s.seed_id, clean[index[s.seed_id]]) for s in pool]
    posteriors = BetaPosteriors(SPACE.num_cells)
    failed = np.zeros(SPACE.num_cells)
    for _ in range(budget // 20):
        if sampler == "bo":
            cells = posteriors.draw(20, rng)
        elif sampler == "ppo-like" and failed.sum():
            cells = [int(rng.choice(SPACE.num_cells, p=failed / failed.sum())) if rng.random() < 0.7
                     else int(rng.integers(SPACE.num_cells)) for _ in range(20)]
        else:
            cells = [int(c) for c in rng.integers(SPACE.num_cells, size=20)]
        wanted = [explore[int(i)].seed_id for i in rng.integers(len(explore), size=20)]
        chosen = chooser.choose(cells, wanted)
        outcomes = [bool(answers[index[s], c]) for c, s in zip(cells, chosen)]
        records += [record("explore", c, s, f) for c, s, f in zip(cells, chosen, outcomes)]
        posteriors.update(cells, outcomes)
        np.add.at(failed, cells, np.asarray(outcomes, dtype=float))
    held_ids = {s.seed_id for s in held}
    screening = characterize(records, SPACE, held_out=held_ids)
    test, rate = choose_test(Evidence.from_queries(records, held_ids), LandscapeConfig())
    tested = screening.regions[screening.regions["screened"]].head(5)
    if tested.empty:  # nothing screened: nothing is tested on the held-out seeds, so nothing can be confirmed
        return False
    confirmation = Confirmation(test, list(tested["region_id"]), sorted(held_ids), rate)
    plan = plan_queries([screening.grid.parse(r) for r in confirmation.regions], screening.grid,
                        np.ones(SPACE.num_cells, dtype=bool), held, test, rng)
    records += [record("confirm", c, s, answers[index[s], c]) for c, s in plan]
    final = characterize(records, SPACE, confirmation=confirmation)
    return bool(final.regions["confirmed"].any() or final.landscape["confirmed"].any())


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["ppo-like", "random", "bo"])
def test_no_false_regions_under_the_null(sampler):
    """200 simulated explorations (125 cells, 36 seeds, budget 600) of a model that fails everywhere exactly as often
    as on clean inputs: at most 5 % report a confirmed region or cell (half at a clean rate of 0.05, pooled test;
    half at 0.15, paired test)."""
    rng = np.random.default_rng({"ppo-like": 1, "random": 2, "bo": 3}[sampler])
    false = [_null_run(sampler, rng, clean_rate) for clean_rate in [0.05] * 100 + [0.15] * 100]
    assert np.mean(false) <= 0.05, f"{sampler}: {np.mean(false):.3f} of runs report a false region or cell"
