"""The discovery benchmark's fixtures: real models with planted failures, their seeds and spaces, and their ground truth.

* ``shapes``: the demo's shapes ResNet (``fade_hub.demo.shapes``) over ``builtin:demo-shapes`` (125 cells). It
  fails where its training data never went: its planted region is rotation ±30 and brightness 0.2 (10 cells), on
  squares and triangles (a turned circle is the same circle).
* ``shapes-hard``: a shapes ResNet over rotation x brightness x saturation x noise (1296 cells) with three small
  planted modes, one only where two factors meet (``fade_hub.testing.planted.HARD_IMAGE``).
* ``shapes-mixed``: a shapes ResNet over the same space with three planted regions of different sizes and strengths:
  216 cells failing on about 30 % of the seeds, a 36-cell two-factor interaction and 72 cells failing on squares
  only
  (``fade_hub.testing.planted.MIXED_IMAGE``).
* ``text``: a small BERT sentiment classifier over stop-words x shuffle x repeat x typos (1296 cells) with three
  small planted modes and mild typos (``fade_hub.testing.planted_text.TEXT``).

The planted fixtures' models are shipped trained (``benchmarks/fixtures``, fixture seed 0): trained anew on another
CPU they get other weights, and the modes the grid screens may change with them (the text model trained on one
machine failed ``wordy-triple-positive`` on 18 cells at 0.35, on another at 0.19, below the screen).
``--train-fixtures`` trains them on this machine instead, once per cache folder. The ground truth of a fixture is
``grid``: every cell on every seed input (no held-out split), cached next to the model as JSON with the regions to
find. A model trained to fail in a planted mode fails in a region that may be wider or narrower than planted (a
factor it cannot see under another perturbation, e.g. saturation under heavy noise, spreads the mode over that
factor's levels): the region to find for a mode is judged on the grid's own failure rates:
``GroundTruth.planted_pairs`` are the (class, cell) pairs a mode was planted on (its cells, on the classes it holds
for), and ``GroundTruth.excess`` the grid's rate over a set of pairs above the clean rate of their classes. A mode
counts as one to find when the grid's own characterization screens a region holding some of its cells
(``grid_regions``, recorded with the planted cells).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

logger = logging.getLogger("discovery")

FIXTURES = ("shapes", "shapes-hard", "shapes-mixed", "text")
# bump a planted fixture's version when its definition or training changes (its cache is keyed by it)
PLANTED_VERSIONS = {"shapes-hard": "v2", "shapes-mixed": "v3", "text": "v5"}
QUICK_STEPS = 20  # training steps of the planted fixtures in --quick mode (a smoke run, not a real fixture)
GRID_VERSION = "v5"  # bump when what the cached ground truth holds changes (v5: each seed's answers)
# the planted fixtures' trained weights (fixture seed 0), the same bytes on every machine: training them anew on
# another CPU gives other weights, and the modes the grid screens (the modes to find) may change with them
SHIPPED = Path(__file__).parent / "fixtures"


@dataclass
class Fixture:
    """A prepared fixture: the model folder, the seed source, the concept space, what it is, and its planted regions
    (name -> the cells of the space each covers)."""

    name: str
    model: Path
    seeds: Path
    space: str
    modality: str
    description: str
    planted: dict[str, list[int]]
    planted_classes: dict[str, list[str]] = field(default_factory=dict)  # a mode limited to some classes: its classes


@dataclass
class GroundTruth:
    """Per-cell failure rate of a fixture measured by ``grid`` over every seed input."""

    rates: np.ndarray
    queries_per_cell: int
    threshold: float
    labels: list[str]
    regions: dict[str, list[int]]  # the regions to find: per planted mode, its region in the grid (name -> cells)
    planted: dict[str, list[int]]  # the planted modes as defined: name -> cells
    classes: list[str]  # the seed classes of the grid's pair rates (one empty name when the class is not a factor)
    pair_rates: np.ndarray  # (classes, cells): the failure rate of every class at every cell, over every seed
    clean_rates: np.ndarray  # (classes,): the failure rate of each class's unperturbed seeds
    planted_classes: dict[str, list[str]] = field(default_factory=dict)  # a mode limited to some classes: its classes
    seed_failures: dict[str, np.ndarray] = field(default_factory=dict)  # seed id -> whether it failed, per cell
    seed_classes: dict[str, str] = field(default_factory=dict)  # seed id -> its class ("" when none)

    def region_pairs(self, region_id: str, space: Any) -> np.ndarray:
        """The (class, cell) pairs a reported region admits, as a boolean array over the grid's classes and cells."""
        from fade_hub.regions import RegionGrid

        grid = RegionGrid(space, self.classes)
        return grid.parse(region_id).pair_mask(grid.shape, grid.num_classes)

    def planted_pairs(self, name: str) -> np.ndarray:
        """The (class, cell) pairs a mode was planted on: its cells, on the classes it holds for (every class when
        it is not limited, or when the grid has no classes)."""
        return self._on_mode_classes(name, self.planted[name])

    def grid_pairs(self, name: str) -> np.ndarray:
        """The (class, cell) pairs of the grid's own region for a mode (``regions``): its cells, on the classes the
        mode was planted on (every class when it is not limited)."""
        return self._on_mode_classes(name, self.regions.get(name, []))

    def _on_mode_classes(self, name: str, cells: list[int]) -> np.ndarray:
        """``cells`` on the classes mode ``name`` holds for, as a boolean array over the grid's classes and cells."""
        mask = np.zeros(self.pair_rates.shape, dtype=bool)
        limited = self.planted_classes.get(name)
        rows = [i for i, c in enumerate(self.classes) if not limited or c in limited] or list(range(len(self.classes)))
        mask[np.ix_(rows, cells)] = True
        return mask

    def excess(self, pairs: np.ndarray) -> float:
        """How much more often the model really fails on these (class, cell) pairs (the grid's rate over them) than
        on the clean seeds of their classes."""
        return float(self.pair_rates[pairs].mean() - self.clean_rates[pairs.any(axis=1)].mean())

    def true_excess(self, region_id: str, space: Any) -> float:
        """A reported region's ``excess``: the truth a reported region is held to."""
        return self.excess(self.region_pairs(region_id, space))

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
            "planted_regions": {name: {"cells": cells, "mean_rate": float(self.rates[cells].mean()),
                                       "grid_region": self.regions.get(name),
                                       "grid_region_rate": float(self.rates[self.regions[name]].mean())
                                       if name in self.regions else None}
                                for name, cells in self.planted.items()},
            "failing_cells": [
                {"action_id": int(i), "cell": self.labels[i], "failure_rate": float(self.rates[i])}
                for i in order if self.rates[i] > 0
            ],
            "rates": [float(r) for r in self.rates],
        }


