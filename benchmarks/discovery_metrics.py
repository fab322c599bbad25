"""The discovery benchmark's figures: per run (from its run directory) and per algorithm x budget (over run seeds).

Per run:

* hit rate = failing explore queries / explore queries;
* true cells found: true failure cells (ground-truth rate >= threshold) seen failing at least once;
* queries to 90 %: explore queries spent (query-log order) when 90 % of the true failure cells had each failed at
  least once; None when the run never got there;
* top-5 precision: the fraction of the run's 5 best-ranked failure modes
  (``fade_hub.landscape.failure_modes(landscape, top_k=5)``) that are true failure cells (out of 5: a missing
  mode counts as wrong);
* Spearman: rank correlation over all cells of the run's *predicted* landscape with the ground truth: the shared
  failure model (``fade_hub.explore.failure_model``) fitted on the run's seed-deduplicated explore counts per (class,
  cell), averaged over the classes in proportion to their seeds, so that a cell never asked has a prediction too
  (the same model for every algorithm: what its queries let one predict).

Regions (the unit fade-hub reports): a reported region (a failure mode of the ``regions`` config: confirmed, or
screened where nothing was held out) *finds* a planted mode when it holds the mode, on the grid's truth: at least
``HOLDS`` of the (class, cell) pairs the mode was planted on (``GroundTruth.planted_pairs``: a mode limited to
triangles is held by a region on triangle seeds), and the model really fails across it, its excess over the clean
rate (``GroundTruth.excess``) at least ``STRENGTH`` of the planted pairs' own. So a region a person would name for
the mode counts however the model spread the mode over neighbouring levels, and one that buries the mode in a wide
region where the model mostly works does not. (Jaccard >= 0.8 with the planted cells, the first yardstick, ignored
classes and failed a region drawn exactly where the model fails when the model failed wider than planted.) A region
also finds the mode when it is the grid's own region for it (``GroundTruth.grid_pairs``: Jaccard >= ``JACCARD`` over
(class, cell) pairs): a model that learned a mode narrower than planted (the text fixture fails
``wordy-triple-positive`` only under the lightest typos, 18 of its 36 cells) is found by the region the grid itself
reports, which holds only half the planted pairs. The modes
to find are those the grid's own characterization screens a region for (``GroundTruth.regions``). A reported region
that holds no mode is held to the truth: it is *false* when the model does not really fail there, that is when its
excess is below ``MIN_EXCESS``, and *other real* otherwise (a failure the model has that was not planted, or a
planted one cut in pieces: the fixtures' models fail in more places than their planted modes, e.g. mild typos). Per
run: planted modes found, false and other real regions (and false ones among the confirmed), and the explore
queries after which the screened regions of the log so far find every mode with no false one (checked every
``PREFIX_STEP`` queries and at the end; None when never).

Reachable: a run explores only the seeds it does not hold out to confirm (24 of the 48 image seeds, 16 of the 32
text seeds), and confirms on the others, while a planted mode is a region of the model over every seed: on the seeds
a run explores it may be framed otherwise or not be a region at all, and the held-out seeds may not fail on it often
enough to confirm it (``noisy-small-shapes`` fails on the smallest shapes only, a third of the seeds, and the more of
them the explored half holds, the fewer the held-out half does; ``wordy-triple-positive`` fails 90 / 72 / 45 % at its
three lightest typo levels, and the third is in the region or not as the seeds go). So each run is also measured
against what its seeds allow: the modes it would report had it asked every cell of its explored seeds
(``reachable_regions``): the regions its characterization screens given the grid's answers there (20 000 to 31 000
answers, 20 to 30 times the budget), confirmed as the run confirms (the same regions, plan, test and seed, the grid
answering the held-out queries). It is not a strict ceiling: a partial sample may frame a mode the full answers do
not, by chance (on shapes-mixed, ``covering``'s seed 1 and ``paper-dqn``'s seed 2 confirm ``noisy-small-shapes``,
which their seeds' full answers do not); but a search that would find on every seed a mode its seeds do not allow
cannot be built. The split depends on the run seed only, so every algorithm has the same reachable modes on a seed.
Over splits 0-39 of the shipped fixtures, every mode is reachable on 40 (shapes-hard), 9 (shapes-mixed:
``noisy-small-shapes`` is screened on 19, confirmed on 9) and 26 (text).

Per algorithm x budget: mean and std over run seeds, the ratio of the mean hit rate to ``random``'s, the queries
to 90 % with a run that never got there counted as its whole budget (``reached`` says how many did), and the
queries to all regions the same way, with their median and the worst seed's, and on how many seeds every mode
was reachable and the run found every reachable one with no false region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from discovery_fixtures import GroundTruth
from fade_hub.options import recorded_options

TOP_K = 5
COVERAGE = 0.9
HOLDS = 0.8  # a reported region finds a planted mode when it holds this share of the mode's (class, cell) pairs
STRENGTH = 0.5  # and its excess over the clean rate is at least this share of the planted pairs' own
JACCARD = 0.8  # or it is the grid's own region for the mode: Jaccard >= this over (class, cell) pairs
MIN_EXCESS = 0.05  # a reported region is real when the grid's rate there exceeds the clean rate by this much
PREFIX_STEP = 50  # explore queries between the checks of queries-to-all-regions
BASELINE = "random"
STATS = ("failures", "hit_rate", "true_cells_found", "true_cells_fraction", "queries_to_90", "top5_precision",
         "spearman", "seconds", "regions_found", "false_regions", "other_real_regions", "false_confirmed",
         "queries_to_all_regions")


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    ra = pd.Series(np.asarray(a, dtype=float)).rank(method="average").to_numpy()
    rb = pd.Series(np.asarray(b, dtype=float)).rank(method="average").to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def first_failures(explore_rows: pd.DataFrame, cells: set[int]) -> dict[int, int]:
    """For each of ``cells`` that failed: the explore query count at its first failure (1-based)."""
    failing = explore_rows[explore_rows["is_failure"] & explore_rows["action_id"].isin(cells)]
    first = failing.groupby("action_id")["position"].min()
    return {int(cell): int(position) + 1 for cell, position in first.sort_values().items()}


def queries_to_cover(first: dict[int, int], cells: set[int], fraction: float = COVERAGE) -> int | None:
    """Explore queries spent when ``fraction`` of ``cells`` had each failed at least once; None if never."""
    needed = math.ceil(fraction * len(cells) - 1e-9)
    times = sorted(t for cell, t in first.items() if cell in cells)
    return times[needed - 1] if cells and len(times) >= needed else None


def coverage_curve(first: dict[int, int], length: int) -> np.ndarray:
    """True cells seen failing after each explore query (index i = after i + 1 queries)."""
    return np.searchsorted(np.sort(list(first.values())), np.arange(1, length + 1), side="right")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index of two boolean masks (0 when both are empty)."""
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def match_regions(reported: pd.DataFrame, truth: GroundTruth, space: Any) -> dict[str, Any]:
    """Which planted modes the reported regions (rows with ``region_id``) find, and how many of the others are false
    or real (see module doc)."""
    modes = {name: truth.planted_pairs(name) for name in truth.regions}
    strength = {name: truth.excess(planted) for name, planted in modes.items()}
    grid = {name: truth.grid_pairs(name) for name in truth.regions}
    found: set[str] = set()
    false = other = 0
    for region_id in reported["region_id"]:
        pairs = truth.region_pairs(str(region_id), space)
        excess = truth.excess(pairs)
        held = [name for name, planted in modes.items()
                if (pairs & planted).sum() >= HOLDS * planted.sum() and excess >= STRENGTH * strength[name]
                or jaccard(pairs, grid[name]) >= JACCARD]
        found.update(held)
        if not held:
            false += excess < MIN_EXCESS
            other += excess >= MIN_EXCESS
    return {"found": sorted(found), "false": false, "other": other}


