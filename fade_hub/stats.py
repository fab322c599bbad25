"""The statistics fade-hub reports, in one place: Wilson intervals, Newcombe intervals of a difference of rates (independent
or paired), one-sided Fisher and McNemar mid-p tests, Benjamini-Hochberg and Holm adjustments, Kulldorff's scan statistic,
and a paired bootstrap over seeds (``paired_bootstrap``) for figures measured twice on the same seeds.

Pure numpy and the standard library, so that the Space (which has no scipy) computes the same numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import BadConfig


def wilson_intervals(k: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise Wilson intervals of arrays of counts; exact 0 / 1 at the ends, (0, 1) where ``n == 0``."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(k < 0) or np.any(k > n):
        raise BadConfig("failures must lie between 0 and the number of queries")
    safe_n = np.where(n > 0, n, 1.0)
    p = k / safe_n
    z2 = z * z
    denom = 1.0 + z2 / safe_n
    center = (p + z2 / (2 * safe_n)) / denom
    half = z * np.sqrt(p * (1 - p) / safe_n + z2 / (4 * safe_n * safe_n)) / denom
    low = np.where(k == 0, 0.0, np.clip(center - half, 0.0, 1.0))
    high = np.where(k == n, 1.0, np.clip(center + half, 0.0, 1.0))
    low = np.where(n > 0, low, 0.0)
    high = np.where(n > 0, high, 1.0)
    return low, high


def wilson_interval(failures: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial rate; (0, 1) when ``n == 0``."""
    low, high = wilson_intervals(np.array([failures]), np.array([n]), z)
    return float(low[0]), float(high[0])


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(k1: int, n1: int, k0: int, n0: int) -> float:
    """One-sided Fisher exact p-value that rate ``k1/n1`` exceeds rate ``k0/n0`` (1.0 when ``n1`` is 0).

    With no baseline (``n0 == 0``) any failure counts as evidence against a zero rate: p = 0 if ``k1 > 0``.
    """
    if n1 <= 0 or k1 <= 0:
        return 1.0
    if n0 <= 0:
        return 0.0
    total, failures = n1 + n0, k1 + k0
    denominator = _log_comb(total, n1)
    tail = [
        _log_comb(failures, x) + _log_comb(total - failures, n1 - x) - denominator
        for x in range(k1, min(n1, failures) + 1)
    ]
    top = max(tail)
    return float(min(1.0, math.exp(top) * sum(math.exp(t - top) for t in tail)))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of the given p-values (NaN entries are not tested and stay NaN)."""
    p = np.asarray(p_values, dtype=float)
    q = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    if not len(tested):
        return q
    order = tested[np.argsort(p[tested], kind="mergesort")]
    m = len(order)
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control; NaN entries are not tested and stay NaN)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    if not len(tested):
        return adjusted
    order = tested[np.argsort(p[tested], kind="mergesort")]
    m = len(order)
    scaled = p[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def newcombe_differences(k1: np.ndarray, n1: np.ndarray, k0: np.ndarray, n0: np.ndarray,
                         z: float = 1.96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Element-wise ``k1/n1 - k0/n0`` of independent rates with Newcombe's hybrid score interval (his method 10).

    The interval combines the two Wilson intervals, so it stays inside [-1, 1] and keeps its coverage at rates near
    0 or 1, where the Wald interval fails. NaN where either sample is empty.
    """
    k1, n1, k0, n0 = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (k1, n1, k0, n0)))
    empty = (n1 <= 0) | (n0 <= 0)
    k1, k0 = np.where(empty, 0.0, k1), np.where(empty, 0.0, k0)
    p1, p0 = k1 / np.where(empty, 1, n1), k0 / np.where(empty, 1, n0)
    l1, u1 = wilson_intervals(k1, n1, z)
    l0, u0 = wilson_intervals(k0, n0, z)
    diff = p1 - p0
    low, high = diff - np.hypot(p1 - l1, u0 - p0), diff + np.hypot(u1 - p1, p0 - l0)
    return tuple(np.where(empty, np.nan, x) for x in (diff, low, high))


