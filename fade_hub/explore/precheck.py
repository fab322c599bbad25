"""Read the files a run names before any model loads, so that a broken one fails in a second, not after a download.

The concept space, the label map and local seed files are parsed here without torch; ``explore`` reads
them again where it uses them (they are small).
"""

from __future__ import annotations

from ..perturb import load_space
from ..seeds.labels import read_label_map
from ..seeds.sources import SeedConfig, check_seed_source
from .config import ExploreConfig


def check_inputs(config: ExploreConfig) -> None:
    """BadSpace, BadConfig or BadSeeds for the first named input that cannot be read."""
    if config.space:
        load_space(config.space, allow_user_code=config.user_code_allowed)
    if config.label_map:
        read_label_map(config.label_map)
    if config.seeds:
        check_seed_source(SeedConfig(config.seeds, split=config.split, dataset_config=config.dataset_config))