@dataclass
class LoggedRun:
    """What the region figures read from a run directory, read once: its record, query records, held-out seeds,
    concept space and the landscape options it recorded."""

    meta: dict[str, Any]
    records: list[dict[str, Any]]
    held: set[str]
    space: Any
    config: Any

    @classmethod
    def read(cls, run_dir: Path) -> LoggedRun:
        """Read a finished run directory."""
        from fade_hub.landscape import LandscapeConfig
        from fade_hub.perturb import ConceptSpace
        from fade_hub.store import RunStore

        store = RunStore(run_dir)
        meta = store.read_meta()
        return cls(meta, store.read_queries(), set((meta.get("confirmation") or {}).get("held_out") or []),
                   ConceptSpace.from_dict(meta["space"]), LandscapeConfig.from_options(recorded_options(meta)))

    def phase(self, name: str) -> list[dict[str, Any]]:
        """The query records of one phase, in log order."""
        return [r for r in self.records if r["phase"] == name]

    def screened_match(self, records: list[dict[str, Any]] | pd.DataFrame, truth: GroundTruth) -> dict[str, Any]:
        """``match_regions`` of the screened regions that the run's characterization finds in ``records``."""
        from fade_hub.characterize import characterize

        regions = characterize(records, self.space, config=self.config, held_out=self.held).regions
        return match_regions(regions[regions["screened"].astype(bool)], truth, self.space)


