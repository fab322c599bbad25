"""The discovery benchmark's fixtures: real models with planted failures, their seeds and spaces, and their ground truth.

* ``shapes``: the demo's shapes ResNet (``fade_hub.demo.shapes``) over ``builtin:demo-shapes`` (125 cells). It
  fails where its training data never went: dark *and* rotated shapes.
* ``shapes-hard``: a shapes ResNet over rotation x brightness x saturation x noise (1296 cells) with three small
  planted modes, one only where two factors meet (``fade_hub.testing.planted.HARD_IMAGE``).
* ``text``: a small BERT sentiment classifier over stop-words x shuffle x repeat x typos (1296 cells) with three
  planted modes (``fade_hub.testing.planted_text.TEXT``).

Each model is trained once per cache folder. The ground truth of a fixture is ``grid``: every cell on every seed
input (no held-out split), cached next to the model as JSON.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

logger = logging.getLogger("discovery")

FIXTURES = ("shapes", "shapes-hard", "text")


@dataclass
class Fixture:
    """A prepared fixture: the model folder, the seed source, the concept space and what it is."""

    name: str
    model: Path
    seeds: Path
    space: str
    modality: str
    description: str


@dataclass
class GroundTruth:
    """Per-cell failure rate of a fixture measured by ``grid`` over every seed input."""

    rates: np.ndarray
    queries_per_cell: int
    threshold: float
    labels: list[str]

    def cells(self, strict_positive: bool = False) -> set[int]:
        """True failure cells: rate >= threshold, or rate > 0 with ``strict_positive``."""
        hit = self.rates > 0 if strict_positive else self.rates >= self.threshold
        return {int(i) for i in np.flatnonzero(hit)}

    def summary(self) -> dict[str, Any]:
        """Cell counts, the overall rate, every failing cell (worst first) and all rates."""
        order = np.argsort(-self.rates, kind="stable")
        return {
            "cells": int(len(self.rates)),
            "queries_per_cell": self.queries_per_cell,
            "overall_failure_rate": float(self.rates.mean()),
            "threshold": self.threshold,
            "true_failure_cells": len(self.cells()),
            "cells_with_any_failure": len(self.cells(strict_positive=True)),
            "failing_cells": [
                {"action_id": int(i), "cell": self.labels[i], "failure_rate": float(self.rates[i])}
                for i in order if self.rates[i] > 0
            ],
            "rates": [float(r) for r in self.rates],
        }


def _shapes(cache: Path, seeds_per_class: int, fixture_seed: int, quick: bool) -> Fixture:
    from fade_hub.demo.run import DEMO_MODEL_VERSION
    from fade_hub.demo.shapes import train_shape_classifier, write_seed_folder

    model = train_shape_classifier(cache / DEMO_MODEL_VERSION, seed=fixture_seed)
    seeds = cache / f"{DEMO_MODEL_VERSION}-seeds-{seeds_per_class}-{1000 + fixture_seed}"
    if not seeds.is_dir():
        write_seed_folder(seeds, seeds_per_class, seed=1000 + fixture_seed)
    return Fixture("shapes", model, seeds, "builtin:demo-shapes", "image",
                   "the demo's shapes ResNet: dark and rotated shapes were never in its training data (125 cells)")


def _shapes_hard(cache: Path, seeds_per_class: int, fixture_seed: int, quick: bool) -> Fixture:
    from fade_hub.testing.planted import HARD_IMAGE, train_planted_classifier, write_vivid_seed_folder

    name = f"{HARD_IMAGE.name}-v2" + ("-quick" if quick else "")
    model = train_planted_classifier(cache / name, HARD_IMAGE, seed=fixture_seed, steps=20 if quick else None)
    seeds = cache / f"{name}-seeds-{seeds_per_class}-{2000 + fixture_seed}"
    if not seeds.is_dir():
        write_vivid_seed_folder(seeds, seeds_per_class, seed=2000 + fixture_seed)
    space = HARD_IMAGE.write_space(cache / f"{name}-space.yaml")
    return Fixture("shapes-hard", model, seeds, str(space), "image", HARD_IMAGE.description)


def _text(cache: Path, seeds_per_class: int, fixture_seed: int, quick: bool) -> Fixture:
    from fade_hub.testing.planted_text import TEXT, train_planted_text_classifier, write_sentence_seeds

    name = f"{TEXT.name}-v1" + ("-quick" if quick else "")
    model = train_planted_text_classifier(cache / name, TEXT, seed=fixture_seed, steps=20 if quick else None)
    seeds = cache / f"{name}-seeds-{seeds_per_class}-{3000 + fixture_seed}.jsonl"
    if not seeds.is_file():
        write_sentence_seeds(seeds, seeds_per_class, seed=3000 + fixture_seed)
    space = TEXT.write_space(cache / f"{name}-space.yaml")
    return Fixture("text", model, seeds, str(space), "text", TEXT.description)


_BUILDERS: dict[str, Callable[[Path, int, int, bool], Fixture]] = {
    "shapes": _shapes, "shapes-hard": _shapes_hard, "text": _text,
}


def prepare_fixture(name: str, cache: Path, seeds_per_class: int, fixture_seed: int, quick: bool) -> Fixture:
    """Train (or reuse) a fixture's model and write (or reuse) its seeds and space in ``cache``."""
    started = time.perf_counter()
    fixture = _BUILDERS[name](cache, seeds_per_class, fixture_seed, quick)
    logger.info("fixture %s ready in %.0f s: %s", name, time.perf_counter() - started, fixture.model)
    return fixture


def measure_ground_truth(fixture: Fixture, cache: Path, threshold: float, run_grid: Callable[[], Path]) -> GroundTruth:
    """The per-cell failure rates of ``run_grid()``'s run directory (every cell on every seed), cached in ``cache``."""
    import pandas as pd

    from fade_hub.landscape import LANDSCAPE_COLUMNS, cell_label
    from fade_hub.store import LANDSCAPE_FILE

    saved = cache / f"{fixture.model.name}-{fixture.seeds.stem}-grid.json"
    if saved.is_file():
        data = json.loads(saved.read_text(encoding="utf-8"))
    else:
        landscape = pd.read_parquet(run_grid() / LANDSCAPE_FILE).sort_values("action_id")
        names = [name for name in landscape.columns if name not in LANDSCAPE_COLUMNS]
        data = {
            "rates": landscape["failure_rate"].astype(float).tolist(),
            "queries_per_cell": int(landscape["queries"].min()),
            "labels": [cell_label(row, names) for _, row in landscape.iterrows()],
        }
        saved.write_text(json.dumps(data) + "\n", encoding="utf-8")
    return GroundTruth(np.asarray(data["rates"], dtype=float), data["queries_per_cell"], threshold, data["labels"])
