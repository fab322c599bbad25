"""Compare two runs over the same concept space and task: which failure regions of A are fixed in B, which persist,
which are new, and how the clean failure rate moved.

The evidence of a run is one outcome per (cell, seed) pair it asked, exploration and confirmation alike
(``fade_hub.evidence``), and one per seed for its clean inputs. A region is compared on the pairs it admits (its
cells, and its seed classes when it names some). Where the two runs asked the same seeds at the same cells (at least
``PAIRED_MIN`` pairs, and at least half of the smaller side's), the comparison is *paired* on those shared pairs
(exact McNemar mid-p, Newcombe's paired interval); otherwise it is *independent* on every pair of each run (one-sided
Fisher exact tests, Newcombe's hybrid interval). Every interval is 95 %; the p-values are Holm-adjusted across the
regions of one question. Each run weighs the cells of a region as its search asked them.

A run's *failure regions* are its confirmed regions (its screened ones when it confirmed nothing). Then:

* **persisting**: a failure region of A that a failure region of B overlaps (they share a (class, cell) pair);
* **fixed**: a failure region of A that none of B's overlaps, where B fails significantly less often than A, and B's
  excess over its own clean rate is no longer significant (Holm-adjusted p above ``alpha``, or the lower bound of the
  excess under ``min_excess``, as ``explore`` confirms regions);
* **unresolved**: a failure region of A that is neither (B asked it too little to tell, or fails there less but
  still above clean);
* **new**: a failure region of B that overlaps no failure region of A, or where B fails significantly more often.

Runs over different concept spaces (``ConceptSpace.fingerprint``) or tasks are refused in one line saying what
differs, and so is a run compared with itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .characterize import Confirmation
from .errors import RunsDiffer
from .evidence import Evidence, whole
from .perturb.concepts import ConceptSpace
from .run import Run
from .stats import RateChange, holm, independent_change, paired_change

PAIRED_MIN = 10  # shared (cell, seed) pairs below which a comparison is independent
STATUSES = ("fixed", "persisting", "unresolved", "new")


@dataclass
class RunSide:
    """One run's evidence: its perturbed pairs (one per cell and seed), its clean pairs and its failure regions."""

    run: Run
    pairs: pd.DataFrame  # action_id, seed_id, context, failure
    clean: pd.DataFrame  # seed_id, context, failure
    regions: pd.DataFrame  # the rows of its failure regions

    @classmethod
    def of(cls, run: Run) -> RunSide:
        """Read a run's records and regions."""
        confirmation = Confirmation.from_meta(run.meta)
        evidence = Evidence.from_queries(run.queries, set(confirmation.held_out) if confirmation else None)
        perturbed = evidence.pairs[evidence.pairs["phase"] != "clean"]
        pairs = (perturbed.groupby(["action_id", "seed_id"], sort=False)
                 .agg(context=("context", "first"), failure=("failure", "mean")).reset_index())
        clean = evidence.clean()[["seed_id", "context", "failure"]].drop_duplicates("seed_id")
        regions = run.regions[run.regions["is_mode"].astype(bool)].reset_index(drop=True)
        return cls(run, pairs, clean, regions)

    def admitted(self, area: Area) -> pd.DataFrame:
        """The perturbed pairs a region admits."""
        inside = self.pairs["action_id"].isin(area.cells)
        if area.classes:
            inside &= self.pairs["context"].isin(area.classes)
        return self.pairs[inside]

    def baseline(self, area: Area) -> pd.DataFrame:
        """What a region's failures are measured against: the clean pairs of its classes, or, for prompt spaces
        (no unperturbed form), the pairs outside every failure region of the run."""
        if len(self.clean):
            return self.clean[self.clean["context"].isin(area.classes)] if area.classes else self.clean
        outside = ~self.pairs.index.isin(np.concatenate([self.admitted(Area.of(row)).index
                                                         for row in self.regions.itertuples()] or [[]]))
        return self.pairs[outside & ~self.pairs.index.isin(self.admitted(area).index)]


@dataclass(frozen=True)
class Area:
    """The (class, cell) pairs a region admits: its cells, and its seed classes (empty: every class)."""

    cells: frozenset[int]
    classes: frozenset[str]

    @classmethod
    def of(cls, row: Any) -> Area:
        """The area of a ``regions`` row."""
        return cls(frozenset(int(c) for c in row.cells), frozenset(str(c) for c in (row.classes if len(row.classes)
                                                                                    else [])))

    def overlaps(self, other: Area) -> bool:
        """Whether the two regions share a (class, cell) pair."""
        return bool(self.cells & other.cells) and (not self.classes or not other.classes
                                                   or bool(self.classes & other.classes))


def rate_change(before: pd.DataFrame, after: pd.DataFrame, keys: list[str]) -> RateChange:
    """B's failure rate against A's on some pairs: paired on the pairs both asked when there are enough of them
    (``PAIRED_MIN``, and half of the smaller side), independent on all of them otherwise."""
    shared = before.merge(after, on=keys, suffixes=("_a", "_b"))
    if len(shared) >= PAIRED_MIN and 2 * len(shared) >= min(len(before), len(after)):
        return paired_change(shared["failure_a"].round() > 0, shared["failure_b"].round() > 0)
    return independent_change(whole(before["failure"].sum()), len(before), whole(after["failure"].sum()), len(after))


