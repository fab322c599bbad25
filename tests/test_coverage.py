"""The search's parts: the shared failure model, the belief and its candidate regions, the regions and coverage rewards,
the covering array, the convergence stop, bo's posteriors."""

from __future__ import annotations

import numpy as np
import pytest

import itertools

from fade_hub.explore.belief import Belief
from fade_hub.explore.bo import BetaPosteriors
from fade_hub.explore.convergence import Convergence
from fade_hub.explore.coverage import FLOOR, CoverageReward
from fade_hub.explore.covering import covering_array
from fade_hub.explore.failure_model import FailureModel
from fade_hub.explore.querier import Outcome
from fade_hub.explore.region_reward import KAPPA, UNASKED, RegionReward
from fade_hub.perturb import ConceptSpace
from fade_hub.seeds import Seed

SHAPE = (4, 4, 3)


def outcomes(cells: list[int], failed: list[bool]) -> list[Outcome]:
    """Explore outcomes as the querier returns them."""
    return [Outcome("s", int(a), bool(f), 0.0, float(f)) for a, f in zip(cells, failed)]


def planted_queries(rng: np.random.Generator, count: int, planted) -> tuple[np.ndarray, np.ndarray]:
    """Uniform queries over SHAPE that fail (with probability 0.8) exactly where ``planted(levels)`` holds."""
    ids = rng.integers(int(np.prod(SHAPE)), size=count)
    levels = np.stack(np.unravel_index(ids, SHAPE), axis=1)
    failed = np.array([planted(tuple(row)) for row in levels]) & (rng.random(count) < 0.8)
    return ids, failed


def test_failure_model_shares_a_level_with_cells_never_queried():
    rng = np.random.default_rng(0)
    model = FailureModel(SHAPE)
    ids, failed = planted_queries(rng, 60, lambda levels: levels[0] == 3)
    model.update(ids, failed)
    unseen = [a for a in range(int(np.prod(SHAPE))) if model.queries[a] == 0]
    hot = [a for a in unseen if np.unravel_index(a, SHAPE)[0] == 3]
    cold = [a for a in unseen if np.unravel_index(a, SHAPE)[0] != 3]
    assert hot and cold
    assert model.rates(hot).min() > 0.5 and model.rates(cold).max() < 0.2  # the pooled rate is 0.23


def test_failure_model_learns_an_interaction_of_two_factors():
    rng = np.random.default_rng(1)
    model = FailureModel(SHAPE)
    for _ in range(10):
        model.update(*planted_queries(rng, 48, lambda levels: levels[0] == 3 and levels[1] == 0))
    both = np.ravel_multi_index(([3, 3, 3], [0, 0, 0], [0, 1, 2]), SHAPE)
    one = np.ravel_multi_index(([3, 3, 2, 1], [1, 2, 0, 0], [0, 1, 2, 0]), SHAPE)
    assert model.prior(both).min() > 0.5 and model.prior(one).max() < 0.15


def test_failure_model_stays_finite_without_failures():
    model = FailureModel(SHAPE)
    for _ in range(5):
        model.update(np.arange(int(np.prod(SHAPE))), np.zeros(int(np.prod(SHAPE)), dtype=bool))
    rates = model.rates(np.arange(int(np.prod(SHAPE))))
    assert np.isfinite(rates).all() and rates.max() < 0.05


def test_failure_model_on_a_space_too_big_for_pairs_keeps_levels():
    model = FailureModel((40, 40, 2))  # 40 x 40 + 2 x 40 x 2 pair weights: over the limit, levels only
    assert len(model.weights) == 82
    model.update([0, 1, 2], [True, False, False])
    assert np.isfinite(model.rates([0, 5, 3199])).all()


