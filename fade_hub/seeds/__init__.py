"""Seed inputs: rows of a Hub dataset, a local folder or file, or a built-in set, with labels aligned to the model.

A seed is one unperturbed input (an RGB image, a text, or a text-to-image template with ``{slot}``
placeholders) plus, for classifiers, its label aligned to the model's ``id2label``.
"""

from __future__ import annotations

import logging

from fade_hub.seeds.labels import align_labels, apply_labels
from fade_hub.seeds.sources import Seed, SeedConfig, list_builtin_seeds, read_seeds
from fade_hub.tasks import get_task

logger = logging.getLogger(__name__)

__all__ = ["Seed", "SeedConfig", "align_labels", "default_seeds_for", "list_builtin_seeds", "load_seeds"]


def default_seeds_for(task: str) -> str | None:
    """The built-in seed source used for ``task`` when the user gives none, or None."""
    return get_task(task).default_seeds


def load_seeds(config: SeedConfig, modality: str, id2label: dict[int, str] | None = None, token=None) -> list[Seed]:
    """Load seeds for ``modality`` ("image" | "text" | "prompt"), labels aligned to ``id2label``."""
    seeds, names_declared = read_seeds(config, modality, token)
    seeds = apply_labels(seeds, id2label, config.label_map, names_declared)
    logger.info("loaded %d seeds from %s", len(seeds), config.seeds)
    return seeds
