"""Characterize a run: its landscape and its failure regions, with the screening and confirmation statistics.

Screening (the exploration's own seeds, chosen adaptively, so it only *proposes*): each region found by the scan
(``fade_hub.regions``) against the clean failures of the exploration seeds of the classes it holds on, one-sided
Fisher; the table lists the scan's regions up to the first whose p-value is above ``alpha`` (the later ones only
get weaker), Benjamini-Hochberg over those; ``screened`` when the adjusted p-value is at most ``alpha`` and the
lower excess bound at least ``min_excess``.

Confirmation (held-out seeds the search never saw, one query per seed and region, at the region's cells in
rotation; ``explore.confirm`` asks them) *decides*, with one test per region and Holm's adjustment across the
regions tested. The test is chosen from the exploration seeds before any held-out query, and recorded:

* ``pooled``: against the clean failures of every seed (exploration and held-out) of the region's classes, a
  one-sided Fisher exact test; the clean queries are not chosen adaptively, so pooling them is valid;
* ``paired`` (the exploration seeds' clean failure rate is at least ``paired_above``): each held-out seed's
  answer in the region against its own clean answer, exact McNemar mid-p;
* ``paired-outside`` (prompt spaces: no unperturbed form): each held-out seed's answer in the region against its
  answer at a random cell outside every tested region.

A region is confirmed when the adjusted p-value is at most ``alpha`` and the lower 95 % bound of its excess
failure rate (Newcombe's interval, independent or paired) is at least ``min_excess``. Inside a confirmed region
its cells are tested on the same held-out queries, Benjamini-Hochberg within the region (hierarchical testing):
a drill-down, not a separate discovery.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .evidence import Evidence, cell_counts, whole
from .landscape import LandscapeConfig, baseline_counts, cell_table, rank_cells
from .perturb.concepts import ConceptSpace
from .regions import Region, RegionGrid
from .options import recorded_options
from .stats import (
    benjamini_hochberg,
    fisher_greater,
    holm,
    mcnemar_greater,
    newcombe_difference,
    newcombe_paired_difference,
    wilson_interval,
)

TESTS = {
    "pooled": "one-sided Fisher exact test against the clean failures of every seed of the region's classes",
    "paired": "exact McNemar mid-p test of each held-out seed's answer in the region against its own clean answer",
    "paired-outside": "exact McNemar mid-p test of each held-out seed's answer in the region against its answer at "
                      "a random cell outside every tested region",
}
REGION_COLUMNS = [
    "region_id", "rank", "description", "factors", "cells", "num_cells", "classes", "scan_llr",
    "seeds", "failures", "failure_rate", "ci_low", "ci_high", "outside_seeds", "outside_failures", "outside_rate",
    "clean_seeds", "clean_failures", "clean_rate", "excess", "excess_low", "excess_high", "screen_p", "screen_q",
    "screened", "class_rates", "confirm_test", "confirm_seeds", "confirm_failures", "confirm_rate", "confirm_ci_low",
    "confirm_ci_high", "confirm_baseline_seeds", "confirm_baseline_failures", "confirm_baseline_rate",
    "confirm_excess", "confirm_excess_low", "confirm_excess_high", "confirm_p", "confirm_p_holm", "confirmed",
    "is_mode",
]  # fmt: skip


@dataclass
class Confirmation:
    """How a run confirms its regions: the test, the regions tested (ids, in scan order), the held-out seeds and the
    exploration seeds' clean failure rate the test was chosen on (``run.json``'s ``confirmation``)."""

    test: str
    regions: list[str] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)
    clean_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``run.json`` form (the test described in words too)."""
        return {"test": self.test, "test_description": TESTS[self.test], "regions": list(self.regions),
                "held_out": list(self.held_out), "clean_rate": self.clean_rate}

    @classmethod
    def from_meta(cls, meta: dict) -> Confirmation | None:
        """The confirmation a run recorded, or None (no held-out seeds, or a run made before regions existed)."""
        data = meta.get("confirmation")
        if not isinstance(data, dict) or data.get("test") not in TESTS:
            return None
        return cls(data["test"], list(data.get("regions") or []), list(data.get("held_out") or []),
                   data.get("clean_rate"))


def choose_test(evidence: Evidence, config: LandscapeConfig) -> tuple[str, float | None]:
    """The confirmation test (and the exploration seeds' clean rate it was chosen on), from exploration seeds only."""
    if not evidence.has_clean:
        return "paired-outside", None
    k, n = baseline_counts(evidence.clean(held_out=False))
    rate = k / n if n else 0.0
    return ("paired" if rate >= config.paired_above else "pooled"), rate