def test_coverage_reward_pays_more_for_a_first_failure_and_matches_the_failure_rate():
    reward = CoverageReward(SHAPE, novelty_bonus=10.0, power=2.0, entropy_coef=0.05, progress=lambda: 0.0)
    first = reward(outcomes([5, 7], [True, False]))
    assert first[0] > first[1]  # the cell that failed is worth more than the one that did not
    again = reward(outcomes([5], [True]))
    assert again[0] < first[0]  # its second failure earns less: the novelty premium fades
    plain = CoverageReward(SHAPE, novelty_bonus=0.0, power=2.0, entropy_coef=0.05, progress=lambda: 0.0)
    rewards = plain(outcomes([5, 7, 9], [True, False, False]))
    # entropy_coef x power x log(rate): with grpo's entropy bonus the optimum samples cells as rate ** power
    assert rewards == pytest.approx(0.05 * 2 * np.log(plain.model.rates([5, 7, 9]) + FLOOR))


def test_coverage_reward_power_grows_with_the_budget_spent():
    spent = {"fraction": 0.0}
    reward = CoverageReward(SHAPE, novelty_bonus=0.0, power=2.0, entropy_coef=0.05, progress=lambda: spent["fraction"],
                            growth=1.0)
    early = reward(outcomes([1], [False]))[0]
    late = CoverageReward(SHAPE, novelty_bonus=0.0, power=2.0, entropy_coef=0.05, progress=lambda: 1.0, growth=1.0)
    constant = CoverageReward(SHAPE, novelty_bonus=0.0, power=2.0, entropy_coef=0.05, progress=lambda: 1.0)
    assert late(outcomes([1], [False]))[0] == pytest.approx(2 * early)
    assert constant(outcomes([1], [False]))[0] == pytest.approx(early)  # growth 0: the same power all along


def test_coverage_reward_exploits_after_a_quiet_window_and_explores_again_on_a_new_cell():
    reward = CoverageReward(SHAPE, novelty_bonus=0.0, power=1.0, entropy_coef=1.0, progress=lambda: 0.0,
                            growth=2.0, quiet_window=4)
    constant = CoverageReward(SHAPE, novelty_bonus=0.0, power=1.0, entropy_coef=1.0, progress=lambda: 0.0)
    batches = [([5, 6], [True, False]), ([5, 6], [True, False]), ([5, 6], [True, False]), ([7, 6], [True, False])]
    ratios = []
    for cells, failed in batches:
        ratios.append(np.array(reward(outcomes(cells, failed))) / np.array(constant(outcomes(cells, failed))))
    assert ratios[0] == pytest.approx([1.0, 1.0])  # cell 5 fails for the first time: explore
    assert ratios[1] == pytest.approx([1.0, 1.0])  # 2 quiet queries, fewer than the window
    assert ratios[2] == pytest.approx([3.0, 3.0])  # 4 quiet queries: the power rises to (1 + growth) x
    assert ratios[3] == pytest.approx([1.0, 1.0])  # cell 7 fails for the first time: back to mapping


def test_coverage_optimism_favours_cells_with_few_queries_and_fades_over_the_budget():
    model = FailureModel(SHAPE)
    model.update([5] * 20 + [7], [False] * 20 + [False])
    assert model.spread([7])[0] > 2 * model.spread([5])[0]  # one query of its own: the rate is still uncertain
    spent = {"fraction": 0.0}

    def reward(optimism: float) -> CoverageReward:
        return CoverageReward(SHAPE, novelty_bonus=0.0, power=1.0, entropy_coef=1.0, optimism=optimism,
                              progress=lambda: spent["fraction"])

    plain, hopeful = reward(0.0), reward(3.0)
    batch = outcomes([5] * 20 + [7], [False] * 21)
    mean, optimistic = np.exp(plain(batch)), np.exp(hopeful(batch))
    assert (optimistic > mean).all()
    assert optimistic[-1] / mean[-1] > optimistic[0] / mean[0]  # the rarely queried cell gains the most
    spent["fraction"] = 1.0  # by the end of the budget the optimism is gone
    assert hopeful(outcomes([9], [False])) == pytest.approx(plain(outcomes([9], [False])))


