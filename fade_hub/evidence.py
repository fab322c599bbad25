"""The seed is the unit of evidence: a run's query records reduced to one outcome per (phase, cell, seed) pair.

A perturbation is seeded by (seed, cell), so a deterministic model asked the same pair twice answers the same:
a repeat carries no new evidence. Every statistic fade-hub reports counts a pair once. A model that samples
(several answers per pair on purpose) gives each pair the share of its answers that failed; the counts of a
cell are then sums of those shares, and the exact tests round them to whole seeds, so that K samples of one
seed still weigh as one seed. Raw queries stay in ``queries.parquet`` as they were asked.

An answer the judge gave no readable verdict on (``unjudged``, e.g. an LLM judge's reply that did not parse) is
neither a pass nor a failure: it counts in no pair's share, and a pair with no judged answer is no pair at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import BadConfig, BadSpace

PHASES = ("explore", "clean", "confirm")
CLEAN_CELL = -1  # the action id of an unperturbed query


def records_frame(queries: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Query records as a DataFrame with action_id, phase, seed_id, context, is_failure, severity, unjudged."""
    frame = pd.DataFrame(queries) if not isinstance(queries, pd.DataFrame) else queries
    if frame.empty:
        return pd.DataFrame({"action_id": pd.Series([], dtype=int), "phase": [], "seed_id": [], "context": [],
                             "is_failure": pd.Series([], dtype=bool), "severity": pd.Series([], dtype=float),
                             "unjudged": pd.Series([], dtype=bool)})
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
            "unjudged": frame["unjudged"].eq(True) if "unjudged" in frame.columns else False,
        }
    )
    unknown = set(out["phase"]) - set(PHASES)
    if unknown:
        raise BadConfig(f"query records have phase {sorted(unknown)}; expected one of {', '.join(PHASES)}")
    return out


def seed_pairs(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (phase, action_id, seed_id) with a judged answer, in the order each pair was first asked:
    ``failure`` the share of its judged answers that failed, ``answers`` how many judged answers it had, ``severity``
    the mean severity of its failing answers, ``context`` and ``first`` (the row of its first record)."""
    if records.empty:
        return pd.DataFrame({"phase": pd.Series([], dtype=str), "action_id": pd.Series([], dtype=int),
                             "seed_id": pd.Series([], dtype=str), "context": pd.Series([], dtype=str),
                             "failure": pd.Series([], dtype=float), "answers": pd.Series([], dtype=int),
                             "severity": pd.Series([], dtype=float), "first": pd.Series([], dtype=int)})
    key = records["phase"] + "\x1f" + records["action_id"].astype(str) + "\x1f" + records["seed_id"]
    codes, _ = pd.factorize(key)
    order, first = np.unique(codes, return_index=True)
    size = len(order)
    judged = ~records["unjudged"].to_numpy(dtype=bool) if "unjudged" in records.columns else np.ones(len(records), bool)
    failed = records["is_failure"].to_numpy(dtype=float) * judged
    answers = np.rint(np.bincount(codes, weights=judged.astype(float), minlength=size)).astype(int)
    failures = np.bincount(codes, weights=failed, minlength=size)
    severity = np.bincount(codes, weights=failed * records["severity"].to_numpy(dtype=float), minlength=size)
    rows = records.iloc[first]
    pairs = pd.DataFrame({
        "phase": rows["phase"].to_numpy(), "action_id": rows["action_id"].to_numpy(dtype=int),
        "seed_id": rows["seed_id"].to_numpy(), "context": rows["context"].to_numpy(),
        "failure": failures / np.maximum(answers, 1), "answers": answers,
        "severity": np.where(failures > 0, severity / np.maximum(failures, 1), 0.0), "first": first,
    })
    pairs = pairs[answers > 0]
    return pairs.sort_values("first", kind="mergesort").reset_index(drop=True)


def whole(count: float) -> int:
    """A count of seeds for an exact test: sums of per-pair failure shares rounded to whole seeds."""
    return int(round(float(count)))


class Evidence:
    """A run's query records, their seed pairs split by phase, and the seeds held out for confirmation."""

    def __init__(self, records: pd.DataFrame, held_out: set[str] | None = None) -> None:
        self.records = records
        self.pairs = seed_pairs(records)
        self._by_phase = dict(iter(self.pairs.groupby("phase", sort=False)))
        if held_out is None:  # those queried in the confirm phase
            held_out = set(self.phase("confirm")["seed_id"])
        self.held_out = set(held_out)

    @classmethod
    def from_queries(cls, queries: pd.DataFrame | list[dict], held_out: set[str] | None = None) -> Evidence:
        """Reduce records to seed pairs; held-out seeds are those given, else those queried in the confirm phase."""
        return cls(records_frame(queries), held_out)

    def phase(self, name: str) -> pd.DataFrame:
        """The pairs of one phase."""
        return self._by_phase[name] if name in self._by_phase else self.pairs.iloc[:0]

    def clean_summary(self) -> dict:
        """The clean failure rate over every unperturbed seed, with its Wilson interval (``run.json``'s ``clean``)."""
        from .stats import wilson_interval

        clean = self.phase("clean")
        k, n = whole(clean["failure"].sum()), int(len(clean))
        low, high = wilson_interval(k, n)
        return {"queries": n, "failures": k, "rate": k / n if n else None, "ci_low": low, "ci_high": high}

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
