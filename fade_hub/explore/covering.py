"""The ``covering`` explorer: the classical design a test engineer uses on a factor grid, a pairwise covering array.

Combinatorial interaction testing: a *pairwise covering array* is a list of cells in which every level of every
factor meets every level of every other factor at least once, in far fewer cells than the grid (about 40 of the
1296 cells of four 6-level factors), so that every failure that needs only one or two factors is met in one round.
The array is built greedily (AETG, Cohen et al. 1997): each row starts from a pair of levels not covered yet and
adds the other factors one at a time, each at the level that covers the most uncovered pairs, ties at random; the
best of ``CANDIDATES`` such rows is kept. Once every pair is covered, a new round starts with a fresh array (the
random tie-breaks give other cells), on the seeds the querier hands out (an unused seed of each cell), until the
budget is spent. Nothing is adaptive: the same ``--random-seed`` asks the same cells whatever the model answers.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import numpy as np

from ..errors import BadConfig
from ..seeds import Seed
from .querier import Pipeline, Querier

CANDIDATES = 16  # rows built per row kept


def covering_array(shape: Sequence[int], rng: np.random.Generator) -> list[tuple[int, ...]]:
    """A pairwise covering array of a grid of ``shape`` (one level index per factor per row)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        return [(level,) for level in rng.permutation(shape[0])] if shape else [()]
    factors = range(len(shape))
    uncovered = {(f, g): np.ones((shape[f], shape[g]), dtype=bool) for f, g in itertools.combinations(factors, 2)}
    rows = []
    while any(table.any() for table in uncovered.values()):
        best, gain = None, -1
        for _ in range(CANDIDATES):
            row = _candidate(shape, uncovered, rng)
            covered = sum(bool(uncovered[f, g][row[f], row[g]]) for f, g in uncovered)
            if covered > gain:
                best, gain = row, covered
        for f, g in uncovered:
            uncovered[f, g][best[f], best[g]] = False
        rows.append(tuple(best))
    return rows


def _candidate(shape: tuple[int, ...], uncovered: dict, rng: np.random.Generator) -> list[int]:
    """One greedy row: an uncovered pair of levels, then each other factor at its most covering level."""
    open_pairs = [(f, g) for (f, g), table in uncovered.items() if table.any()]
    f, g = open_pairs[int(rng.integers(len(open_pairs)))]
    a, b = np.argwhere(uncovered[f, g])[int(rng.integers(int(uncovered[f, g].sum())))]
    row = [-1] * len(shape)
    row[f], row[g] = int(a), int(b)
    for h in rng.permutation([h for h in range(len(shape)) if h not in (f, g)]):
        gains = np.zeros(shape[h])
        for other, level in enumerate(row):
            if level < 0:
                continue
            gains += uncovered[h, other][:, level] if h < other else uncovered[other, h][level, :]
        top = np.flatnonzero(gains == gains.max())
        row[int(h)] = int(top[int(rng.integers(len(top)))])
    return row


def rounds(shape: Sequence[int], rng: np.random.Generator) -> Iterator[tuple[int, ...]]:
    """Cells of fresh covering arrays, one after the other, without end."""
    while True:
        yield from covering_array(shape, rng)


def run_covering(querier: Querier, seeds: Sequence[Seed], rng: np.random.Generator, batch_size: int) -> None:
    """Rounds of pairwise covering arrays on random seeds until the budget is spent."""
    if querier.env.mode != "single":
        raise BadConfig("--algorithm covering only runs in --episodes single (it lays out cells, not trajectories)")
    cells, episode, pipeline = rounds(querier.env.space.shape, rng), 0, Pipeline(querier)
    while querier.left() > 0:
        count = min(batch_size, querier.left())
        batch = [next(cells) for _ in range(count)]
        seed_ids = [seeds[i].seed_id for i in rng.integers(len(seeds), size=count)]
        pipeline.send(batch, seed_ids, episode=list(range(episode, episode + count)))
        episode += count
    pipeline.drain()


def explore_covering(config, querier: Querier, seeds: Sequence[Seed], store) -> None:
    """The ``covering`` explorer."""
    run_covering(querier, seeds, np.random.default_rng(config.seed), config.batch_size)