def _shapes(cache: Path, seeds_per_class: int, fixture_seed: int, quick: bool, trained: bool = False) -> Fixture:
    from fade_hub.demo.shapes import SHIPPED_MODEL, shipped_model_dir, write_seed_folder

    model = shipped_model_dir()
    seeds = cache / f"{SHIPPED_MODEL}-seeds-{seeds_per_class}-{1000 + fixture_seed}"
    if not seeds.is_dir():
        write_seed_folder(seeds, seeds_per_class, seed=1000 + fixture_seed)
    return Fixture("shapes", model, seeds, "builtin:demo-shapes", "image",
                   "the demo's shapes ResNet: very dark shapes rotated past 10 degrees were never in its training data "
                   "(125 cells)", {"dark-and-tilted": demo_region_cells()},
                   {"dark-and-tilted": ["square", "triangle"]})  # a turned circle is the same circle


def demo_region_cells() -> list[int]:
    """The cells of the demo model's training gap in its space: rotation ±30 and brightness 0.2, any saturation."""
    from fade_hub.perturb import load_space

    space = load_space("builtin:demo-shapes")
    return [a for a in range(space.num_cells)
            if space.level_strings(space.action_from_id(a))["rotation"] in ("-30", "30")
            and space.level_strings(space.action_from_id(a))["brightness"] == "0.2"]


