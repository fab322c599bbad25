"""A Bayesian model of every cell's failure rate that shares strength across cells with factor levels in common.

Two layers:

* a logistic model of the rate from the cell's factor levels: one weight per level of each factor and
  one per pair of levels of each pair of factors (so that a mode that only appears where two factors
  meet is representable), on top of the smoothed pooled failure rate, with Gaussian priors on the
  weights (ridge; pairs are shrunk harder than single levels, so that one level's evidence carries
  over to its other pairs until the pair itself has data). It is refitted after every batch by a few
  warm-started Newton steps on the per-cell counts. Unlike per-level failure rates it is not fooled by
  where the search happened to look: a level sampled mostly where nothing fails is not blamed for it;
* a Beta posterior per cell whose prior is that prediction with ``strength`` pseudo-queries, so that a
  cell's own queries take over from the shared estimate as they accumulate.

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
    """Per-cell counts, a ridge logistic model over levels and pairs of levels, and Beta posteriors on top."""

    def __init__(self, shape: Sequence[int], *, strength: float = 2.0, ridge: float = 1.0, pair_ridge: float = 10.0,
                 newton_steps: int = 4) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.num_cells = int(np.prod(self.shape))
        self.queries = np.zeros(self.num_cells)
        self.failures = np.zeros(self.num_cells)
        self.strength, self.newton_steps = strength, newton_steps
        starts = np.cumsum([0, *self.shape])
        self._level_start = starts[:-1]
        pairs = list(itertools.combinations(range(len(self.shape)), 2))
        if sum(self.shape[f] * self.shape[g] for f, g in pairs) > MAX_PAIR_WEIGHTS:
            pairs = []
        self._pairs = []
        start = int(starts[-1])
        for f, g in pairs:
            self._pairs.append((f, g, start))
            start += self.shape[f] * self.shape[g]
        self.penalty = np.full(start, float(pair_ridge))
        self.penalty[: starts[-1]] = ridge
        self.weights = np.zeros(start)
        self.offset = 0.0

    def _active(self, ids: np.ndarray) -> np.ndarray:
        """The weight indices each cell switches on: (len(ids), factors + pairs)."""
        levels = np.stack(np.unravel_index(ids, self.shape), axis=1)
        columns = [self._level_start[f] + levels[:, f] for f in range(len(self.shape))]
        columns += [start + levels[:, f] * self.shape[g] + levels[:, g] for f, g, start in self._pairs]
        return np.stack(columns, axis=1)

    def update(self, ids: Sequence[int], failed: Sequence[bool]) -> None:
        """Add a batch of outcomes and refit the shared model."""
        ids = np.asarray(ids, dtype=np.int64)
        np.add.at(self.queries, ids, 1.0)
        np.add.at(self.failures, ids, np.asarray(failed, dtype=float))
        self._fit()

    def _fit(self) -> None:
        """Newton steps on the ridge-penalised binomial log-likelihood of the visited cells."""
        visited = np.flatnonzero(self.queries)
        n, k = self.queries[visited], self.failures[visited]
        active = self._active(visited)  # the design matrix, as the column of each cell's ones
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
        """The shared model's failure rate of each cell."""
        active = self._active(np.asarray(ids, dtype=np.int64))
        return _sigmoid(self.offset + self.weights[active].sum(axis=1))

    def rates(self, ids: Sequence[int]) -> np.ndarray:
        """Posterior mean failure rate of each cell: its own counts on top of the shared prediction."""
        ids = np.asarray(ids, dtype=np.int64)
        return (self.strength * self.prior(ids) + self.failures[ids]) / (self.strength + self.queries[ids])

    def spread(self, ids: Sequence[int]) -> np.ndarray:
        """Posterior standard deviation of each cell's failure rate (wide for a cell with few queries of its own)."""
        ids = np.asarray(ids, dtype=np.int64)
        mean = self.rates(ids)
        return np.sqrt(mean * (1.0 - mean) / (self.strength + self.queries[ids] + 1.0))