def test_beta_posteriors_prefer_failing_cells_but_still_try_unknown_ones():
    posteriors = BetaPosteriors(20)  # a model of 20 cells, one factor
    posteriors.update([0] * 10 + list(range(1, 20)) * 3, [True] * 8 + [False] * 2 + [False] * 57)
    picks = posteriors.draw(400, np.random.default_rng(0))
    assert picks.count(0) > 300
    assert picks.count(0) < 400  # the others keep some chance
    fresh = BetaPosteriors(5)
    assert set(fresh.draw(200, np.random.default_rng(1))) == set(range(5))  # no evidence: every cell drawn


def test_coverage_reward_learns_a_mode_of_one_context():
    reward = CoverageReward(SHAPE, novelty_bonus=0.0, power=2.0, entropy_coef=0.05, progress=lambda: 0.0, contexts=2)
    cells = list(range(int(np.prod(SHAPE)))) * 2
    contexts = [0] * (len(cells) // 2) + [1] * (len(cells) // 2)
    for _ in range(4):  # cell 5 fails for context 1 only
        reward(outcomes(cells, [c == 1 and a == 5 for a, c in zip(cells, contexts)]), contexts)
    mine, other = reward(outcomes([5, 5], [False, False]), [1, 0])
    assert mine > other + 0.1


# the seed's class in the shared model, the belief, the regions reward ----------------------------------------------

SPACE = ConceptSpace.from_dict({"modality": "image", "factors": [
    {"name": "rotation", "op": "rotate", "levels": [0, 10, 20, 30]},
    {"name": "brightness", "op": "brightness", "levels": [1.0, 0.7, 0.4, 0.2]},
    {"name": "noise", "op": "noise", "levels": [0, 0.1, 0.2]},
]})
SEEDS = [Seed(f"{label}-{i}", None, context=label) for label in ("circle", "square") for i in range(30)]


def planted_outcomes(rng: np.random.Generator, count: int, planted) -> list[Outcome]:
    """Uniform queries over SPACE on random SEEDS, failing (0.9) where ``planted(levels, class)`` holds."""
    out = []
    for _ in range(count):
        cell, seed = int(rng.integers(SPACE.num_cells)), SEEDS[int(rng.integers(len(SEEDS)))]
        failed = planted(SPACE.action_from_id(cell), seed.context) and rng.random() < 0.9
        out.append(Outcome(seed.seed_id, cell, bool(failed), 0.0, float(failed)))
    return out


def test_failure_model_with_the_class_learns_a_mode_of_one_class():
    rng = np.random.default_rng(2)
    belief = Belief(SPACE, SEEDS, candidates=0)
    belief.update(planted_outcomes(rng, 400, lambda cell, cls: cell[0] == 3 and cls == "square"))
    rates = belief.model.all_rates()  # classes in name order: circle, square
    tilted = [a for a in range(SPACE.num_cells) if SPACE.action_from_id(a)[0] == 3]
    upright = [a for a in range(SPACE.num_cells) if SPACE.action_from_id(a)[0] == 0]
    assert rates[1, tilted].mean() > 0.6 and rates[0, tilted].mean() < 0.15 and rates[1, upright].mean() < 0.15
    shares = np.array([1.0, 3.0])
    assert belief.model.landscape(shares) == pytest.approx((rates[0] + 3 * rates[1]) / 4)


def test_fit_counts_equals_the_same_outcomes_added_one_batch_at_a_time():
    rng = np.random.default_rng(3)
    outcomes = planted_outcomes(rng, 300, lambda cell, cls: cell[1] == 3)
    incremental = Belief(SPACE, SEEDS, candidates=0)
    for start in range(0, 300, 50):
        incremental.update(outcomes[start : start + 50])
    failures, seeds = incremental.counts()
    refit = FailureModel(SPACE.shape, 2).fit_counts(failures, seeds)
    np.testing.assert_allclose(refit.all_rates(), incremental.model.all_rates(), atol=0.02)


def test_belief_finds_a_candidate_region_and_its_boundary():
    rng = np.random.default_rng(4)
    belief = Belief(SPACE, SEEDS)
    belief.update(planted_outcomes(rng, 500, lambda cell, cls: cell[0] == 3 and cell[1] == 3))
    region = belief.candidates[0]
    assert region.levels[:2] == ((3,), (3,)) and region.levels[2] is None
    inside = {(3, 3, n) for n in range(3)}
    boundary = {(2, 3, n) for n in range(3)} | {(3, 2, n) for n in range(3)}  # one step out on each factor
    cells = lambda mask: {SPACE.action_from_id(int(a)) for a in np.flatnonzero(mask.any(axis=0))}
    assert cells(belief.inside) == inside and cells(belief.boundary) == boundary


def test_regions_reward_values_a_region_and_its_boundary_more_as_the_budget_goes():
    rng = np.random.default_rng(5)
    spent = {"fraction": 0.0}
    reward = RegionReward(Belief(SPACE, SEEDS), power=1.0, entropy_coef=1.0, progress=lambda: spent["fraction"],
                          start=0.2, end=0.9)
    reward(planted_outcomes(rng, 500, lambda cell, cls: cell[0] == 3 and cell[1] == 3))
    near = reward.belief.inside | reward.belief.boundary
    early = reward.values()
    spent["fraction"] = 1.0
    late = reward.values()
    assert reward.weight() == pytest.approx(0.9)
    assert late[near].mean() / late[~near].mean() > early[near].mean() / early[~near].mean() > 1.0
    # the imagined reward of a cell not asked is its value's, for the class of its context or all classes
    cells = [int(a) for a in np.flatnonzero(near[1])[:3]]
    assert reward.imagined(cells, ["square"] * 3) == pytest.approx(np.log(late[1, cells] + 1e-3))
    assert reward.imagined(cells, [None] * 3) == pytest.approx(np.log(late[:, cells].mean(axis=0) + 1e-3))
    exhausted = reward.values({cells[0]})
    assert (exhausted[:, cells[0]] == 0).all()  # a cell with no seed left is worth nothing


def test_regions_reward_of_a_pair_falls_with_its_own_seeds():
    """Two cells that fail half the time: the one asked on 20 seeds teaches less than the one asked on 2, however
    uncertain its outcome stays (a query's outcome variance does not fall with data; what it teaches does)."""
    reward = RegionReward(Belief(SPACE, SEEDS), power=1.0, entropy_coef=1.0, progress=lambda: 0.5)
    many, few = SPACE.action_id((3, 3, 2)), SPACE.action_id((3, 3, 1))
    squares = [seed.seed_id for seed in SEEDS if seed.context == "square"]
    reward([Outcome(squares[i], many, i % 2 == 0, 0.0, float(i % 2 == 0)) for i in range(20)]
           + [Outcome(squares[i], few, i % 2 == 0, 0.0, float(i % 2 == 0)) for i in range(2)])
    rates = reward.belief.model.all_rates()
    assert rates[1, many] == pytest.approx(rates[1, few], abs=0.1)
    values = reward.values()
    assert values[1, many] < 0.5 * values[1, few]


def test_regions_reward_asks_what_a_candidate_claims_and_no_seed_has_asked():
    """Squares fail at rotation 30, brightness 0.2 and noise 0.1 or 0.2; every other pair is asked on three seeds,
    that region's noise-0 cell on none. The scan leaves noise open (the same counts either way), so the candidate
    claims the unasked pair: it is worth the largest outcome variance, whatever the model expects there, and it is
    the square class's most valuable pair."""
    reward = RegionReward(Belief(SPACE, SEEDS), power=1.0, entropy_coef=1.0, progress=lambda: 0.5)
    unasked = SPACE.action_id((3, 3, 0))
    seeds = {label: [s.seed_id for s in SEEDS if s.context == label] for label in ("circle", "square")}
    batch = [Outcome(seed, cell, failed, 0.0, float(failed))
             for label, row in seeds.items() for cell in range(SPACE.num_cells) if (label, cell) != ("square", unasked)
             for seed in row[:3]
             for failed in [label == "square" and SPACE.action_from_id(cell)[:2] == (3, 3)]]
    reward(batch)
    belief = reward.belief
    assert belief.grid.region_id(belief.candidates[0]) == "rotation=30&brightness=0.2&class=square"
    assert belief.inside[1, unasked] and belief.model.queries.reshape(2, -1)[1, unasked] == 0
    mean, spread = belief.model.all_rates()[1, unasked], belief.model.all_spread()[1, unasked]
    discovery = min(mean + KAPPA * spread, 1.0) * (1.0 - mean)
    w = reward.weight()
    values = reward.values()
    assert values[1, unasked] == pytest.approx((1 - w) * discovery + w * UNASKED)
    assert values[1, unasked] > (1 - w) * discovery + w * mean * (1 - mean)  # the model's own variance is less
    assert values[1].argmax() == unasked


@pytest.mark.parametrize("shape", [(6, 6, 6, 6), (5, 5, 5), (2, 7), (3, 3, 3, 3, 3)])
def test_covering_array_meets_every_pair_of_levels(shape):
    rows = covering_array(shape, np.random.default_rng(0))
    for f, g in itertools.combinations(range(len(shape)), 2):
        assert {(row[f], row[g]) for row in rows} == set(itertools.product(range(shape[f]), range(shape[g])))
    assert len(rows) <= 1.5 * max(a * b for a, b in itertools.combinations(shape, 2))  # near the least possible
    assert covering_array(shape, np.random.default_rng(0)) == rows != covering_array(shape, np.random.default_rng(1))


def clean_records(count: int) -> list[dict]:
    return [{"phase": "clean", "action_id": -1, "seed_id": seed.seed_id, "context": seed.context, "is_failure": False,
             "severity": 0.0} for seed in SEEDS[:count]]


def explore_records(outcomes: list[Outcome]) -> list[dict]:
    context = {seed.seed_id: seed.context for seed in SEEDS}
    return [{"phase": "explore", "action_id": o.action_id, "seed_id": o.seed_id, "context": context[o.seed_id],
             "is_failure": o.is_failure, "severity": 0.0} for o in outcomes]


def test_convergence_waits_for_the_same_screened_regions_over_a_window():
    rng = np.random.default_rng(6)
    stop = Convergence(SPACE, window=100, check_every=50)
    stop.add(clean_records(40))
    first = lambda cell, cls: cell[0] == 3 and cell[1] == 3
    stop.add(explore_records(planted_outcomes(rng, 300, first)))
    assert stop.regions == ("rotation=30&brightness=0.2",) and not stop.converged()
    stop.add(explore_records(planted_outcomes(rng, 100, first)))  # 100 more queries, the same region
    assert stop.converged()
    assert stop.note(spent=400, budget=1000)["regions"] == ["rotation=30&brightness=0.2"]
    assert stop.note(spent=1000, budget=1000) is None  # the whole budget was spent: nothing to say
    both = lambda cell, cls: first(cell, cls) or (cell[0] == 0 and cell[2] == 2)
    stop.add(explore_records(planted_outcomes(rng, 300, both)))  # a second region turns up: the search goes on
    assert len(stop.regions) == 2 and not stop.converged()


def test_convergence_never_stops_a_search_that_screened_nothing():
    rng = np.random.default_rng(7)
    stop = Convergence(SPACE, window=50, check_every=50)
    stop.add(clean_records(40))
    stop.add(explore_records(planted_outcomes(rng, 400, lambda cell, cls: False)))
    assert stop.regions == () and not stop.converged()
