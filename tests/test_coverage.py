"""The coverage search's parts: the shared failure model, the coverage reward, the convergence stop, bo's posteriors."""

from __future__ import annotations

import numpy as np
import pytest

from fade_hub.explore.bo import BetaPosteriors
from fade_hub.explore.convergence import Convergence
from fade_hub.explore.coverage import FLOOR, CoverageReward
from fade_hub.explore.failure_model import FailureModel
from fade_hub.explore.querier import Outcome

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


def test_convergence_needs_a_quiet_window_and_settled_modes():
    stop = Convergence(num_cells=10, window=6, min_queries=3)
    stop.update(outcomes([1, 2, 3], [True, False, False]))
    assert not stop.converged() and stop.unsettled == 1
    stop.update(outcomes([1, 1], [False, True]))  # cell 1 settles (3 queries); no new mode since query 1
    assert stop.converged() is False  # only 4 queries since the last new mode
    stop.update(outcomes([4, 5], [False, False]))
    assert stop.converged()
    stop.update(outcomes([6], [True]))  # a new mode reopens the search
    assert not stop.converged() and stop.unsettled == 1


def test_beta_posteriors_prefer_failing_cells_but_still_try_unknown_ones():
    posteriors = BetaPosteriors(20)
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
