"""The statistics in one place: intervals of differences, exact tests, adjustments and the scan statistic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fade_hub.stats import (
    bernoulli_scan_llr,
    binomial_upper_tail,
    fisher_greater,
    fisher_power,
    holm,
    mcnemar_greater,
    newcombe_difference,
    newcombe_paired_difference,
)


def test_newcombe_difference_matches_the_published_example():
    # Newcombe (1998), example (a): 56/70 vs 48/80, method 10 gives 0.0524 to 0.3339
    diff, low, high = newcombe_difference(56, 70, 48, 80)
    assert diff == pytest.approx(0.2)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert all(math.isnan(x) for x in newcombe_difference(1, 0, 0, 5))


def test_newcombe_difference_stays_inside_bounds_at_the_extremes():
    diff, low, high = newcombe_difference(10, 10, 0, 10)
    assert diff == 1.0 and 0.0 < low < 1.0 and high == pytest.approx(1.0)
    diff, low, high = newcombe_difference(0, 40, 0, 40)
    assert diff == 0.0 and low < 0.0 < high


def test_newcombe_paired_difference_matches_the_published_example():
    # Newcombe (1998b), 36 both, 12 only the first, 2 only the second, 0 neither: method 10 gives 0.0569 to 0.3404
    diff, low, high = newcombe_paired_difference(36, 12, 2, 0)
    assert diff == pytest.approx(0.2)
    assert (low, high) == pytest.approx((0.0569, 0.3404), abs=1e-4)


def test_pairing_narrows_the_interval_when_answers_agree():
    """20 seeds: 8 fail both perturbed and clean, 6 fail only perturbed; paired is narrower than independent."""
    paired = newcombe_paired_difference(8, 6, 0, 6)
    independent = newcombe_difference(14, 20, 8, 20)
    assert paired[0] == pytest.approx(independent[0])
    assert paired[2] - paired[1] < independent[2] - independent[1]


def test_mcnemar_mid_p():
    # 6 discordant pairs all one way: P(X >= 6) = 1/64, mid-p = 1/64 - 1/128
    assert mcnemar_greater(6, 0) == pytest.approx(1 / 128)
    assert mcnemar_greater(0, 5) == 1.0 and mcnemar_greater(0, 0) == 1.0
    # symmetric: 5 vs 5 is not evidence
    assert mcnemar_greater(5, 5) == pytest.approx(0.5)


def test_holm_is_step_down_and_monotone():
    adjusted = holm(np.array([0.01, 0.04, 0.03, np.nan]))
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])
    assert holm(np.array([0.5, 0.9])).tolist() == [1.0, 1.0]


def test_scan_llr_scores_excess_inside_only():
    k_in, n_in = np.array([10, 1, 0, 2]), np.array([20, 20, 0, 20])
    llr = bernoulli_scan_llr(k_in, n_in, 12, 100)
    assert llr[0] > 10 and llr[1] == 0 and llr[2] == 0  # a deficit or an empty region scores 0
    # the log-likelihood ratio by hand for the first region: 10/20 inside, 2/80 outside, 12/100 overall
    def ll(k, n):
        p = k / n
        return (k * math.log(p) if k else 0) + ((n - k) * math.log(1 - p) if n - k else 0)
    assert llr[0] == pytest.approx(ll(10, 20) + ll(2, 80) - ll(12, 100))


def test_binomial_tail_and_fisher_power():
    assert binomial_upper_tail(0, 5, 0.3) == 1.0 and binomial_upper_tail(6, 5, 0.3) == 0.0
    assert binomial_upper_tail(5, 5, 0.5) == pytest.approx(1 / 32)
    # 24 held-out seeds confirm a region failing 30 % of the time against 0/48 clean almost always; 12 often not
    assert fisher_power(24, 0.3, 0, 48) > 0.95 > fisher_power(12, 0.3, 0, 24) > 0.5
    assert fisher_power(0, 0.3, 0, 10) == 0.0
    assert fisher_greater(3, 3, 1, 20) == pytest.approx(4 / 1771)