def newcombe_difference(k1: int, n1: int, k0: int, n0: int, z: float = 1.96) -> tuple[float, float, float]:
    """``newcombe_differences`` of one pair of rates, as floats."""
    return tuple(float(x) for x in newcombe_differences(k1, n1, k0, n0, z))


def newcombe_paired_difference(both: int, only1: int, only0: int, neither: int,
                               z: float = 1.96) -> tuple[float, float, float]:
    """Difference of two rates measured on the same units, with Newcombe's paired hybrid score interval (method 10).

    ``both`` units failed under both conditions, ``only1`` only under the first, ``only0`` only under the second,
    ``neither`` under none. The Wilson intervals of the two marginal rates are combined with the correlation of
    the pairs (phi, with Newcombe's continuity correction), so that a strong positive correlation narrows the
    interval. NaN without units.
    """
    n = both + only1 + only0 + neither
    if n <= 0:
        return math.nan, math.nan, math.nan
    k1, k0 = both + only1, both + only0
    p1, p0 = k1 / n, k0 / n
    l1, u1 = wilson_interval(k1, n, z)
    l0, u0 = wilson_interval(k0, n, z)
    margins = (both + only1) * (only0 + neither) * (both + only0) * (only1 + neither)
    cross = both * neither - only1 * only0  # phi's numerator, shrunk by n / 2 when positive (Newcombe's correction)
    cross = cross - n / 2 if cross > n / 2 else min(cross, 0)
    phi = 0.0 if margins == 0 else cross / math.sqrt(margins)
    diff = p1 - p0
    below = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u0 - p0) + (u0 - p0) ** 2, 0.0))
    above = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p0 - l0) + (p0 - l0) ** 2, 0.0))
    return diff, max(diff - below, -1.0), min(diff + above, 1.0)


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logs = [_log_comb(n, x) + x * math.log(p) + (n - x) * math.log1p(-p) for x in range(k, n + 1)]
    top = max(logs)
    return float(min(1.0, math.exp(top) * sum(math.exp(t - top) for t in logs)))


def mcnemar_greater(only1: int, only0: int) -> float:
    """One-sided exact McNemar mid-p value that the first condition fails more often than the second, on pairs.

    ``only1`` pairs failed only under the first condition, ``only0`` only under the second; the pairs that
    agree carry no information. Under the null each discordant pair is a fair coin: the mid-p value is
    P(X > only1) + P(X = only1) / 2 with X ~ Binomial(only1 + only0, 1/2) (1.0 without discordant pairs).
    """
    n = only1 + only0
    if n <= 0 or only1 <= 0:
        return 1.0
    at_least = binomial_upper_tail(only1, n, 0.5)
    exactly = math.exp(_log_comb(n, only1) - n * math.log(2.0))
    return float(min(1.0, at_least - exactly / 2.0))


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * log(y) with 0 * log(0) = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(y > 0, y, 1.0)), 0.0)


def bernoulli_scan_llr(k_in: np.ndarray, n_in: np.ndarray, k_all: float, n_all: float) -> np.ndarray:
    """Kulldorff's Bernoulli scan statistic of candidate regions: the log-likelihood ratio of a separate failure rate
    inside a region (``k_in`` failures of ``n_in``) versus one rate everywhere (``k_all`` of ``n_all``).

    Only excess counts: a region whose inside rate is not above its outside rate scores 0.
    """
    k_in, n_in = np.asarray(k_in, dtype=float), np.asarray(n_in, dtype=float)
    k_out, n_out = k_all - k_in, n_all - n_in
    with np.errstate(divide="ignore", invalid="ignore"):
        p_in = np.where(n_in > 0, k_in / np.where(n_in > 0, n_in, 1.0), 0.0)
        p_out = np.where(n_out > 0, k_out / np.where(n_out > 0, n_out, 1.0), 0.0)
    p_all = k_all / n_all if n_all > 0 else 0.0
    fitted = (_xlogy(k_in, p_in) + _xlogy(n_in - k_in, 1.0 - p_in)
              + _xlogy(k_out, p_out) + _xlogy(n_out - k_out, 1.0 - p_out))
    null = float(_xlogy(np.array(k_all), np.array(p_all)) + _xlogy(np.array(n_all - k_all), np.array(1.0 - p_all)))
    return np.where((p_in > p_out) & (n_in > 0), np.maximum(fitted - null, 0.0), 0.0)


