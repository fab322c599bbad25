"""Models that sample (issue 24): K samples of one (cell, seed) pair count as one seed failing on the share of its
samples that failed, in the regions, their confirmation and the card (failure probability per sample, pass^K)."""

from __future__ import annotations

import pytest
from conftest import space_file

from fade_hub.evidence import Evidence
from fade_hub.explore import ExploreConfig
from fade_hub.explore.runner import explore
from fade_hub.stats import pass_hat_k
from fade_hub.testing.generation import BANNED, SYSTEM, write_prompts
from fade_hub.testing.loops import GENERATION_SPACE

PLANTED = 0.3
K = 8


def test_pass_hat_k_is_the_unbiased_all_pass_estimate():
    estimates = pass_hat_k([8, 6, 2], [8, 8, 8], 2)
    assert list(estimates[:2]) == [1.0, pytest.approx(15 / 28)] and estimates[2] == pytest.approx(1 / 28)


@pytest.mark.slow
def test_eight_samples_per_query_find_the_typo_region_at_its_planted_rate_counting_seeds(sampling_model, tmp_path):
    seeds = write_prompts(tmp_path / "seeds.jsonl", 24, seed=1)
    space = space_file(tmp_path, "generation", GENERATION_SPACE)
    config = ExploreConfig(model=str(sampling_model), seeds=str(seeds), space=str(space), algorithm="grid", system_prompt=SYSTEM, max_new_tokens=12, judge_keywords=[BANNED],
                           sampling=True, temperature=1.0, samples_per_query=K, confirm_seeds=8, show_progress=False,
                           output=str(tmp_path / "run"))
    run = explore(config)
    queries = run.queries
    explored = queries[queries["phase"] == "explore"]
    assert len(explored) == K * len(explored.groupby(["action_id", "seed_id"]))  # K answers per pair
    assert set(explored["sample"]) == set(range(K))
    top = run.regions.iloc[0]
    assert "typos=0.1" in top["region_id"] and "case" not in top["region_id"]
    typo_cells = [int(c) for c in top["cells"]]
    pairs = Evidence.from_queries(queries).phase("explore")
    in_region = pairs[pairs["action_id"].isin(typo_cells)]
    # the seed is the unit: the region counts its (cell, seed) pairs, not their samples
    assert int(top["seeds"]) == len(in_region) == len(explored[explored["action_id"].isin(typo_cells)]) // K
    rate = float(top["failure_rate"])
    print(f"\nsampled typo region: failure probability {rate:.2f} ({top['ci_low']:.2f}-{top['ci_high']:.2f}), "
          f"{int(top['seeds'])} seeds; confirmation {top['confirm_failures']:.1f}/{int(top['confirm_seeds'])} seeds")
    assert top["ci_low"] <= PLANTED <= top["ci_high"] and 0.1 < rate < 0.5
    # confirmation asked each held-out seed K times and counts it once
    held_out = run.meta["seeds"]["held_out"]
    confirm = queries[queries["phase"] == "confirm"]
    assert set(confirm.groupby(["action_id", "seed_id"]).size()) == {K}
    assert int(top["confirm_seeds"]) == held_out == confirm["seed_id"].nunique()
    card = (run.path / "README.md").read_text(encoding="utf-8")
    assert "## Sampling" in card and "samples) |" in card and "pass^K" in card