def excess_over(inside: pd.DataFrame, baseline: pd.DataFrame) -> RateChange:
    """A region's failure rate above its baseline (``change``; ``p_higher`` tests it), on different units."""
    return independent_change(whole(baseline["failure"].sum()), len(baseline), whole(inside["failure"].sum()),
                              len(inside))


@dataclass
class RegionChange:
    """One failure region of A or B, compared across the runs."""

    side: str  # "a" or "b": whose failure region it is
    region_id: str
    description: str
    status: str  # one of STATUSES
    change: RateChange  # B's failure rate in the region against A's
    p_holm: float  # Holm-adjusted p-value of the change that decides: lower (A's regions) or higher (B's regions)
    matches: list[str] = field(default_factory=list)  # the other run's failure regions it overlaps
    excess: RateChange | None = None  # A's regions: B's failure rate there above B's clean rate
    excess_p_holm: float = float("nan")
    excess_significant: bool = False  # B still fails there above clean (Holm p <= alpha, lower bound >= min_excess)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ids, status, both rates with intervals, the change and the tests."""
        data = {"side": self.side, "region_id": self.region_id, "description": self.description,
                "status": self.status, "matches": list(self.matches), **change_dict(self.change),
                "p_holm": self.p_holm}
        if self.excess is not None:
            rate, _, _ = self.excess.rate("before")
            data["b_excess"] = {"value": self.excess.change, "ci_low": self.excess.change_low,
                                "ci_high": self.excess.change_high, "baseline_rate": rate,
                                "baseline_units": self.excess.before_units, "p": self.excess.p_higher,
                                "p_holm": self.excess_p_holm, "significant": self.excess_significant}
        return data


def change_dict(change: RateChange) -> dict[str, Any]:
    """A ``RateChange`` as JSON: the design, A's and B's rates with Wilson intervals, the change with its interval."""
    data: dict[str, Any] = {"design": change.design}
    for side, name in (("before", "a"), ("after", "b")):
        rate, low, high = change.rate(side)
        units = change.before_units if side == "before" else change.after_units
        failures = change.before_failures if side == "before" else change.after_failures
        data[name] = {"failures": failures, "seeds": units, "rate": rate, "ci_low": low, "ci_high": high}
    data["change"] = {"value": change.change, "ci_low": change.change_low, "ci_high": change.change_high,
                      "p_lower": change.p_lower, "p_higher": change.p_higher}
    return data


