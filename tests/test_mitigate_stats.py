"""The paired bootstrap over seeds that every before/after figure of a mitigation carries (fade_hub.stats)."""

from __future__ import annotations

import numpy as np

from fade_hub.stats import (
    bootstrap_rates, bootstrap_weights, paired_bootstrap, percentile_intervals, unseen_share, wilson_interval,
)


def test_the_weights_draw_as_many_seeds_as_there_are_and_are_seeded():
    weights = bootstrap_weights(40, draws=300, seed=3)
    assert weights.shape == (300, 40) and (weights.sum(axis=1) == 40).all()
    assert (weights == bootstrap_weights(40, draws=300, seed=3)).all()
    assert not (weights == bootstrap_weights(40, draws=300, seed=4)).all()
    assert bootstrap_weights(0, draws=5).shape == (5, 0)


def test_unchanged_answers_give_no_change_and_the_exact_bound_of_what_the_seeds_can_miss():
    """No seed changed: the bootstrap sees no spread, so the change's interval is Clopper-Pearson's bound on a share
    of seeds seen 0 times in 50 (7.1 points), not [0, 0]; the same for a rate nobody failed, and for a drop to 0."""
    rng = np.random.default_rng(0)
    failures = (rng.random((3, 50)) < 0.3).astype(float)
    found = paired_bootstrap(failures, failures, np.ones_like(failures), bootstrap_weights(50, seed=1))
    bound = 1 - 0.025 ** (1 / 50)
    assert np.allclose(found["change"], 0) and found["unchanged"].all() and np.isclose(bound, 0.0711, atol=1e-4)
    assert np.allclose(found["change_low"], -bound) and np.allclose(found["change_high"], bound)
    assert np.allclose(found["drop"], 0)
    none = paired_bootstrap(np.zeros(36), np.zeros(36), np.ones(36), bootstrap_weights(36))
    assert none["before_high"][0] == none["after_high"][0] == unseen_share(36) and none["before_low"][0] == 0
    fixed = paired_bootstrap(np.full(71, 8.0), np.zeros(71), np.full(71, 8.0), bootstrap_weights(71))
    assert fixed["drop"][0] == 1 and np.isclose(fixed["drop_low"][0], 1 - unseen_share(71))  # 94.9 %, not 100 %
    assert fixed["change_low"][0] == -1 and np.isclose(fixed["change_high"][0], -1 + unseen_share(71))
    assert (found["before_low"] < found["before"]).all() and (found["before"] < found["before_high"]).all()


def test_pairing_narrows_the_interval_of_a_change_measured_on_the_same_seeds():
    """Before and after share every resample: two seeds that flip out of 200 failing ones are a sure small change,
    where resampling before and after apart would see noise as wide as the rates' own."""
    before = np.zeros(400)
    before[:200] = 1
    after = before.copy()
    after[:10] = 0  # ten seeds fixed, none broken
    weights = bootstrap_weights(400, seed=0)
    paired = paired_bootstrap(before, after, np.ones(400), weights)
    assert np.isclose(paired["change"][0], -10 / 400) and paired["change_high"][0] < 0  # surely fewer failures
    apart = bootstrap_rates(bootstrap_weights(400, seed=9), after, np.ones(400)) - bootstrap_rates(weights, before,
                                                                                                   np.ones(400))
    low, high = percentile_intervals(apart)
    assert high[0] - low[0] > 4 * (paired["change_high"][0] - paired["change_low"][0])


def test_a_seed_is_the_unit_a_seed_failing_in_every_cell_widens_the_interval():
    """40 seeds x 10 cells, 10 seeds failing in all cells: 100 of 400 pairs fail, but the evidence is 10 of 40 seeds.
    A Wilson interval over the 400 pairs as if independent is far narrower than the honest one."""
    failures = np.zeros((10, 40))
    failures[:, :10] = 1
    found = paired_bootstrap(failures.sum(axis=0), failures.sum(axis=0), np.full(40, 10.0),
                             bootstrap_weights(40, seed=0))
    width = found["before_high"][0] - found["before_low"][0]
    low, high = wilson_interval(100, 400)
    assert found["before"][0] == 0.25 and width > 2 * (high - low)


def test_the_drop_is_missing_without_failures_before_and_bounded_by_one():
    weights = bootstrap_weights(30, seed=0)
    none = paired_bootstrap(np.zeros(30), np.zeros(30), np.ones(30), weights)
    assert np.isnan(none["drop"][0]) and np.isnan(none["drop_low"][0]) and none["change"][0] == 0
    before = np.zeros(30)
    before[:12] = 1
    faded = paired_bootstrap(before, np.zeros(30), np.ones(30), weights)
    assert faded["drop"][0] == faded["drop_high"][0] == 1.0  # no seed fails after: the bound is what 30 seeds can miss
    assert np.isclose(faded["drop_low"][0], 1 - unseen_share(30) / 0.4)


def test_intervals_cover_the_true_rate_about_as_often_as_they_say():
    """200 simulated evaluations of 120 seeds x 5 cells, each seed with its own failure propensity (answers correlate
    across cells): the 95 % interval of the pooled rate covers the truth in at least 90 % of them."""
    rng = np.random.default_rng(5)
    weights = bootstrap_weights(120, draws=500, seed=2)
    covered = 0
    for _ in range(200):
        propensity = rng.beta(0.5, 2.0, size=120)  # the true rate is its mean, 0.2
        failures = (rng.random((5, 120)) < propensity).sum(axis=0).astype(float)
        found = paired_bootstrap(failures, failures, np.full(120, 5.0), weights)
        covered += found["before_low"][0] <= 0.2 <= found["before_high"][0]
    assert covered >= 180, covered


def test_groups_are_measured_side_by_side():
    rng = np.random.default_rng(1)
    before = (rng.random((4, 60)) < 0.5).astype(float)
    after = before * (rng.random((4, 60)) < 0.5)
    pairs = np.ones_like(before)
    weights = bootstrap_weights(60, seed=0)
    together = paired_bootstrap(before, after, pairs, weights)
    for group in range(4):
        alone = paired_bootstrap(before[group], after[group], pairs[group], weights)
        for name in ("before", "after", "change", "drop", "change_low", "drop_high"):
            assert np.isclose(together[name][group], alone[name][0])