@dataclass
class Characterization:
    """A run's landscape (one row per cell), its regions (one row per region, ranked) and its clean baseline."""

    landscape: pd.DataFrame
    regions: pd.DataFrame
    grid: RegionGrid
    clean: dict
    confirmation: Confirmation | None = None

    def region(self, region_id: str) -> Region:
        """The region a row of ``regions`` names."""
        return self.grid.parse(region_id)


def characterize(queries: pd.DataFrame | list[dict], space: Any, *, policy_probs: np.ndarray | None = None,
                 config: LandscapeConfig | None = None, confirmation: Confirmation | None = None,
                 held_out: set[str] | None = None) -> Characterization:
    """The landscape and the regions of a run's query records (see the module doc for the tests)."""
    config = config or LandscapeConfig()
    if held_out is None and confirmation is not None:
        held_out = set(confirmation.held_out)
    evidence = Evidence.from_queries(queries, held_out)
    landscape = cell_table(evidence, space, policy_probs, config)
    grid = RegionGrid(space, evidence.pairs["context"].unique())
    regions = _region_table(evidence, grid, landscape, config, confirmation)
    _mark_cells(landscape, regions, evidence, grid, config, confirmation)
    landscape["rank"] = rank_cells(landscape)
    return Characterization(landscape, regions, grid, evidence.clean_summary(), confirmation)


def characterize_run(meta: dict, queries: pd.DataFrame | list[dict], policy: list[float] | None = None
                     ) -> Characterization:
    """A run's landscape and regions from its records, under the options and the confirmation it recorded."""
    space = ConceptSpace.from_dict(meta["space"])
    return characterize(queries, space, policy_probs=np.asarray(policy) if policy is not None else None,
                        config=LandscapeConfig.from_options(recorded_options(meta)),
                        confirmation=Confirmation.from_meta(meta))


def compute_landscape(queries: pd.DataFrame | list[dict], space: Any, policy_probs: np.ndarray | None = None,
                      config: LandscapeConfig | None = None, confirmation: Confirmation | None = None) -> pd.DataFrame:
    """The landscape alone (see ``fade_hub.landscape``)."""
    return characterize(queries, space, policy_probs=policy_probs, config=config, confirmation=confirmation).landscape