@dataclass
class Comparison:
    """Two runs compared: their failure regions with a status each, the clean rates, and every cell's change."""

    a: Run
    b: Run
    regions: list[RegionChange]
    clean: RateChange
    cells: pd.DataFrame  # per cell: action_id, the factor levels, design, a/b failures, seeds, rates, change
    alpha: float
    min_excess: float

    def with_status(self, status: str, side: str | None = None) -> list[RegionChange]:
        """The regions of one status (of one run's, when ``side`` is given)."""
        return [r for r in self.regions if r.status == status and (side is None or r.side == side)]

    @property
    def counts(self) -> dict[str, int]:
        """How many of A's failure regions are fixed, persisting or unresolved, and how many of B's are new."""
        return {status: len(self.with_status(status, "b" if status == "new" else "a")) for status in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the comparison."""
        def about(run: Run) -> dict[str, Any]:
            return {"run": run.spec, "run_id": run.run_id, "model_id": run.meta.get("model_id"),
                    "queries": run.meta.get("queries"), "algorithm": run.meta.get("algorithm"),
                    "seed": run.meta.get("seed")}

        return {"a": about(self.a), "b": about(self.b), "task": self.a.task,
                "space_fingerprint": self.a.space.fingerprint(), "alpha": self.alpha, "min_excess": self.min_excess,
                "counts": self.counts, "clean": change_dict(self.clean),
                "regions": [region.to_dict() for region in self.regions],
                "cells": self.cells.to_dict(orient="records")}


def open_pair(spec_a: str, spec_b: str) -> tuple[Run, Run]:
    """Open two runs that can be compared; RunsDiffer in one line when they are the same run or cover different
    concept spaces or tasks."""
    if not spec_a or not spec_b:
        raise RunsDiffer("compare needs two runs: RUN_A (the reference) and RUN_B")
    folder_a, folder_b = Path(spec_a), Path(spec_b)
    if spec_a == spec_b or (folder_a.is_dir() and folder_b.is_dir() and folder_a.resolve() == folder_b.resolve()):
        raise RunsDiffer(f"RUN_A and RUN_B are the same run ({spec_a}); compare two runs, e.g. a model's and its "
                         "mitigated variant's")
    a, b = Run.open(spec_a), Run.open(spec_b)
    if a.run_id and a.run_id == b.run_id:
        raise RunsDiffer(f"{spec_a} and {spec_b} hold the same run ({a.run_id}, e.g. a run and its pushed copy); "
                         "compare two runs")
    if a.task != b.task:
        raise RunsDiffer(f"cannot compare runs of different tasks: A is {a.task}, B is {b.task}")
    difference = space_difference(a.space, b.space)
    if difference:
        raise RunsDiffer(f"cannot compare runs over different concept spaces: {difference}; explore both with the "
                         "same --concepts")
    return a, b


def space_difference(a: ConceptSpace, b: ConceptSpace) -> str | None:
    """What differs between two concept spaces, in words (None when their fingerprints agree)."""
    if a.fingerprint() == b.fingerprint():
        return None
    if a.modality != b.modality:
        return f"A's perturbs {a.modality} inputs, B's {b.modality} inputs"
    names_a, names_b = [f.name for f in a.factors], [f.name for f in b.factors]
    if names_a != names_b:
        return f"A's factors are {', '.join(names_a)}, B's {', '.join(names_b)}"
    for one, two in zip(a.factors, b.factors):
        if one.op != two.op:
            return f"factor {one.name} is op {one.op} in A, {two.op} in B"
        if list(one.levels) != list(two.levels):
            return (f"factor {one.name} has levels {', '.join(map(str, one.levels))} in A, "
                    f"{', '.join(map(str, two.levels))} in B")
    return f"an op's parameters or expectations differ (fingerprints {a.fingerprint()[:8]} and {b.fingerprint()[:8]})"


def compare_runs(a: Run, b: Run, *, alpha: float = 0.05, min_excess: float = 0.05) -> Comparison:
    """Compare two opened runs of one space and task (see the module doc for the statuses and the tests)."""
    side_a, side_b = RunSide.of(a), RunSide.of(b)
    keys = ["action_id", "seed_id"]
    areas_a = [Area.of(row) for row in side_a.regions.itertuples()]
    areas_b = [Area.of(row) for row in side_b.regions.itertuples()]

    falls = [rate_change(side_a.admitted(area), side_b.admitted(area), keys) for area in areas_a]
    excesses = [excess_over(side_b.admitted(area), side_b.baseline(area)) for area in areas_a]
    falls_holm = holm(np.array([change.p_lower for change in falls], dtype=float))
    excess_holm = holm(np.array([excess.p_higher for excess in excesses], dtype=float))
    regions = []
    for i, row in enumerate(side_a.regions.itertuples()):
        matches = [other.region_id for other, area in zip(side_b.regions.itertuples(), areas_b)
                   if area.overlaps(areas_a[i])]
        still = bool(excess_holm[i] <= alpha and excesses[i].change_low >= min_excess)
        fell = bool(falls_holm[i] <= alpha)
        status = "persisting" if matches else "fixed" if fell and not still else "unresolved"
        regions.append(RegionChange("a", row.region_id, row.description, status, falls[i], float(falls_holm[i]),
                                    matches, excesses[i], float(excess_holm[i]), still))

    rises = [rate_change(side_a.admitted(area), side_b.admitted(area), keys) for area in areas_b]
    rises_holm = holm(np.array([change.p_higher for change in rises], dtype=float))
    for i, row in enumerate(side_b.regions.itertuples()):
        matches = [other.region_id for other, area in zip(side_a.regions.itertuples(), areas_a)
                   if area.overlaps(areas_b[i])]
        new = not matches or bool(rises_holm[i] <= alpha)
        regions.append(RegionChange("b", row.region_id, row.description, "new" if new else "persisting", rises[i],
                                    float(rises_holm[i]), matches))
    clean = rate_change(side_a.clean, side_b.clean, ["seed_id"])
    return Comparison(a, b, regions, clean, cell_changes(side_a, side_b), alpha, min_excess)


def cell_changes(side_a: RunSide, side_b: RunSide) -> pd.DataFrame:
    """Every cell of the space: A's and B's failures, seeds and rates (all their pairs there), and B's change with
    its interval (paired on the shared pairs when there are enough, as for regions)."""
    space = side_a.run.space
    groups_a = dict(iter(side_a.pairs.groupby("action_id")))
    groups_b = dict(iter(side_b.pairs.groupby("action_id")))
    empty = side_a.pairs.iloc[:0]
    rows = []
    for cell in range(space.num_cells):
        here_a, here_b = groups_a.get(cell, empty), groups_b.get(cell, empty)
        change = rate_change(here_a, here_b, ["action_id", "seed_id"])
        row: dict[str, Any] = {"action_id": cell, **space.level_strings(space.action_from_id(cell))}
        for name, here in (("a", here_a), ("b", here_b)):
            k, n = whole(here["failure"].sum()), len(here)
            row.update({f"{name}_failures": k, f"{name}_seeds": n, f"{name}_rate": k / n if n else np.nan})
        rows.append({**row, "design": change.design, "shared_seeds": change.before_units if change.design == "paired"
                     else 0, "change": change.change, "change_low": change.change_low,
                     "change_high": change.change_high})
    return pd.DataFrame(rows)
