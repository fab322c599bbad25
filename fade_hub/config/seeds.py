"""The options that say where a run's seed inputs come from (``SeedOptions``): a section of ``ExploreConfig`` and the
base of the seed readers' ``SeedConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from fade_hub.options import option

SEEDS_GROUP = "seed inputs"


@dataclass
class SeedOptions:
    """Where the seed inputs come from, which of them, and which columns hold what."""

    seeds: str | None = option(None, group=SEEDS_GROUP, help="Hub dataset ID, local path (image folder "
                               "LABEL/file.png, .jsonl, .csv, .txt) or builtin:NAME (see --list-builtins). Default: a "
                               "built-in set for text tasks.")
    split: str = option("train", group=SEEDS_GROUP, help="Dataset split.")
    dataset_config: str | None = option(None, group=SEEDS_GROUP, help="Dataset configuration (subset) name.")
    num_seeds: int | None = option(None, group=SEEDS_GROUP, low=1, help="Use at most this many seed inputs.")
    image_column: str | None = option(None, group=SEEDS_GROUP, help="Dataset column holding images.")
    text_column: str | None = option(None, group=SEEDS_GROUP, help="Dataset column holding texts or prompts.")
    label_column: str | None = option(None, group=SEEDS_GROUP, help="Dataset column holding labels.")
    reference_column: str | None = option(None, group=SEEDS_GROUP,
                                          help="Dataset column holding reference outputs (e.g. summaries).")
    label_map: str | None = option(None, group=SEEDS_GROUP,
                                   help="JSON/YAML file mapping dataset labels to the model's label names.")