def queries_to_all_regions(run: LoggedRun, truth: GroundTruth) -> int | None:
    """Explore queries after which the screened regions of the log so far find every planted region and none of
    them is false, or None."""
    clean, explored = run.phase("clean"), run.phase("explore")
    for end in [*range(PREFIX_STEP, len(explored), PREFIX_STEP), len(explored)]:
        match = run.screened_match(clean + explored[:end], truth)
        if len(match["found"]) == len(truth.regions) and not match["false"]:
            return end
    return None


def reachable_regions(run: LoggedRun, truth: GroundTruth) -> list[str]:
    """The planted modes a run would report had it asked every cell of the seeds it explored: the regions its
    characterization screens given the grid's answers there, confirmed as the run confirms (see module doc)."""
    from fade_hub.characterize import characterize
    from fade_hub.explore.confirm import plan_confirmation
    from fade_hub.seeds import Seed

    explored = sorted({r["seed_id"] for r in run.records if r["phase"] in ("clean", "explore")} - run.held)
    cells = np.arange(len(truth.rates))
    every = pd.DataFrame({
        "action_id": np.tile(cells, len(explored)),
        "phase": "explore",
        "seed_id": np.repeat(explored, len(cells)),
        "context": np.repeat([truth.seed_classes[seed] for seed in explored], len(cells)),
        "is_failure": np.concatenate([truth.seed_failures[seed] for seed in explored]),
    })  # fmt: skip
    ideal = pd.concat([pd.DataFrame(run.phase("clean"))[list(every.columns)], every], ignore_index=True)
    top = int(recorded_options(run.meta).get("confirm_top", 0))
    if not run.held or top <= 0:
        return run.screened_match(ideal, truth)["found"]
    held = [Seed(seed, None, context=truth.seed_classes[seed] or None) for seed in run.meta["confirmation"]["held_out"]]
    confirmation, pairs = plan_confirmation(ideal, run.space, held, top=top, config=run.config,
                                            random_seed=int(run.meta["seed"]))
    answers = pd.DataFrame({
        "action_id": [cell for cell, _ in pairs],
        "phase": "confirm",
        "seed_id": [seed for _, seed in pairs],
        "context": [truth.seed_classes[seed] for _, seed in pairs],
        "is_failure": [bool(truth.seed_failures[seed][cell]) for cell, seed in pairs],
    }, columns=every.columns)  # fmt: skip
    regions = characterize(pd.concat([ideal, answers], ignore_index=True), run.space, config=run.config,
                           confirmation=confirmation).regions
    return match_regions(regions[regions["confirmed"].astype(bool)], truth, run.space)["found"]


def predicted_landscape(queries: pd.DataFrame, space: Any) -> np.ndarray:
    """Each cell's failure rate as the shared failure model predicts it from a run's explore queries (see module
    doc)."""
    from fade_hub.evidence import Evidence, cell_counts
    from fade_hub.explore.failure_model import FailureModel
    from fade_hub.regions import RegionGrid

    explore = Evidence.from_queries(queries).phase("explore")
    grid = RegionGrid(space, explore["context"].unique())
    classes = grid.class_index(explore["context"].tolist())
    k, n = cell_counts(explore, space.num_cells, classes, grid.num_classes)
    model = FailureModel(space.shape, grid.num_classes).fit_counts(k, n)
    return model.landscape(n.sum(axis=1) + 1.0)


def region_metrics(run_dir: Path, truth: GroundTruth) -> dict[str, Any]:
    """A run's regions against the planted ones and the grid's truth (see module doc)."""
    from fade_hub.run import Run

    run = Run.open(run_dir)
    logged = LoggedRun.read(run_dir)
    space = logged.space
    regions = run.regions
    reported = regions[regions["is_mode"].astype(bool)]
    match = match_regions(reported, truth, space)
    confirmed = match_regions(reported[reported["confirmed"].astype(bool)], truth, space)
    return {
        "regions": [{"description": str(r.description), "cells": len(r.cells), "confirmed": bool(r.confirmed),
                     "true_excess": round(truth.true_excess(str(r.region_id), space), 3)}
                    for r in reported.itertuples()],
        "planted_found": match["found"],
        "regions_found": len(match["found"]),
        "false_regions": match["false"],
        "other_real_regions": match["other"],
        "false_confirmed": confirmed["false"],
        "queries_to_all_regions": queries_to_all_regions(logged, truth),
        "reachable": reachable_regions(logged, truth),
    }


