"""The seed is the unit of evidence: a run's query records reduced to one outcome per (phase, cell, seed) pair.

A perturbation is seeded by (seed, cell), so a deterministic model asked the same pair twice answers the same:
a repeat carries no new evidence. Every statistic fade-hub reports counts a pair once. A model that samples
(several answers per pair on purpose) gives each pair the share of its answers that failed; the counts of a
cell are then sums of those shares, and the exact tests round them to whole seeds, so that K samples of one
seed still weigh as one seed. Raw queries stay in ``queries.parquet`` as they were asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import BadConfig, BadSpace

PHASES = ("explore", "clean", "confirm")
CLEAN_CELL = -1  # the action id of an unperturbed query


def records_frame(queries: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Query records as a DataFrame with action_id, phase, seed_id, context, is_failure, severity."""
    frame = pd.DataFrame(queries) if not isinstance(queries, pd.DataFrame) else queries
    if frame.empty:
        return pd.DataFrame({"action_id": pd.Series([], dtype=int), "phase": [], "seed_id": [], "context": [],
                             "is_failure": pd.Series([], dtype=bool), "severity": pd.Series([], dtype=float)})
    missing = {"action_id", "is_failure"} - set(frame.columns)
    if missing:
        raise BadConfig(f"query records lack column(s) {sorted(missing)}; pass records written by the RunStore")
    own = pd.Series([f"#{i}" for i in range(len(frame))], index=frame.index)  # records without a seed id: each its own
    out = pd.DataFrame(
        {
            "action_id": frame["action_id"].astype(int),
            "phase": frame["phase"].fillna("explore").astype(str) if "phase" in frame.columns else "explore",
            "seed_id": frame["seed_id"].where(frame["seed_id"].notna(), own).astype(str) if "seed_id" in frame.columns else own,
            "context": frame["context"].fillna("").astype(str) if "context" in frame.columns else "",
            "is_failure": frame["is_failure"].astype(bool),
            "severity": frame["severity"].astype(float) if "severity" in frame.columns else 0.0,
        }
    )
    unknown = set(out["phase"]) - set(PHASES)
    if unknown:
        raise BadConfig(f"query records have phase {sorted(unknown)}; expected one of {', '.join(PHASES)}")
    return out


def seed_pairs(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (phase, action_id, seed_id): ``failure`` the share of its answers that failed, ``answers`` how
    many answers it had, ``severity`` the mean severity of its failing answers, ``first`` its first record's row."""
    if records.empty:
        return pd.DataFrame({"phase": [], "action_id": pd.Series([], dtype=int), "seed_id": [], "context": [],
                             "failure": pd.Series([], dtype=float), "answers": pd.Series([], dtype=int),
                             "severity": pd.Series([], dtype=float), "first": pd.Series([], dtype=int)})
    frame = records.assign(
        failed=records["is_failure"].astype(float),
        failing_severity=np.where(records["is_failure"], records["severity"], 0.0),
        first=np.arange(len(records)),
    )
    grouped = frame.groupby(["phase", "action_id", "seed_id"], sort=False)
    pairs = grouped.agg(context=("context", "first"), failure=("failed", "mean"), answers=("failed", "size"),
                        failed=("failed", "sum"), severity_sum=("failing_severity", "sum"), first=("first", "min"))
    pairs = pairs.reset_index().sort_values("first", kind="mergesort").reset_index(drop=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pairs["severity"] = np.where(pairs["failed"] > 0, pairs["severity_sum"] / pairs["failed"].where(pairs["failed"] > 0, 1), 0.0)
    return pairs.drop(columns=["failed", "severity_sum"])


def whole(count: float) -> int:
    """A count of seeds for an exact test: sums of per-pair failure shares rounded to whole seeds."""
    return int(round(float(count)))


@dataclass
class Evidence:
    """A run's seed pairs split by phase, with the seeds held out for confirmation."""

    pairs: pd.DataFrame
    held_out: set[str]

    @classmethod
    def from_queries(cls, queries: pd.DataFrame | list[dict], held_out: set[str] | None = None) -> Evidence:
        """Reduce records to seed pairs; held-out seeds are those given, else those queried in the confirm phase."""
        pairs = seed_pairs(records_frame(queries))
        if held_out is None:
            held_out = set(pairs.loc[pairs["phase"] == "confirm", "seed_id"])
        return cls(pairs, set(held_out))

    def phase(self, name: str) -> pd.DataFrame:
        """The pairs of one phase."""
        return self.pairs[self.pairs["phase"] == name]

    def clean(self, *, held_out: bool | None = None) -> pd.DataFrame:
        """Clean pairs (one per seed): of the exploration seeds (``held_out=False``), the held-out ones, or all."""
        clean = self.phase("clean")
        if held_out is None:
            return clean
        inside = clean["seed_id"].isin(self.held_out)
        return clean[inside] if held_out else clean[~inside]

    @property
    def has_clean(self) -> bool:
        """Whether the run queried unperturbed seeds (spaces of prompt templates have no unperturbed form)."""
        return not self.phase("clean").empty


def cell_counts(pairs: pd.DataFrame, num_cells: int, classes: np.ndarray | None = None,
                num_classes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(failures, seeds) per (class, cell) of some pairs, shape (num_classes, num_cells); pairs whose class index is
    -1 are left out. Without ``classes`` every pair is class 0."""
    ids = pairs["action_id"].to_numpy(dtype=int)
    if len(ids) and (ids.min() < 0 or ids.max() >= num_cells):
        raise BadSpace(f"query records hold action_id outside the space's {num_cells} cells; was the run made with "
                       "another space?")
    cls = np.zeros(len(ids), dtype=int) if classes is None else np.asarray(classes, dtype=int)
    keep = cls >= 0
    flat = cls[keep] * num_cells + ids[keep]
    size = num_classes * num_cells
    seeds = np.bincount(flat, minlength=size).reshape(num_classes, num_cells).astype(float)
    failures = np.bincount(flat, weights=pairs["failure"].to_numpy(dtype=float)[keep], minlength=size)
    return failures.reshape(num_classes, num_cells), seeds
