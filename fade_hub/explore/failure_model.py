"""A Bayesian model of every cell's failure rate, per seed class, that shares strength across cells with levels in common.

Every explorer reads it (``ppo``'s rewards, ``bo``'s Thompson draws, ``epsilon-greedy``'s best cell, the
``--stop-when-converged`` rule), and the discovery benchmark scores its predicted landscape. It is fitted on
seed-deduplicated counts: a repeated (cell, seed) pair of a deterministic model is not counted again.

A *pair* is a (class, cell): the seed's class is one more factor of the model, so a mode that holds on one
class only is learned as such (``classes`` 1: no class factor). Two layers:

* a logistic model of the rate from the pair's factor levels: one weight per level of each factor (the class
  included) and one per pair of levels of each pair of factors (so that a mode that only appears where two
  factors meet, or on one class at one level, is representable), on top of the smoothed pooled failure rate,
  with Gaussian priors on the weights (ridge; pairs are shrunk harder than single levels, so that one level's
  evidence carries over to its other pairs until the pair itself has data). It is refitted after every batch by
  a few warm-started Newton steps on the per-pair counts. Unlike per-level failure rates it is not fooled by
  where the search happened to look: a level sampled mostly where nothing fails is not blamed for it;
* a Beta posterior per pair whose prior is that prediction with ``strength`` pseudo-seeds, so that a pair's own
  seeds take over from the shared estimate as they accumulate.

Pairwise weights are dropped for spaces with more than ``MAX_PAIR_WEIGHTS`` of them (levels only).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

MAX_PAIR_WEIGHTS = 1024  # the Newton step is cubic in the number of weights


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class FailureModel:
    """Per-(class, cell) counts, a ridge logistic model over levels and pairs of levels, and Beta posteriors on top.

    Pairs are addressed by ``pair_id = class * num_cells + cell`` (:meth:`pair_ids`).
    """

    def __init__(self, shape: Sequence[int], classes: int = 1, *, strength: float = 2.0, ridge: float = 1.0,
                 pair_ridge: float = 10.0, newton_steps: int = 4) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.classes = max(int(classes), 1)
        self.num_cells = int(np.prod(self.shape))
        self._axes = ((self.classes,) if self.classes > 1 else ()) + self.shape  # the class is one more factor
        self.queries = np.zeros(self.classes * self.num_cells)  # seeds per pair
        self.failures = np.zeros(self.classes * self.num_cells)
        self.strength, self.newton_steps = strength, newton_steps
        starts = np.cumsum([0, *self._axes])
        self._level_start = starts[:-1]
        pairs = list(itertools.combinations(range(len(self._axes)), 2))
        if sum(self._axes[f] * self._axes[g] for f, g in pairs) > MAX_PAIR_WEIGHTS:
            pairs = []
        self._pairs = []
        start = int(starts[-1])
        for f, g in pairs:
            self._pairs.append((f, g, start))
            start += self._axes[f] * self._axes[g]
        self.penalty = np.full(start, float(pair_ridge))
        self.penalty[: starts[-1]] = ridge
        self.weights = np.zeros(start)
        self.offset = 0.0

    def pair_ids(self, cells: Sequence[int], classes: Sequence[int] | None = None) -> np.ndarray:
        """The pair id of each (class, cell) (class 0 for all without ``classes``)."""
        cells = np.asarray(cells, dtype=np.int64)
        if classes is None or self.classes == 1:
            return cells
        return np.asarray(classes, dtype=np.int64) * self.num_cells + cells

    def _active(self, ids: np.ndarray) -> np.ndarray:
        """The weight indices each pair switches on: (len(ids), factors + pairs of factors)."""
        levels = np.stack(np.unravel_index(ids, self._axes), axis=1)
        columns = [self._level_start[f] + levels[:, f] for f in range(len(self._axes))]
        columns += [start + levels[:, f] * self._axes[g] + levels[:, g] for f, g, start in self._pairs]
        return np.stack(columns, axis=1)

    def update(self, ids: Sequence[int], failed: Sequence[float]) -> None:
        """Add a batch of fresh outcomes (pair ids, failed or the share of a seed's answers that failed) and refit."""
        ids = np.asarray(ids, dtype=np.int64)
        np.add.at(self.queries, ids, 1.0)
        np.add.at(self.failures, ids, np.asarray(failed, dtype=float))
        self._fit()

    def fit_counts(self, failures: np.ndarray, seeds: np.ndarray) -> "FailureModel":
        """Set the counts to (classes, cells) arrays of seed-deduplicated failures and seeds, refit; return self."""
        self.failures = np.asarray(failures, dtype=float).reshape(-1).copy()
        self.queries = np.asarray(seeds, dtype=float).reshape(-1).copy()
        for _ in range(3):  # from cold weights: a few more Newton steps
            self._fit()
        return self

    def _fit(self) -> None:
        """Newton steps on the ridge-penalised binomial log-likelihood of the visited pairs."""
        visited = np.flatnonzero(self.queries)
        if not len(visited):
            return
        n, k = self.queries[visited], self.failures[visited]
        active = self._active(visited)  # the design matrix, as the column of each pair's ones
        rows = np.broadcast_to(active[:, :, None], active.shape + active.shape[1:])
        cols = np.broadcast_to(active[:, None, :], rows.shape)
        size = len(self.weights)
        # logits are offset by the smoothed pooled rate, so the fit stays finite before any failure
        self.offset = float(np.log(k.sum() + 1.0) - np.log(n.sum() - k.sum() + 1.0))
        for _ in range(self.newton_steps):
            p = _sigmoid(self.offset + self.weights[active].sum(axis=1))
            gradient = np.bincount(active.ravel(), np.repeat(k - n * p, active.shape[1]), size)
            gradient -= self.penalty * self.weights
            curvature = np.broadcast_to((n * p * (1 - p))[:, None, None], rows.shape)
            hessian = np.bincount((rows * size + cols).ravel(), curvature.ravel(), size * size).reshape(size, size)
            hessian[np.diag_indices(size)] += self.penalty
            self.weights += np.linalg.solve(hessian, gradient)

    def prior(self, ids: Sequence[int]) -> np.ndarray:
        """The shared model's failure rate of each pair."""
        active = self._active(np.asarray(ids, dtype=np.int64))
        return _sigmoid(self.offset + self.weights[active].sum(axis=1))

    def rates(self, ids: Sequence[int]) -> np.ndarray:
        """Posterior mean failure rate of each pair: its own counts on top of the shared prediction."""
        ids = np.asarray(ids, dtype=np.int64)
        return (self.strength * self.prior(ids) + self.failures[ids]) / (self.strength + self.queries[ids])

    def spread(self, ids: Sequence[int]) -> np.ndarray:
        """Posterior standard deviation of each pair's failure rate (wide for a pair with few seeds of its own)."""
        ids = np.asarray(ids, dtype=np.int64)
        mean = self.rates(ids)
        return np.sqrt(mean * (1.0 - mean) / (self.strength + self.queries[ids] + 1.0))

    def beta(self) -> tuple[np.ndarray, np.ndarray]:
        """The Beta posterior ``(alpha, beta)`` of every pair, in pair-id order."""
        prior = self.prior(np.arange(len(self.queries)))
        return self.strength * prior + self.failures, self.strength * (1.0 - prior) + self.queries - self.failures

    def all_rates(self) -> np.ndarray:
        """Posterior mean failure rate of every pair, shaped (classes, cells)."""
        return self.rates(np.arange(len(self.queries))).reshape(self.classes, self.num_cells)

    def all_spread(self) -> np.ndarray:
        """Posterior standard deviation of every pair, shaped (classes, cells)."""
        return self.spread(np.arange(len(self.queries))).reshape(self.classes, self.num_cells)

    def landscape(self, weights: Sequence[float] | None = None) -> np.ndarray:
        """The predicted failure rate of each cell over the classes (weighted by ``weights``, e.g. the seeds of
        each class; equal weights by default)."""
        shares = np.ones(self.classes) if weights is None else np.asarray(weights, dtype=float)
        return shares @ self.all_rates() / shares.sum()