def explore_counts(evidence: Evidence, grid: RegionGrid, judged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(failures, seeds) per (class, cell) of the exploration, judged cells only."""
    explore = evidence.phase("explore")
    k, n = cell_counts(explore, len(judged), grid.class_index(explore["context"].tolist()), grid.num_classes)
    return k * judged, n * judged


def _clean_of(clean: pd.DataFrame, grid: RegionGrid, region: Region) -> pd.DataFrame:
    """The clean pairs of the classes a region holds on."""
    if region.classes is None:
        return clean
    return clean[np.isin(grid.class_index(clean["context"].tolist()), list(region.classes))]


def _region_table(evidence: Evidence, grid: RegionGrid, landscape: pd.DataFrame, config: LandscapeConfig,
                  confirmation: Confirmation | None) -> pd.DataFrame:
    """One row per region found by the scan, screened and (when recorded) confirmed, ranked."""
    judged = landscape["judged"].to_numpy(dtype=bool)
    k, n = explore_counts(evidence, grid, judged)
    rows = []
    for region, llr in grid.scan(k, n, max_regions=config.max_regions, tolerance=config.simpler_within):
        row = _screening_row(evidence, grid, region, llr, k, n, judged)
        if row["screen_p"] > config.alpha:  # the scan's next regions only get weaker: stop at the first that is not
            break
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[c for c in REGION_COLUMNS if not c.startswith("confirm") and c not in
                                        ("screen_q", "screened", "rank", "is_mode")])
    frame["screen_q"] = benjamini_hochberg(frame["screen_p"].to_numpy(dtype=float)) if len(frame) else []
    with np.errstate(invalid="ignore"):
        frame["screened"] = (frame["screen_q"] <= config.alpha) & (frame["excess_low"] >= config.min_excess)
    _confirm(frame, evidence, grid, config, confirmation)
    tested = frame["confirm_test"] != ""
    frame["is_mode"] = np.where(tested, frame["confirmed"], frame["screened"] & (confirmation is None))
    best_low = np.where(tested, frame["confirm_excess_low"], frame["excess_low"])
    order = pd.DataFrame({"mode": frame["is_mode"], "confirmed": frame["confirmed"], "screened": frame["screened"],
                          "low": np.nan_to_num(best_low, nan=-2.0), "llr": frame["scan_llr"]})
    ranked = order.sort_values(["mode", "confirmed", "screened", "low", "llr"], ascending=False, kind="mergesort").index
    frame["rank"] = 0
    frame.loc[ranked, "rank"] = np.arange(1, len(frame) + 1)
    return frame.sort_values("rank")[REGION_COLUMNS].reset_index(drop=True)


def _screening_row(evidence: Evidence, grid: RegionGrid, region: Region, llr: float, k: np.ndarray, n: np.ndarray,
                   judged: np.ndarray) -> dict[str, Any]:
    """A region's exploration counts and its screening test."""
    mask = region.pair_mask(grid.shape, grid.num_classes) & judged[None, :]
    k_in, n_in = float(k[mask].sum()), int(n[mask].sum())
    k_out, n_out = float(k.sum()) - k_in, int(n.sum()) - n_in
    if evidence.has_clean:
        k0, n0 = baseline_counts(_clean_of(evidence.clean(held_out=False), grid, region))
    else:
        k0, n0 = whole(k_out), n_out
    low, high = wilson_interval(whole(k_in), n_in)
    excess = newcombe_difference(whole(k_in), n_in, k0, n0)
    classes = list(grid.classes) if grid.classes else []
    cells = region.cell_mask(grid.shape) & judged  # per class over the region's cells, admitted classes or not
    class_rates = {name: [float(k[c][cells].sum()), int(n[c][cells].sum())] for c, name in enumerate(classes)}
    return {
        "region_id": grid.region_id(region), "description": grid.describe(region),
        "factors": json.dumps(grid.factors(region)), "cells": [int(i) for i in np.flatnonzero(mask.any(axis=0))],
        "num_cells": int(mask.any(axis=0).sum()),
        "classes": [grid.classes[i] for i in region.classes] if region.classes is not None else [],
        "scan_llr": float(llr), "seeds": n_in, "failures": k_in, "failure_rate": k_in / n_in if n_in else math.nan,
        "ci_low": low, "ci_high": high, "outside_seeds": n_out, "outside_failures": k_out,
        "outside_rate": k_out / n_out if n_out else math.nan, "clean_seeds": n0, "clean_failures": k0,
        "clean_rate": k0 / n0 if n0 else math.nan, "excess": excess[0], "excess_low": excess[1],
        "excess_high": excess[2], "screen_p": fisher_greater(whole(k_in), n_in, k0, n0),
        "class_rates": json.dumps(class_rates),
    }


def _per_seed(pairs: pd.DataFrame) -> pd.Series:
    """Failure share per held-out seed (one query per seed and region by design; the mean if more)."""
    return pairs.groupby("seed_id", sort=False)["failure"].mean()


def region_pairs(pairs: pd.DataFrame, grid: RegionGrid, region: Region) -> pd.DataFrame:
    """The pairs of a phase whose (class, cell) the region admits."""
    if pairs.empty:
        return pairs
    mask = region.pair_mask(grid.shape, grid.num_classes)
    classes = grid.class_index(pairs["context"].tolist())
    ids = pairs["action_id"].to_numpy(dtype=int)
    inside = (classes >= 0) & (ids >= 0) & mask[np.clip(classes, 0, None), np.clip(ids, 0, None)]
    return pairs[inside]


def confirmation_test(test: str, inside: pd.Series, baseline: pd.DataFrame, reference: pd.Series | None = None
                      ) -> dict[str, float]:
    """One confirmation test: held-out seeds' failures ``inside`` (per seed) against the baseline of the design."""
    k1, n1 = whole(inside.sum()), int(len(inside))
    if test == "pooled":
        k0, n0 = baseline_counts(baseline)
        p = fisher_greater(k1, n1, k0, n0)
        excess = newcombe_difference(k1, n1, k0, n0)
    else:
        other = reference if test == "paired-outside" else baseline.set_index("seed_id")["failure"]
        paired = pd.DataFrame({"inside": inside.round() > 0}).join((other.round() > 0).rename("other"), how="inner")
        both = int((paired["inside"] & paired["other"]).sum())
        only_in = int((paired["inside"] & ~paired["other"]).sum())
        only_other = int((~paired["inside"] & paired["other"]).sum())
        k1, n1 = both + only_in, int(len(paired))
        k0, n0 = both + only_other, n1
        p = mcnemar_greater(only_in, only_other)
        excess = newcombe_paired_difference(both, only_in, only_other, n1 - both - only_in - only_other)
    low, high = wilson_interval(k1, n1)
    return {"confirm_seeds": n1, "confirm_failures": k1, "confirm_rate": k1 / n1 if n1 else math.nan,
            "confirm_ci_low": low, "confirm_ci_high": high, "confirm_baseline_seeds": n0,
            "confirm_baseline_failures": k0, "confirm_baseline_rate": k0 / n0 if n0 else math.nan,
            "confirm_excess": excess[0], "confirm_excess_low": excess[1], "confirm_excess_high": excess[2],
            "confirm_p": p}


def _reference(evidence: Evidence, grid: RegionGrid, tested: list[Region]) -> pd.Series:
    """Per held-out seed, its answer at a cell outside every tested region (the ``paired-outside`` design)."""
    confirm = evidence.phase("confirm")
    inside = np.zeros(len(confirm), dtype=bool)
    for region in tested:
        inside |= confirm.index.isin(region_pairs(confirm, grid, region).index)
    return _per_seed(confirm[~inside])


def _confirm(frame: pd.DataFrame, evidence: Evidence, grid: RegionGrid, config: LandscapeConfig,
             confirmation: Confirmation | None) -> None:
    """Fill the confirmation columns of the regions the run confirmed (Holm across them)."""
    for name in REGION_COLUMNS:
        if name.startswith("confirm_") and name not in frame.columns:
            frame[name] = "" if name == "confirm_test" else np.nan
    frame["confirmed"] = False
    if confirmation is None or not len(frame):
        return
    tested = [i for i, region_id in enumerate(frame["region_id"]) if region_id in set(confirmation.regions)]
    regions = [grid.parse(frame.at[i, "region_id"]) for i in tested]
    confirm, clean = evidence.phase("confirm"), evidence.clean()
    reference = _reference(evidence, grid, regions) if confirmation.test == "paired-outside" else None
    for i, region in zip(tested, regions):
        inside = _per_seed(region_pairs(confirm, grid, region))
        baseline = _clean_of(clean, grid, region)
        if confirmation.test == "paired":
            baseline = baseline[baseline["seed_id"].isin(evidence.held_out)]
        for name, value in confirmation_test(confirmation.test, inside, baseline, reference).items():
            frame.at[i, name] = value
        frame.at[i, "confirm_test"] = confirmation.test
    adjusted = holm(frame["confirm_p"].to_numpy(dtype=float))
    frame["confirm_p_holm"] = adjusted
    with np.errstate(invalid="ignore"):
        frame["confirmed"] = (adjusted <= config.alpha) & (frame["confirm_excess_low"] >= config.min_excess)


def _mark_cells(landscape: pd.DataFrame, regions: pd.DataFrame, evidence: Evidence, grid: RegionGrid,
                config: LandscapeConfig, confirmation: Confirmation | None) -> None:
    """Name each cell's region and, inside confirmed regions, test its cells on the held-out queries."""
    confirm, clean = evidence.phase("confirm"), evidence.clean()
    tested = [grid.parse(region_id) for region_id in regions.loc[regions["confirm_test"] != "", "region_id"]]
    reference = _reference(evidence, grid, tested) if confirmation and confirmation.test == "paired-outside" else None
    for row in regions.sort_values("rank", ascending=False).itertuples():  # the best-ranked region is written last
        cells = list(row.cells)
        landscape.loc[cells, "region_id"] = row.region_id
        landscape.loc[cells, "region_rank"] = int(row.rank)
        landscape.loc[cells, "region_confirmed"] = bool(row.confirmed)
        if not row.confirmed:
            continue
        region = grid.parse(row.region_id)
        inside = region_pairs(confirm, grid, region)
        baseline = _clean_of(clean, grid, region)
        if confirmation.test == "paired":
            baseline = baseline[baseline["seed_id"].isin(evidence.held_out)]
        p_values = {}
        for cell in cells:
            at_cell = _per_seed(inside[inside["action_id"] == cell])
            if len(at_cell):
                result = confirmation_test(confirmation.test, at_cell, baseline, reference)
                p_values[cell] = (result["confirm_p"], result["confirm_excess_low"])
        if not p_values:
            continue
        ids = list(p_values)
        q = benjamini_hochberg(np.array([p_values[c][0] for c in ids]))
        for cell, q_value in zip(ids, q):
            landscape.at[cell, "confirm_p_value"] = p_values[cell][0]
            landscape.at[cell, "confirm_q_value"] = q_value
            landscape.at[cell, "confirmed"] = bool(q_value <= config.alpha and p_values[cell][1] >= config.min_excess)
