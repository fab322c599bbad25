"""Confirmation: the screened regions tested on held-out seeds the exploration never saw.

The seeds are split before exploration (``split_holdout``): at least ``confirm_seeds`` held out when the seeds
allow it (never more than half), balanced across classes; fewer draws one warning with the power to confirm a
region failing 30 % of the time. After exploration, the regions that pass screening (``fade_hub.characterize``),
at most ``confirm_top`` of them, are each queried once per held-out seed of their classes, at their cells in
rotation (seeds and cells in a seeded order), so that the test counts seeds: exact however strongly a seed's
answers correlate across the region's cells. The test is chosen from the exploration seeds before any held-out
query and recorded with the regions in ``run.json`` (``confirmation``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..characterize import Confirmation, characterize, choose_test
from ..evidence import Evidence
from ..landscape import LandscapeConfig
from ..perturb import ConceptSpace
from ..regions import Region, RegionGrid
from ..seeds import Seed
from ..stats import fisher_power
from .querier import Querier

logger = logging.getLogger(__name__)

POWER_RATE = 0.3  # the failure rate of the region whose confirmation power a short held-out set is warned with


def split_holdout(seeds: Sequence[Seed], *, fraction: float, minimum: int, random_seed: int) -> tuple[list[Seed], list[Seed]]:
    """Split seeds into (explore, held-out), deterministically and balanced across classes.

    Held out: ``round(fraction * n)`` seeds, raised to ``minimum`` when at most half the seeds allow it; none when
    ``fraction`` and ``minimum`` are 0 or there are fewer than 2 seeds.
    """
    n = len(seeds)
    if n < 2 or (fraction <= 0 and minimum <= 0):
        return list(seeds), []
    count = max(round(fraction * n), min(minimum, n // 2), 1)
    count = min(count, n - 1)
    rng = np.random.default_rng([random_seed, 7])
    by_class: dict[str, list[int]] = defaultdict(list)
    for i in rng.permutation(n):
        by_class[seeds[int(i)].context].append(int(i))
    classes = sorted(by_class)
    quotas = {c: count * len(by_class[c]) / n for c in classes}
    taken = {c: int(quotas[c]) for c in classes}
    for c in sorted(classes, key=lambda c: (taken[c] - quotas[c], c))[: count - sum(taken.values())]:
        taken[c] += 1  # largest remainders first
    held = {i for c in classes for i in by_class[c][: taken[c]]}
    if count < minimum:
        power = fisher_power(count, POWER_RATE, 0, n)
        logger.warning(
            "only %d of %d seeds can be held out to confirm regions (at most half): a region failing %d%% of the "
            "time is confirmed with probability about %.2f (%d held-out seeds would give %.2f); pass more seeds "
            "(--num-seeds, or a larger seed set) for a stronger confirmation",
            count, n, round(100 * POWER_RATE), power, minimum, fisher_power(minimum, POWER_RATE, 0, 2 * minimum),
        )
    return [s for i, s in enumerate(seeds) if i not in held], [s for i, s in enumerate(seeds) if i in held]


def confirm_regions(querier: Querier, held_out: Sequence[Seed], *, top: int, config: LandscapeConfig,
                    random_seed: int, policy_probs=None) -> Confirmation | None:
    """Query the screened regions on the held-out seeds (``phase="confirm"``); return what was tested and how."""
    if top <= 0:
        return None
    if not held_out:
        logger.warning("no held-out seeds (need at least 2 seeds): the regions found are screened, not confirmed")
        return None
    space = querier.env.space
    confirmation, pairs = plan_confirmation(querier.store.read_queries(), space, held_out, top=top, config=config,
                                            random_seed=random_seed, policy_probs=policy_probs)
    batch = querier.env.target.batch_size
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        querier.query([space.action_from_id(cell) for cell, _ in chunk], [seed_id for _, seed_id in chunk],
                      episode=-1, phase="confirm")
    if confirmation.regions:
        logger.info("confirming %d region(s) on %d held-out seeds (%s test): %d queries", len(confirmation.regions),
                    len(held_out), confirmation.test, len(pairs))
    return confirmation


def plan_confirmation(records: list[dict[str, Any]] | pd.DataFrame, space: ConceptSpace, held_out: Sequence[Seed],
                      *, top: int, config: LandscapeConfig, random_seed: int,
                      policy_probs=None) -> tuple[Confirmation, list[tuple[int, str]]]:
    """What a run confirms after the exploration ``records``: the test and its (at most ``top``) screened regions,
    and the (cell, seed id) pairs to ask the held-out seeds (``plan_queries``, in the run's seeded order)."""
    held_ids = {seed.seed_id for seed in held_out}
    found = characterize(records, space, policy_probs=policy_probs, config=config, held_out=held_ids)
    test, clean_rate = choose_test(Evidence.from_queries(records, held_ids), config)
    screened = found.regions.sort_values("screen_p", kind="mergesort")
    screened = screened[screened["screened"]].head(top)
    confirmation = Confirmation(test, list(screened["region_id"]), [s.seed_id for s in held_out], clean_rate)
    regions = [found.grid.parse(region_id) for region_id in confirmation.regions]
    judged = found.landscape["judged"].to_numpy(dtype=bool)
    return confirmation, plan_queries(regions, found.grid, judged, held_out, test,
                                      np.random.default_rng([random_seed, 11]))


def plan_queries(regions: Sequence[Region], grid: RegionGrid, judged: np.ndarray, held_out: Sequence[Seed],
                 test: str, rng: np.random.Generator) -> list[tuple[int, str]]:
    """(cell, seed id) per held-out seed and region: the region's judged cells in rotation over its seeds (both in
    a seeded order); with ``paired-outside``, each seed also once at a random judged cell outside every region."""
    classes = grid.class_index([seed.context for seed in held_out])
    pairs: list[tuple[int, str]] = []
    outside = np.ones((grid.num_classes, len(judged)), dtype=bool) & judged[None, :]
    for region in regions:
        mask = region.pair_mask(grid.shape, grid.num_classes) & judged[None, :]
        outside &= ~mask
        cells = np.flatnonzero(region.cell_mask(grid.shape) & judged)
        cells = cells[rng.permutation(len(cells))]
        eligible = [int(i) for i in rng.permutation(len(held_out)) if classes[i] >= 0 and mask[classes[i]].any()]
        pairs.extend((int(cells[turn % len(cells)]), held_out[i].seed_id) for turn, i in enumerate(eligible))
    if test == "paired-outside" and regions:
        for i, seed in enumerate(held_out):
            free = np.flatnonzero(outside[max(classes[i], 0)])
            if len(free):
                pairs.append((int(rng.choice(free)), seed.seed_id))
    return pairs
