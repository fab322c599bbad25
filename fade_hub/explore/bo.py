"""The ``bo`` explorer: Bayesian optimisation of the failure rate by Thompson sampling from the shared failure model.

Each query is pass / fail, so the conjugate model of a (class, cell) pair is a Beta posterior over its failure rate.
Its prior is the prediction of the shared failure model (``failure_model.py``: a ridge logistic model of levels and
pairs of levels, the seed's class included) with a few pseudo-seeds, so that evidence is shared between cells with
levels in common and a region is drawn as a whole once a few of its cells failed. Every query of a batch draws one
sample of every pair's rate from its posterior and goes to the pair whose sample is highest (a seed of that class):
pairs that failed often, and pairs too little known to rule out, are both drawn.

Why this and not a GP or TPE sampler (optuna): it is the Bayesian model of the outcome, draws a whole batch in one
vectorised step, needs no new dependency, and its state is the per-pair counts, so a resumed run rebuilds it from
the replayed records and stays exact. Counts are of (cell, seed) pairs: a repeated pair is not counted again, and
cells whose exploration seeds are all asked are not drawn.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import BadConfig
from ..seeds import Seed
from .belief import Belief
from .failure_model import FailureModel
from .querier import Pipeline, Querier

_DRAW_ROWS = 1 << 20  # posterior samples drawn per chunk (rows x pairs)


class BetaPosteriors:
    """Thompson draws from the Beta posteriors of a failure model's (class, cell) pairs."""

    def __init__(self, model: FailureModel | int) -> None:
        """Draw from ``model``'s posteriors, or from a model of that many cells (one factor) of its own."""
        self.model = FailureModel((model,)) if isinstance(model, int) else model

    def update(self, ids: Sequence[int], failed: Sequence[bool]) -> None:
        """Add observed outcomes (pair ids) and refit."""
        self.model.update(ids, failed)

    def draw(self, count: int, rng: np.random.Generator, excluded: set[int] = frozenset()) -> list[int]:
        """``count`` pair ids, each the argmax of one joint posterior sample over the pairs whose cell is not
        ``excluded`` (cells with nothing left to learn), over all pairs when every cell is."""
        alpha, beta = self.model.beta()
        blocked = np.zeros((self.model.classes, self.model.num_cells), dtype=bool)
        if len(excluded) < self.model.num_cells:
            blocked[:, list(excluded)] = True
        blocked = blocked.reshape(-1)
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
) -> None:
    """Thompson sampling until the budget is spent (or the querier says the search converged), one batch ahead
    (``Pipeline``: each draw sees every outcome but those of the batch in flight)."""
    if querier.env.mode != "single":
        raise BadConfig("--algorithm bo only runs in --episodes single (its model is per cell, not per trajectory)")
    space, episode = querier.env.space, 0
    belief = Belief(space, seeds, candidates=0)
    posteriors = BetaPosteriors(belief.model)
    by_class = belief.seeds_by_class(seeds)
    pipeline = Pipeline(querier)
    while querier.left() > 0:
        count = min(batch_size, querier.left())
        ids = posteriors.draw(count, rng, querier.exhausted())
        cells = [space.action_from_id(a % belief.num_cells) for a in ids]
        seed_ids = [pool[int(rng.integers(len(pool)))] for pool in (by_class[a // belief.num_cells] for a in ids)]
        belief.update(pipeline.send(cells, seed_ids, episode=list(range(episode, episode + count))))
        episode += count
    pipeline.drain()


def explore_bo(config, querier: Querier, seeds: Sequence[Seed], store) -> None:
    """The ``bo`` explorer."""
    run_thompson(querier, seeds, np.random.default_rng(config.seed), config.batch_size)