def run_metrics(run_dir: Path, truth: GroundTruth) -> dict[str, Any]:
    """The benchmark's figures for one finished run directory."""
    from fade_hub.landscape import failure_modes
    from fade_hub.perturb import ConceptSpace
    from fade_hub.store import LANDSCAPE_FILE, RunStore

    queries = pd.DataFrame(RunStore(run_dir).read_queries()).sort_values("query_id")
    explore_rows = queries[queries["phase"] == "explore"].reset_index(drop=True)
    explore_rows["position"] = np.arange(len(explore_rows))
    landscape = pd.read_parquet(run_dir / LANDSCAPE_FILE).sort_values("action_id")
    true_cells = truth.cells()
    modes = [int(a) for a in failure_modes(landscape, top_k=TOP_K)["action_id"]]
    failures = int(explore_rows["is_failure"].sum())
    estimate = predicted_landscape(queries, ConceptSpace.from_dict(RunStore(run_dir).read_meta()["space"]))
    first = first_failures(explore_rows, true_cells)
    return {
        "queries": int(len(explore_rows)),
        "failures": failures,
        "hit_rate": failures / max(len(explore_rows), 1),
        "true_cells_found": len(first),
        "true_cells_fraction": len(first) / max(len(true_cells), 1),
        "queries_to_90": queries_to_cover(first, true_cells),
        "true_cells_first_failure": {str(cell): t for cell, t in first.items()},
        "top_modes": modes,
        "top5_precision": sum(a in true_cells for a in modes) / TOP_K,
        "spearman": _finite(spearman(estimate, truth.rates)),
        **region_metrics(run_dir, truth),
    }


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and (population) std of the non-missing values, with how many there were."""
    present = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not present:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(present)), "std": float(np.std(present)), "n": len(present)}


def summarize_runs(runs: list[dict[str, Any]], fixture: str, algorithms: Sequence[str], budgets: Sequence[int],
                   planted: int) -> list[dict[str, Any]]:
    """One row per algorithm x budget of one fixture (``planted`` regions to find): mean / std over seeds, the ratio
    to random, and how many seeds could reach every region and found what they could reach."""
    rows = []
    for algorithm in algorithms:
        for budget in budgets:
            group = [r for r in runs if r["fixture"] == fixture and r["algorithm"] == algorithm and r["budget"] == budget]
            if not group:
                continue
            row: dict[str, Any] = {"fixture": fixture, "algorithm": algorithm, "budget": budget,
                                   "seeds": [r["seed"] for r in group]}
            for key in STATS:
                row[key] = mean_std([r[key] for r in group])
            # a run that never reached 90 % counts as its whole budget
            row["queries_to_90_or_budget"] = mean_std([r["queries_to_90"] or r["queries"] for r in group])
            row["reached_90"] = sum(r["queries_to_90"] is not None for r in group)
            # a run that never found every planted region counts as its whole budget
            to_all = [r["queries_to_all_regions"] or r["queries"] for r in group]
            row["queries_to_all_regions_or_budget"] = mean_std(to_all)
            row["queries_to_all_regions_median"] = float(np.median(to_all))
            row["queries_to_all_regions_worst"] = max(to_all)
            row["found_all_regions"] = sum(r["queries_to_all_regions"] is not None for r in group)
            worst = min(group, key=lambda r: (r["regions_found"], -r["false_regions"]))
            row["worst_seed"] = worst["seed"]
            row["worst_seed_regions_found"] = worst["regions_found"]
            row["worst_seed_false_regions"] = max(r["false_regions"] for r in group)
            row["seeds_all_reachable"] = sum(len(r["reachable"]) == planted for r in group)
            row["found_all_reachable"] = sum(set(r["planted_found"]) >= set(r["reachable"]) and not r["false_regions"]
                                             for r in group)
            rows.append(row)
    for row in rows:
        base = next((b for b in rows if b["algorithm"] == BASELINE and b["budget"] == row["budget"]), None)
        base_rate = base["hit_rate"]["mean"] if base else None
        row["ratio_vs_random"] = row["hit_rate"]["mean"] / base_rate if base_rate else None
        per_seed = [_seed_ratio(runs, row, seed) for seed in row["seeds"]]
        row["ratio_vs_random_min_seed"] = min(per_seed) if per_seed and None not in per_seed else None
    return rows


def _seed_ratio(runs: list[dict[str, Any]], row: dict[str, Any], seed: int) -> float | None:
    """The hit-rate ratio to random of one run seed."""
    def rate(algorithm: str) -> float | None:
        return next((r["hit_rate"] for r in runs if (r["fixture"], r["algorithm"], r["budget"], r["seed"])
                     == (row["fixture"], algorithm, row["budget"], seed)), None)

    mine, base = rate(row["algorithm"]), rate(BASELINE)
    return mine / base if mine is not None and base else None