def planted_region_classes(spec: Any) -> dict[str, list[str]]:
    """The planted modes of a fixture limited to some seed classes: name -> those classes."""
    return {mode.name: list(mode.classes) for mode in spec.modes if mode.classes}


def planted_region_cells(spec: Any) -> dict[str, list[int]]:
    """Each planted mode of a fixture as the cells it covers (for any class)."""
    names = spec.factor_names
    cells = {}
    for mode in spec.modes:
        covered = [a for a, cell in enumerate(np.ndindex(*spec.shape))
                   if any(mode.covers(names, cell, c) for c in mode.classes or ("",))]
        cells[mode.name] = covered
    return cells


def _planted(name: str) -> Callable[..., Fixture]:
    """The builder of a planted fixture of ``fade_hub.testing``: its model, seeds and space (a few steps if quick)."""
    from fade_hub.testing.planted import HARD_IMAGE, MIXED_IMAGE, train_planted_classifier, write_vivid_seed_folder
    from fade_hub.testing.planted_text import TEXT, train_planted_text_classifier, write_sentence_seeds

    spec, train, write_seeds, suffix = {
        "shapes-hard": (HARD_IMAGE, train_planted_classifier, write_vivid_seed_folder, ""),
        "shapes-mixed": (MIXED_IMAGE, train_planted_classifier, write_vivid_seed_folder, ""),
        "text": (TEXT, train_planted_text_classifier, write_sentence_seeds, ".jsonl"),
    }[name]

    def build(cache: Path, seeds_per_class: int, fixture_seed: int, quick: bool, trained: bool = False) -> Fixture:
        version = f"{spec.name}-{PLANTED_VERSIONS[name]}" + ("-quick" if quick else "")
        shipped = SHIPPED / version
        own = trained or quick or fixture_seed != 0 or not shipped.is_dir()
        folder = cache / (version if own else f"{version}-shipped")
        if not own and not (folder / "model.safetensors").exists():
            shutil.copytree(shipped, folder, dirs_exist_ok=True)
        model = train(folder, spec, seed=fixture_seed, steps=QUICK_STEPS if quick else None)
        seeds = cache / f"{version}-seeds-{seeds_per_class}-{fixture_seed}{suffix}"
        if not seeds.exists():
            write_seeds(seeds, seeds_per_class, seed=1000 * (2 + fixture_seed))
        space = spec.write_space(cache / f"{version}-space.yaml")
        return Fixture(name, model, seeds, str(space), spec.space["modality"], spec.description,
                       planted_region_cells(spec), planted_region_classes(spec))

    return build


_BUILDERS: dict[str, Callable[..., Fixture]] = {
    "shapes": _shapes, "shapes-hard": _planted("shapes-hard"), "shapes-mixed": _planted("shapes-mixed"),
    "text": _planted("text"),
}


def prepare_fixture(name: str, cache: Path, seeds_per_class: int, fixture_seed: int, quick: bool,
                    trained: bool = False) -> Fixture:
    """Copy the shipped weights of a fixture's model into ``cache`` (or train them there: ``trained``, ``quick``,
    another ``fixture_seed``, or none shipped; reused once there) and write (or reuse) its seeds and space."""
    started = time.perf_counter()
    fixture = _BUILDERS[name](cache, seeds_per_class, fixture_seed, quick, trained)
    logger.info("fixture %s ready in %.0f s: %s", name, time.perf_counter() - started, fixture.model)
    return fixture


def grid_regions(run_dir: Path, planted: dict[str, list[int]]) -> dict[str, list[int]]:
    """The regions the model really has, as its grid run says: for each planted mode, the screened region of the
    grid's characterization (every cell on every seed) that holds most of the mode's cells, by the mode's name
    (a mode the grid finds no screened region for is left out: nothing can find it)."""
    from fade_hub.run import Run

    regions = Run.open(run_dir).regions
    screened = [list(map(int, cells)) for cells in regions.loc[regions["screened"].astype(bool), "cells"]]
    found = {}
    for name, cells in planted.items():
        overlaps = [len(set(region) & set(cells)) for region in screened]
        if overlaps and max(overlaps) > 0:
            found[name] = screened[int(np.argmax(overlaps))]
    return found


