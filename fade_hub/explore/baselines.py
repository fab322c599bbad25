"""Undirected and simple explorers: ``random``, ``epsilon-greedy`` (the paper's baseline) and ``grid``.

Each runs in both modes where it makes sense; all query through a :class:`Querier`, so they share the
budget, the records and resume. They are deterministic given their ``numpy`` generator.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import BadConfig
from ..seeds import Seed
from .belief import Belief
from .querier import Pipeline, Querier
from .sequential import walk


class CellStats:
    """Running mean score per cell, for greedy choices."""

    def __init__(self, num_cells: int) -> None:
        self.counts = np.zeros(num_cells)
        self.totals = np.zeros(num_cells)

    def update(self, outcomes: Sequence) -> None:
        """Add the scores of fresh outcomes (a repeated pair is no new evidence)."""
        fresh = [o for o in outcomes if o.fresh]
        np.add.at(self.counts, [o.action_id for o in fresh], 1)
        np.add.at(self.totals, [o.action_id for o in fresh], [o.score for o in fresh])

    def means(self) -> np.ndarray:
        """Mean score per cell (0 where unvisited)."""
        return np.divide(self.totals, self.counts, out=np.zeros_like(self.totals), where=self.counts > 0)


def _pick_seeds(seeds: Sequence[Seed], count: int, rng: np.random.Generator) -> list[str]:
    return [seeds[i].seed_id for i in rng.integers(len(seeds), size=count)]


def run_random(querier: Querier, seeds: Sequence[Seed], rng: np.random.Generator, batch_size: int) -> None:
    """Uniform random cells on random seeds until the budget is spent."""
    space, episode = querier.env.space, 0
    if querier.env.mode == "sequential":
        moves = 2 * len(space.factors)
        while querier.left() > 0:
            count = min(batch_size, querier.left())
            walk(querier, _pick_seeds(seeds, count, rng), first_episode=episode,
                 choose=lambda i, cell, t: int(rng.integers(moves)))
            episode += count
        return
    pipeline = Pipeline(querier)
    while querier.left() > 0:
        count = min(batch_size, querier.left())
        cells = [space.action_from_id(int(a)) for a in rng.integers(space.num_cells, size=count)]
        pipeline.send(cells, _pick_seeds(seeds, count, rng), episode=list(range(episode, episode + count)))
        episode += count
    pipeline.drain()


def run_epsilon_greedy(
    querier: Querier, seeds: Sequence[Seed], rng: np.random.Generator, batch_size: int, epsilon: float
) -> None:
    """With probability epsilon a random cell, else the (class, cell) pair the shared failure model rates worst so far
    (sequential: the move to the cell with the best mean score)."""
    if not 0.0 <= epsilon <= 1.0:
        raise BadConfig(f"--epsilon must be in [0, 1], got {epsilon}")
    space, env, episode = querier.env.space, querier.env, 0
    stats = CellStats(space.num_cells)
    if env.mode == "sequential":
        moves = 2 * len(space.factors)

        def choose(i: int, cell: tuple[int, ...], t: int) -> int:
            if rng.random() < epsilon:
                return int(rng.integers(moves))
            means = stats.means()
            values = np.array([means[space.action_id(env.move(cell, m))] for m in range(moves)])
            return int(rng.choice(np.flatnonzero(values == values.max())))

        while querier.left() > 0:
            count = min(batch_size, querier.left())
            episodes = walk(querier, _pick_seeds(seeds, count, rng), first_episode=episode, choose=choose)
            stats.update([o for e in episodes for o in e.outcomes])
            episode += count
        return
    belief = Belief(space, seeds, candidates=0)
    by_class = belief.seeds_by_class(seeds)
    pipeline = Pipeline(querier)
    while querier.left() > 0:
        count = min(batch_size, querier.left())
        best = _best_pairs(belief, querier.exhausted())
        cells, seed_ids = [], []
        for _ in range(count):
            if rng.random() < epsilon:
                cells.append(int(rng.integers(space.num_cells)))
                seed_ids.append(seeds[int(rng.integers(len(seeds)))].seed_id)
            else:
                pair = int(rng.choice(best))
                pool = by_class[pair // space.num_cells]
                cells.append(pair % space.num_cells)
                seed_ids.append(pool[int(rng.integers(len(pool)))])
        belief.update(pipeline.send([space.action_from_id(a) for a in cells], seed_ids,
                                    episode=list(range(episode, episode + count))))
        episode += count
    pipeline.drain()


def _best_pairs(belief: Belief, excluded: set[int]) -> np.ndarray:
    """The (class, cell) pairs of the highest posterior failure rate, cells in ``excluded`` left out (unless all are)."""
    rates = belief.model.all_rates().copy()
    if len(excluded) < belief.num_cells:
        rates[:, sorted(excluded)] = -1.0
    return np.flatnonzero(rates.reshape(-1) == rates.max())


def grid_size(num_cells: int, num_seeds: int) -> int:
    """Queries the grid needs: every cell on every seed."""
    return num_cells * num_seeds


def run_grid(querier: Querier, seeds: Sequence[Seed], batch_size: int) -> None:
    """Every cell on every seed, in row-major order, cut at the budget."""
    if querier.env.mode != "single":
        raise BadConfig("--algorithm grid only runs in --episodes single (it enumerates cells, not trajectories)")
    space = querier.env.space
    pairs = [(cell_id, seed.seed_id) for seed in seeds for cell_id in range(space.num_cells)]
    pairs = pairs[: querier.left()]
    pipeline = Pipeline(querier)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        pipeline.send([space.action_from_id(cell_id) for cell_id, _ in chunk], [seed_id for _, seed_id in chunk],
                      episode=list(range(start, start + len(chunk))))
    pipeline.drain()


def explore_random(config, querier: Querier, seeds: Sequence[Seed], store) -> None:
    """The ``random`` explorer."""
    run_random(querier, seeds, np.random.default_rng(config.seed), config.batch_size)


def explore_epsilon_greedy(config, querier: Querier, seeds: Sequence[Seed], store) -> None:
    """The ``epsilon-greedy`` explorer."""
    run_epsilon_greedy(querier, seeds, np.random.default_rng(config.seed), config.batch_size, config.epsilon)


def explore_grid(config, querier: Querier, seeds: Sequence[Seed], store) -> None:
    """The ``grid`` explorer."""
    run_grid(querier, seeds, config.batch_size)
