"""The ``bo`` explorer: Bayesian optimisation of the failure rate by Thompson sampling with Beta posteriors per cell.

Each query is pass / fail, so the exact conjugate model of a cell is a Beta posterior over its failure
rate. Every query of a batch draws one sample of every cell's rate from its posterior and goes to the
cell whose sample is highest: cells that failed often, and cells too little known to rule out, are
both drawn. The prior is empirical Bayes: ``Beta(s·m, s·(1 - m))`` with ``m`` the pooled failure rate so
far (Laplace-smoothed, so ``Beta(1, 1)`` before any query) and ``s = PRIOR_STRENGTH`` pseudo-queries,
so that an unvisited cell looks like an average cell rather than a coin flip once the space is known
to fail rarely.

Why this and not a GP or TPE sampler (optuna): it is the exact Bayesian model of the outcome, draws a
whole batch in one vectorised step, needs no new dependency, and its state is the per-cell counts, so
a resumed run rebuilds it from the replayed records and stays exact. Its limit is the one a per-cell
model has: nothing is shared between cells that have factor levels in common. Counts are of (cell, seed) pairs:
a repeated pair is not counted again, and cells whose exploration seeds are all asked are not drawn.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import BadConfig
from ..seeds import Seed
from .convergence import Convergence
from .querier import Querier

PRIOR_STRENGTH = 2.0
_DRAW_ROWS = 1 << 20  # posterior samples drawn per chunk (rows x cells)


class BetaPosteriors:
    """Per-cell queries and failures, and Thompson draws from their Beta posteriors."""

    def __init__(self, num_cells: int, prior_strength: float = PRIOR_STRENGTH) -> None:
        self.queries = np.zeros(num_cells)
        self.failures = np.zeros(num_cells)
        self.prior_strength = prior_strength

    def update(self, action_ids: Sequence[int], failed: Sequence[bool]) -> None:
        """Add observed outcomes."""
        np.add.at(self.queries, list(action_ids), 1.0)
        np.add.at(self.failures, list(action_ids), np.asarray(failed, dtype=float))

    def prior(self) -> tuple[float, float]:
        """The empirical-Bayes prior ``(alpha, beta)``: ``s`` pseudo-queries at the smoothed pooled failure rate."""
        mean = (self.failures.sum() + 1.0) / (self.queries.sum() + 2.0)
        return self.prior_strength * mean, self.prior_strength * (1.0 - mean)

    def draw(self, count: int, rng: np.random.Generator, excluded: set[int] = frozenset()) -> list[int]:
        """``count`` cells, each the argmax of one joint posterior sample over the cells not ``excluded`` (cells with
        nothing left to learn), over all cells when every one is."""
        alpha0, beta0 = self.prior()
        alpha, beta = alpha0 + self.failures, beta0 + self.queries - self.failures
        blocked = np.zeros(len(alpha), dtype=bool)
        if len(excluded) < len(alpha):
            blocked[list(excluded)] = True
        rows = max(1, _DRAW_ROWS // len(alpha))
        picks: list[int] = []
        while len(picks) < count:
            samples = rng.beta(alpha, beta, size=(min(rows, count - len(picks)), len(alpha)))
            samples[:, blocked] = -1.0
            picks.extend(int(i) for i in samples.argmax(axis=1))
        return picks


def run_thompson(
    querier: Querier,
    seeds: Sequence[Seed],
    rng: np.random.Generator,
    batch_size: int,
    stop: Convergence | None = None,
) -> None:
    """Thompson sampling on random seeds until the budget is spent (or ``stop`` says the search converged)."""
    if querier.env.mode != "single":
        raise BadConfig("--algorithm bo only runs in --mode single (its model is per cell, not per trajectory)")
    space, episode = querier.env.space, 0
    posteriors = BetaPosteriors(space.num_cells)
    while querier.left() > 0 and not (stop and stop.converged()):
        count = min(batch_size, querier.left())
        ids = posteriors.draw(count, rng, querier.exhausted())
        seed_ids = [seeds[i].seed_id for i in rng.integers(len(seeds), size=count)]
        outcomes = querier.query([space.action_from_id(a) for a in ids], seed_ids,
                                 episode=list(range(episode, episode + count)))
        fresh = [o for o in outcomes if o.fresh]  # a repeated pair is no new evidence
        posteriors.update([o.action_id for o in fresh], [o.failed_share for o in fresh])
        if stop:
            stop.update(outcomes)
        episode += count
    if stop:
        stop.record(querier)


def explore_bo(config, querier: Querier, seeds: Sequence[Seed], store) -> None:
    """The ``bo`` explorer."""
    stop = Convergence.from_config(config, querier.env.space.num_cells)
    run_thompson(querier, seeds, np.random.default_rng(config.seed), config.batch_size, stop)
