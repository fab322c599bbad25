"""The statistics fade-hub reports: Wilson intervals, a one-sided Fisher exact test, Benjamini-Hochberg q-values.

Pure numpy and the standard library, so that the Space (which has no scipy) computes the same numbers.
"""

from __future__ import annotations

import math

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
