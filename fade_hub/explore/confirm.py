"""Confirmation: the top failure cells re-evaluated on held-out seeds the exploration never saw."""

from __future__ import annotations

import logging
from typing import Sequence

from ..landscape import compute_landscape, confirm_candidates
from ..seeds import Seed
from .querier import Querier

logger = logging.getLogger(__name__)


def confirm_top_cells(querier: Querier, held_out: Sequence[Seed], *, top: int, per_cell: int, policy_probs=None) -> int:
    """Re-evaluate the top failure cells on held-out seeds (``phase="confirm"``); return the query count."""
    if top <= 0 or per_cell <= 0:
        return 0
    if not held_out:
        logger.warning("no held-out seeds (need at least 2 seeds): the top failure modes are not confirmed")
        return 0
    space = querier.env.space
    modes = confirm_candidates(compute_landscape(querier.store.read_queries(), space, policy_probs), top)
    seed_ids = [seed.seed_id for seed in held_out[:per_cell]]
    pairs = [(int(cell), seed_id) for cell in modes["action_id"] for seed_id in seed_ids]
    batch = querier.env.target.batch_size
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        querier.query(
            [space.action_from_id(cell) for cell, _ in chunk],
            [seed_id for _, seed_id in chunk],
            episode=-1,
            phase="confirm",
        )
    return len(pairs)