def fisher_power(n: int, rate: float, k0: int, n0: int, alpha: float = 0.05) -> float:
    """Probability that the one-sided Fisher test rejects at ``alpha`` when ``n`` units fail at ``rate`` against a
    baseline of ``k0`` failures in ``n0`` units (exact, summed over the binomial outcomes)."""
    if n <= 0:
        return 0.0
    needed = next((k for k in range(n + 1) if fisher_greater(k, n, k0, n0) <= alpha), None)
    return 0.0 if needed is None else binomial_upper_tail(needed, n, rate)


BOOTSTRAP_DRAWS = 2000  # resamples of the seeds: the 2.5th and 97.5th percentiles move by < 0.1 point past this


def bootstrap_weights(num_seeds: int, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> np.ndarray:
    """(draws, num_seeds) array: how many times each seed is drawn in each resample (seeds drawn with replacement,
    as many as there are), from a generator seeded with ``seed``."""
    if num_seeds <= 0:
        return np.zeros((draws, 0))
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_seeds, np.full(num_seeds, 1.0 / num_seeds), size=draws).astype(float)


def bootstrap_rates(weights: np.ndarray, failures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Pooled failure rates of each resample: (draws, groups) array of ``sum(w * failures) / sum(w * pairs)`` over
    seeds, for ``failures`` and ``pairs`` given per (group, seed) (a 1-D array is one group); NaN where a resample
    drew no pair of the group."""
    k, n = np.atleast_2d(np.asarray(failures, dtype=float)), np.atleast_2d(np.asarray(pairs, dtype=float))
    num, den = weights @ k.T, weights @ n.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def percentile_intervals(draws: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` percentile interval of each column of ``draws`` (NaN draws left out; NaN where every
    draw is NaN)."""
    draws = np.asarray(draws, dtype=float)
    tail = 100 * (1 - level) / 2
    if draws.shape[0] == 0:
        empty = np.full(draws.shape[1:], np.nan)
        return empty, empty.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: its interval is NaN
        return np.nanpercentile(draws, tail, axis=0), np.nanpercentile(draws, 100 - tail, axis=0)


def paired_bootstrap(failures_before: np.ndarray, failures_after: np.ndarray, pairs: np.ndarray,
                     weights: np.ndarray, level: float = 0.95) -> dict[str, np.ndarray]:
    """Rates measured twice on the same seeds (before and after), compared pairwise, with percentile intervals from
    one bootstrap over seeds (the seed is the unit: a seed's answers across cells stay together, and before and
    after share every resample).

    ``failures_*`` and ``pairs`` are per (group, seed) (a 1-D array is one group); ``weights`` comes from
    ``bootstrap_weights``. Returns arrays over groups: ``before``, ``after`` (pooled rates) and ``change``
    (``after - before``), each with ``*_low`` / ``*_high``, and ``drop`` (``1 - after / before``, NaN without
    failures before; resamples without a failure before are left out of its interval), and ``unchanged`` (no
    seed's failures changed).

    A bootstrap cannot see what no seed showed: where no seed failed (or every seed did), or no seed changed, its
    interval has zero width (and so has the change's where every seed changed alike). There the interval is
    widened by the exact bound of what ``n`` seeds can miss:
    Clopper-Pearson's one-sided 97.5 % bound on a share of seeds seen 0 times in ``n`` (``unseen_share``), so
    that 0 changes in 36 seeds reads "+0.0 points [-9.7, +9.7]", not "[+0.0, +0.0]".
    """
    k0, k1 = np.atleast_2d(np.asarray(failures_before, float)), np.atleast_2d(np.asarray(failures_after, float))
    n = np.atleast_2d(np.asarray(pairs, dtype=float))
    total, before_k, after_k = n.sum(axis=1), k0.sum(axis=1), k1.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        before = np.where(total > 0, before_k / np.where(total > 0, total, 1.0), np.nan)
        after = np.where(total > 0, after_k / np.where(total > 0, total, 1.0), np.nan)
        drop = np.where(before > 0, 1.0 - after / np.where(before > 0, before, 1.0), np.nan)
    draws_before, draws_after = bootstrap_rates(weights, k0, n), bootstrap_rates(weights, k1, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws_drop = np.where(draws_before > 0, 1.0 - draws_after / np.where(draws_before > 0, draws_before, 1.0),
                              np.nan)
    found = {"before": before, "after": after, "change": after - before, "drop": drop}
    for name, draws in (("before", draws_before), ("after", draws_after), ("change", draws_after - draws_before),
                        ("drop", draws_drop)):
        found[f"{name}_low"], found[f"{name}_high"] = percentile_intervals(draws, level)
    found["drop_low"] = np.where(np.isnan(drop), np.nan, found["drop_low"])
    found["drop_high"] = np.where(np.isnan(drop), np.nan, found["drop_high"])
    _widen_unseen(found, k0, k1, n)
    return found


def unseen_share(seeds: np.ndarray | int, level: float = 0.95) -> np.ndarray:
    """Clopper-Pearson's one-sided upper bound (at ``1 - (1 - level) / 2``) on the share of seeds with some
    property when 0 of ``seeds`` showed it (1 where there is no seed)."""
    seeds = np.asarray(seeds, dtype=float)
    return np.where(seeds > 0, 1.0 - ((1 - level) / 2) ** (1.0 / np.maximum(seeds, 1.0)), 1.0)


def _widen_unseen(found: dict[str, np.ndarray], k0: np.ndarray, k1: np.ndarray, n: np.ndarray) -> None:
    """Widen ``paired_bootstrap``'s zero-width intervals to what the seeds cannot rule out (see its doc)."""
    seeds = (n > 0).sum(axis=1)
    bound = unseen_share(seeds)
    total = n.sum(axis=1)
    for name, k in (("before", k0), ("after", k1)):
        none, every = k.sum(axis=1) == 0, (k.sum(axis=1) == total) & (total > 0)
        found[f"{name}_high"] = np.where(none, np.fmax(found[f"{name}_high"], bound), found[f"{name}_high"])
        found[f"{name}_low"] = np.where(every, np.fmin(found[f"{name}_low"], 1.0 - bound), found[f"{name}_low"])
    found["unchanged"] = ((k0 == k1) | (n == 0)).all(axis=1) & (seeds > 0)
    flat = (found["change_high"] - found["change_low"] == 0) & (seeds > 0)  # every seed changed alike, or none did
    found["change_low"] = np.where(flat, np.fmax(found["change_low"] - bound, -1.0), found["change_low"])
    found["change_high"] = np.where(flat, np.fmin(found["change_high"] + bound, 1.0), found["change_high"])
    with np.errstate(invalid="ignore", divide="ignore"):
        floor = 1.0 - found["after_high"] / found["before"]
    found["drop_low"] = np.where(np.isnan(found["drop"]), np.nan, np.fmin(found["drop_low"], floor))


# -- two runs compared: the change of a failure rate, paired or independent (fade_hub.region_changes) ------------


@dataclass(frozen=True)
class RateChange:
    """A failure rate measured twice (``before``: run A, ``after``: run B) and its change ``after - before`` with
    Newcombe's 95 % interval, and the one-sided p-values that it fell (``p_lower``) or rose (``p_higher``).

    ``design`` is ``paired`` (the same units measured twice: exact McNemar mid-p, Newcombe's paired interval) or
    ``independent`` (one-sided Fisher exact tests, Newcombe's hybrid score interval). The counts are those compared:
    for a paired change, the shared units only.
    """

    design: str
    before_failures: int
    before_units: int
    after_failures: int
    after_units: int
    change: float
    change_low: float
    change_high: float
    p_lower: float
    p_higher: float

    def rate(self, side: str) -> tuple[float, float, float]:
        """``(rate, ci_low, ci_high)`` of ``before`` or ``after`` (Wilson; NaN rate without units)."""
        k, n = (self.before_failures, self.before_units) if side == "before" else (self.after_failures, self.after_units)
        low, high = wilson_interval(k, n)
        return (k / n if n else math.nan), low, high


def independent_change(k_before: int, n_before: int, k_after: int, n_after: int) -> RateChange:
    """The change between two rates measured on different units (NaN figures when either side has none)."""
    change, low, high = newcombe_difference(k_after, n_after, k_before, n_before)
    if n_before <= 0 or n_after <= 0:
        return RateChange("independent", k_before, n_before, k_after, n_after, change, low, high, math.nan, math.nan)
    return RateChange("independent", k_before, n_before, k_after, n_after, change, low, high,
                      p_lower=fisher_greater(k_before, n_before, k_after, n_after),
                      p_higher=fisher_greater(k_after, n_after, k_before, n_before))


def paired_change(before: Sequence[bool], after: Sequence[bool]) -> RateChange:
    """The change between two rates measured on the same units (``before[i]`` and ``after[i]``: unit i failed)."""
    first, second = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
    if first.shape != second.shape:
        raise BadConfig(f"paired outcomes must have one entry per unit on both sides, got {first.size} and {second.size}")
    both, only_before = int(np.sum(first & second)), int(np.sum(first & ~second))
    only_after, neither = int(np.sum(~first & second)), int(np.sum(~first & ~second))
    change, low, high = newcombe_paired_difference(both, only_after, only_before, neither)
    if not first.size:
        return RateChange("paired", 0, 0, 0, 0, change, low, high, math.nan, math.nan)
    return RateChange("paired", both + only_before, first.size, both + only_after, first.size, change, low, high,
                      p_lower=mcnemar_greater(only_before, only_after), p_higher=mcnemar_greater(only_after, only_before))


def cohen_kappa(table: np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    """Cohen's kappa of a square agreement table (rows: one rater, columns: the other) with its 95 % interval.

    The interval uses the large-sample standard error of Fleiss, Cohen & Everitt (1969), which holds away from
    kappa = 0 too, clipped to [-1, 1]. NaN (and the interval (-1, 1)) when the table is empty; kappa is 1 with a
    zero-width interval when both raters agree on every item and use one category only (chance agreement is 1).
    """
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or np.any(counts < 0):
        raise BadConfig("an agreement table must be square, of counts >= 0")
    n = counts.sum()
    if n <= 0:
        return math.nan, -1.0, 1.0
    p = counts / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    observed, chance = float(np.trace(p)), float(rows @ cols)
    if chance >= 1.0:
        return (1.0, 1.0, 1.0) if observed >= 1.0 else (math.nan, -1.0, 1.0)
    kappa = (observed - chance) / (1.0 - chance)
    diagonal = sum(p[i, i] * (1.0 - (rows[i] + cols[i]) * (1.0 - kappa)) ** 2 for i in range(len(p)))
    off = sum(p[i, j] * (cols[i] + rows[j]) ** 2 for i in range(len(p)) for j in range(len(p)) if i != j)
    variance = max(diagonal + (1.0 - kappa) ** 2 * off - (kappa - chance * (1.0 - kappa)) ** 2, 0.0)
    se = math.sqrt(variance / n) / (1.0 - chance)
    return kappa, max(kappa - z * se, -1.0), min(kappa + z * se, 1.0)


def pass_hat_k(passes: np.ndarray, samples: np.ndarray, k: int) -> np.ndarray:
    """Per seed, the unbiased estimate that ``k`` fresh samples would all pass: C(passes, k) / C(samples, k) (NaN for
    a seed with fewer than ``k`` samples)."""
    c, m = np.asarray(passes, dtype=int), np.asarray(samples, dtype=int)
    out = np.full(len(m), np.nan)
    for i, (good, total) in enumerate(zip(c, m)):
        if total >= k:
            out[i] = math.exp(_log_comb(int(good), k) - _log_comb(int(total), k)) if good >= k else 0.0
    return out