def measure_ground_truth(fixture: Fixture, cache: Path, threshold: float, run_grid: Callable[[], Path]) -> GroundTruth:
    """The per-cell failure rates and the regions of ``run_grid()``'s run directory (every cell on every seed),
    cached in ``cache``."""
    import pandas as pd

    from fade_hub.landscape import LANDSCAPE_COLUMNS, cell_label
    from fade_hub.store import LANDSCAPE_FILE

    saved = cache / f"{fixture.model.name}-{fixture.seeds.stem}-grid-{GRID_VERSION}.json"
    if saved.is_file():
        data = json.loads(saved.read_text(encoding="utf-8"))
    else:
        run = run_grid()
        landscape = pd.read_parquet(run / LANDSCAPE_FILE).sort_values("action_id")
        names = [name for name in landscape.columns if name not in LANDSCAPE_COLUMNS]
        data = {
            "rates": landscape["failure_rate"].astype(float).tolist(),
            "queries_per_cell": int(landscape["seeds"].min()),
            "labels": [cell_label(row, names) for _, row in landscape.iterrows()],
            "regions": grid_regions(run, fixture.planted),
            **pair_truth(run),
        }
        saved.write_text(json.dumps(data) + "\n", encoding="utf-8")
    cells = len(data["rates"])
    return GroundTruth(np.asarray(data["rates"], dtype=float), data["queries_per_cell"], threshold, data["labels"],
                       data["regions"], fixture.planted, data["classes"], np.asarray(data["pair_rates"], dtype=float),
                       np.asarray(data["clean_rates"], dtype=float), fixture.planted_classes,
                       {seed: _unpack(bits, cells) for seed, (_, bits) in data["seeds"].items()},
                       {seed: label for seed, (label, _) in data["seeds"].items()})


def pair_truth(run_dir: Path) -> dict[str, Any]:
    """The grid run's failure rate per (class, cell) and per class on clean seeds, as the scan of regions sees
    classes (``fade_hub.regions.RegionGrid``), and each seed's answers: its class and whether it failed, per cell."""
    import pandas as pd

    from fade_hub.evidence import Evidence, cell_counts
    from fade_hub.perturb import ConceptSpace
    from fade_hub.regions import RegionGrid
    from fade_hub.store import RunStore

    store = RunStore(run_dir)
    space = ConceptSpace.from_dict(store.read_meta()["space"])
    evidence = Evidence.from_queries(store.read_queries())
    explore = evidence.phase("explore")
    grid = RegionGrid(space, explore["context"].unique())
    k, n = cell_counts(explore, space.num_cells, grid.class_index(explore["context"].tolist()), grid.num_classes)
    clean = evidence.clean(held_out=None)
    clean_class = grid.class_index(clean["context"].tolist())
    clean_rates = [float(clean.loc[clean_class == c, "failure"].mean()) if (clean_class == c).any() else 0.0
                   for c in range(grid.num_classes)]
    seeds = dict(zip(explore["seed_id"], explore["context"]))
    rows = pd.Index(list(seeds)).get_indexer(explore["seed_id"])
    failed = np.zeros((len(seeds), space.num_cells), dtype=bool)
    # a deterministic target answers each (seed, cell) once: a share of 0 or 1
    failed[rows, explore["action_id"].to_numpy(dtype=int)] = explore["failure"].to_numpy() >= 0.5
    return {"classes": list(grid.classes) or [""], "pair_rates": (k / np.maximum(n, 1)).tolist(),
            "clean_rates": clean_rates,
            "seeds": {seed: [label, _pack(row)] for (seed, label), row in zip(seeds.items(), failed)}}


def _pack(failed: np.ndarray) -> str:
    """A seed's failures over the cells as a hex string (one bit per cell)."""
    return np.packbits(failed).tobytes().hex()


def _unpack(bits: str, cells: int) -> np.ndarray:
    """The failures per cell that ``_pack`` wrote."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(bits), dtype=np.uint8))[:cells].astype(bool)
