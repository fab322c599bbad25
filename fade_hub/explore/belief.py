"""What a search believes about the failure regions so far: the shared failure model and the candidate regions.

Every single-mode explorer keeps one :class:`Belief`, fed with the outcomes the querier returns (so that a resumed
run, whose querier replays the logged outcomes, rebuilds the same belief): the seed-deduplicated counts per (class,
cell) pair, the :class:`~fade_hub.explore.failure_model.FailureModel` fitted on them, and the *candidate regions*:
the regions the scan of ``fade_hub.regions`` finds in those counts now (unscreened: what the search should settle).

For a candidate region the belief also knows its *boundary*: the pairs one step outside it on one factor it
constrains (the next level of an ordered factor in value order, another level of an unordered factor, another
class), its other factors within the region. Whether those fail decides where the region ends; the scan reports a
region exactly only once its boundary has been asked.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..regions import Region, RegionGrid
from ..seeds import Seed
from .failure_model import FailureModel
from .querier import Outcome

CANDIDATES = 3  # regions the belief keeps as candidates
SIMPLER_WITHIN = 0.05  # the scan's tolerance for simpler regions (LandscapeConfig.simpler_within's default)


class Belief:
    """Seed-deduplicated counts per (class, cell), the shared failure model and the candidate regions."""

    def __init__(self, space: Any, seeds: Sequence[Seed] = (), *, candidates: int = CANDIDATES) -> None:
        self.grid = RegionGrid(space, [seed.context for seed in seeds])
        self._class_of = dict(zip([s.seed_id for s in seeds], self.class_index([s.context for s in seeds])))
        self.shape = self.grid.shape
        self.num_cells = int(np.prod(self.shape))
        self.model = FailureModel(self.shape, self.grid.num_classes)
        self.max_candidates = candidates
        self.candidates: list[Region] = []
        self.boundary = np.zeros((self.grid.num_classes, self.num_cells), dtype=bool)
        self.inside = np.zeros_like(self.boundary)
        self.seen = 0  # fresh outcomes counted

    @property
    def num_classes(self) -> int:
        """Classes as a factor (1 when the seeds' classes are not one)."""
        return self.grid.num_classes

    def class_index(self, contexts: Sequence[str | None]) -> np.ndarray:
        """The class index of each seed context (unknown ones count as class 0)."""
        return np.maximum(self.grid.class_index([c or "" for c in contexts]), 0)

    def seeds_by_class(self, seeds: Sequence[Seed]) -> list[list[str]]:
        """The seed ids of each class (all seeds in class 0 when the class is not a factor)."""
        pools: list[list[str]] = [[] for _ in range(self.num_classes)]
        for seed in seeds:
            pools[self._class_of.get(seed.seed_id, 0)].append(seed.seed_id)
        return [pool or [seed.seed_id for seed in seeds] for pool in pools]

    def pair_ids(self, outcomes: Sequence[Outcome]) -> np.ndarray:
        """The (class, cell) pair id of each outcome (its seed's class)."""
        return self.model.pair_ids([o.action_id for o in outcomes], [self._class_of.get(o.seed_id, 0) for o in outcomes])

    def update(self, outcomes: Sequence[Outcome]) -> None:
        """Count the fresh outcomes of a batch, refit the model and refresh the candidate regions."""
        fresh = [o for o in outcomes if o.fresh]
        if not fresh:
            return
        self.model.update(self.pair_ids(fresh), [o.failed_share for o in fresh])  # a sampled query: its share
        self.seen += len(fresh)
        self._refresh()

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(failures, seeds) per (class, cell), shaped (classes, cells)."""
        shape = (self.num_classes, self.num_cells)
        return self.model.failures.reshape(shape), self.model.queries.reshape(shape)

    def _refresh(self) -> None:
        """The scan's regions in the counts now, their insides and their boundaries (none kept: nothing to do)."""
        if not self.max_candidates:
            return
        failures, seeds = self.counts()
        found = self.grid.scan(failures, seeds, max_regions=self.max_candidates, tolerance=SIMPLER_WITHIN)
        self.candidates = [region for region, _ in found]
        self.inside[:] = False
        self.boundary[:] = False
        for region in self.candidates:
            self.inside |= region.pair_mask(self.shape, self.num_classes)
            for outside in self._neighbours(region):
                self.boundary |= outside.pair_mask(self.shape, self.num_classes)
        self.boundary &= ~self.inside

    def _neighbours(self, region: Region) -> list[Region]:
        """The regions one step outside ``region`` on one constrained factor (or on the class)."""
        out = []
        for axis, admitted in enumerate(region.levels):
            if admitted is None:
                continue
            step = _next_levels(self.grid.axes[axis], admitted)
            if step:
                levels = list(region.levels)
                levels[axis] = step
                out.append(Region(tuple(levels), region.classes))
        if region.classes is not None:
            others = tuple(c for c in range(self.num_classes) if c not in region.classes)
            if others:
                out.append(Region(region.levels, others))
        return out


def _next_levels(axis: Any, admitted: tuple[int, ...]) -> tuple[int, ...]:
    """The levels just outside an admitted set: its neighbours in value order (ordered), else every other level."""
    if not axis.ordered:
        return tuple(i for i in range(len(axis.levels)) if i not in admitted)
    order = axis.value_order
    position = {level: p for p, level in enumerate(order)}
    near = set()
    for level in admitted:
        for p in (position[level] - 1, position[level] + 1):
            if 0 <= p < len(order) and order[p] not in admitted:
                near.add(order[p])
    return tuple(sorted(near))
