"""The failure landscape: per-cell statistics of a run, Wilson intervals, and the failure-mode ranking.

A *cell* is one point of the perturbation space (one level per factor), identified by its row-major
``action_id``. The landscape has one row per cell, visited or not.

Statistics
    ``queries`` / ``failures`` / ``failure_rate`` / ``ci_low`` / ``ci_high`` / ``mean_severity`` come from
    the ``explore`` phase only; ``confirm_*`` columns come from the ``confirm`` phase (the top cells
    re-evaluated on held-out seeds). Intervals are Wilson score intervals at 95 %. ``failure_rate`` is
    NaN for a cell with no queries; its interval is then (0, 1).

Uncertain
    ``uncertain`` is True when a cell has fewer than ``LandscapeConfig.min_queries`` explore queries:
    its rate rests on too little evidence to read on its own (unvisited cells are uncertain too).

Expectation
    ``expectation`` says what the cell's ops do to the right answer (``invariant``, ``directional (negate)``
    or ``not judged (op)``); ``judged`` is False for cells whose ops leave no automatic expectation: they
    are never failure modes.

Significant
    A model fails some inputs anyway. The *clean failure rate* is measured on the unperturbed seeds (the
    ``clean`` phase); for prompt spaces, which have no unperturbed form, the baseline of a cell is the
    pooled rate of the other cells. ``p_value`` is a one-sided Fisher exact test that the cell fails more
    often than that baseline, ``q_value`` its Benjamini-Hochberg adjustment over the visited judged cells,
    and ``significant`` is ``q_value <= LandscapeConfig.alpha``.

Confirmed
    ``confirmed`` is True when the cell was re-evaluated on held-out seeds and the same test, against the
    clean rate of those held-out seeds, is significant there too (adjusted over the re-evaluated cells).

Ranking
    A *failure mode* is a significant or confirmed cell. Failure modes come first, sorted by
    (1) confirmed before unconfirmed, (2) the Wilson lower bound of the best available evidence,
    descending (held-out ``confirm_ci_low`` for confirmed cells, explore ``ci_low`` otherwise),
    (3) ``mean_severity`` descending, (4) ``queries`` descending, (5) ``action_id`` ascending.
    Every cell gets an integer ``rank`` (1 = worst); the other cells follow under the same key (cells
    that failed at least once first), so their ranks carry no meaning as failure modes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import BadConfig, BadSpace
from .perturb.expect import describe_cells
from .stats import benjamini_hochberg, fisher_greater, wilson_interval, wilson_intervals  # noqa: F401 - re-exported

PHASES = ("explore", "clean", "confirm")
LANDSCAPE_COLUMNS = [
    "action_id",
    "expectation",
    "judged",
    "queries",
    "failures",
    "failure_rate",
    "ci_low",
    "ci_high",
    "mean_severity",
    "policy_prob",
    "uncertain",
    "p_value",
    "q_value",
    "significant",
    "confirm_queries",
    "confirm_failures",
    "confirm_rate",
    "confirm_ci_low",
    "confirm_ci_high",
    "confirm_p_value",
    "confirm_q_value",
    "confirmed",
    "rank",
]


@dataclass
class LandscapeConfig:
    """How the landscape flags cells: fewer than ``min_queries`` explore queries is "uncertain";
    ``alpha`` is the false discovery rate of the failure-mode test."""

    min_queries: int = 5
    alpha: float = 0.05


def factor_levels(space: Any) -> dict[str, list[str]]:
    """The level strings of every factor of ``space``, in factor and level order."""
    names = [factor.name for factor in space.factors]
    levels: dict[str, list[str]] = {}
    for j, factor in enumerate(space.factors):
        strings = []
        for i in range(len(factor.levels)):
            action = [0] * len(names)
            action[j] = i
            strings.append(str(space.level_strings(tuple(action))[factor.name]))
        levels[factor.name] = strings
    return levels


def _shape(levels: dict[str, list[str]]) -> tuple[int, ...]:
    return tuple(len(values) for values in levels.values())


def _records(queries: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Query records as a DataFrame with at least action_id, phase, is_failure, severity."""
    frame = pd.DataFrame(queries) if not isinstance(queries, pd.DataFrame) else queries
    if frame.empty:
        return pd.DataFrame({"action_id": [], "phase": [], "seed_id": [], "is_failure": [], "severity": []})
    missing = {"action_id", "is_failure"} - set(frame.columns)
    if missing:
        raise BadConfig(f"query records lack column(s) {sorted(missing)}; pass records written by the RunStore")
    out = pd.DataFrame(
        {
            "action_id": frame["action_id"].astype(int),
            "phase": frame["phase"].astype(str) if "phase" in frame.columns else "explore",
            "seed_id": frame["seed_id"].astype(str) if "seed_id" in frame.columns else "",
            "is_failure": frame["is_failure"].astype(bool),
            "severity": frame["severity"].astype(float) if "severity" in frame.columns else 0.0,
        }
    )
    unknown = set(out["phase"]) - set(PHASES)
    if unknown:
        raise BadConfig(f"query records have phase {sorted(unknown)}; expected one of {', '.join(PHASES)}")
    return out


def _cell_counts(records: pd.DataFrame, num_cells: int, phase: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell (queries, failures, severity summed over failures) for one phase."""
    rows = records[records["phase"] == phase]
    ids = rows["action_id"].to_numpy(dtype=int)
    if len(ids) and (ids.min() < 0 or ids.max() >= num_cells):
        raise BadSpace(f"query records hold action_id outside the space's {num_cells} cells; was the run made with another space?")
    fails = rows["is_failure"].to_numpy(dtype=bool)
    sev = rows["severity"].to_numpy(dtype=float)
    n = np.bincount(ids, minlength=num_cells)
    k = np.bincount(ids, weights=fails.astype(float), minlength=num_cells).astype(int)
    sev_sum = np.bincount(ids, weights=np.where(fails, sev, 0.0), minlength=num_cells)
    return n, k, sev_sum


def _rate(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)


def clean_baseline(queries: pd.DataFrame | list[dict], seed_ids: set[str] | None = None) -> dict[str, Any]:
    """The clean failure rate: failures among the ``clean`` queries (of ``seed_ids`` when given), with its interval."""
    records = _records(queries)
    clean = records[records["phase"] == "clean"]
    if seed_ids is not None:
        clean = clean[clean["seed_id"].isin(seed_ids)]
    n, k = int(len(clean)), int(clean["is_failure"].sum())
    low, high = wilson_interval(k, n)
    return {"queries": n, "failures": k, "rate": k / n if n else None, "ci_low": low, "ci_high": high}


def _tests(k: np.ndarray, n: np.ndarray, judged: np.ndarray, baseline: tuple[int, int] | None, alpha: float):
    """Per cell: one-sided Fisher p-value against the baseline (or the other cells), BH q-value, significance."""
    pooled_k, pooled_n = int(k[judged].sum()), int(n[judged].sum())
    p = np.full(len(k), np.nan)
    for cell in np.flatnonzero(judged & (n > 0)):
        k0, n0 = baseline if baseline is not None else (pooled_k - int(k[cell]), pooled_n - int(n[cell]))
        p[cell] = fisher_greater(int(k[cell]), int(n[cell]), k0, n0)
    q = benjamini_hochberg(p)
    return p, q, (q <= alpha) & (k > 0)


def compute_landscape(
    queries: pd.DataFrame | list[dict],
    space: Any,
    policy_probs: np.ndarray | None = None,
    config: LandscapeConfig | None = None,
) -> pd.DataFrame:
    """One row per cell of ``space`` with explore / held-out statistics, flags and rank (see module doc)."""
    config = config or LandscapeConfig()
    levels = factor_levels(space)
    shape = _shape(levels)
    num_cells = int(np.prod(shape))
    records = _records(queries)
    expectation = np.asarray(describe_cells(space), dtype=object)
    judged = np.array([not text.startswith("not judged") for text in expectation])

    n, k, sev_sum = _cell_counts(records, num_cells, "explore")
    cn, ck, _ = _cell_counts(records, num_cells, "confirm")
    clean_seeds = set(records.loc[records["phase"] == "clean", "seed_id"])
    held_out = set(records.loc[records["phase"] == "confirm", "seed_id"])

    def baseline(seed_ids: set[str]) -> tuple[int, int] | None:
        found = clean_baseline(records, seed_ids)
        return (found["failures"], found["queries"]) if clean_seeds else None

    p, q, significant = _tests(k, n, judged, baseline(clean_seeds - held_out), config.alpha)
    cp, cq, confirmed = _tests(ck, cn, judged, baseline(held_out), config.alpha)
    ci_low, ci_high = wilson_intervals(k, n)
    c_low, c_high = wilson_intervals(ck, cn)
    c_low = np.where(cn > 0, c_low, np.nan)
    c_high = np.where(cn > 0, c_high, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sev = np.where(k > 0, sev_sum / np.where(k > 0, k, 1), 0.0)
    if policy_probs is None:
        probs = np.full(num_cells, np.nan)
    else:
        probs = np.asarray(policy_probs, dtype=float).reshape(-1)
        if probs.size != num_cells:
            raise BadConfig(f"policy_probs has {probs.size} entries; the space has {num_cells} cells")

    index = np.unravel_index(np.arange(num_cells), shape)
    data: dict[str, Any] = {name: np.asarray(values, dtype=object)[index[j]] for j, (name, values) in enumerate(levels.items())}
    data.update(
        action_id=np.arange(num_cells),
        expectation=expectation.astype(str),
        judged=judged,
        queries=n,
        failures=k,
        failure_rate=_rate(k, n),
        ci_low=ci_low,
        ci_high=ci_high,
        mean_severity=mean_sev,
        policy_prob=probs,
        uncertain=n < config.min_queries,
        p_value=p,
        q_value=q,
        significant=significant,
        confirm_queries=cn,
        confirm_failures=ck,
        confirm_rate=_rate(ck, cn),
        confirm_ci_low=c_low,
        confirm_ci_high=c_high,
        confirm_p_value=cp,
        confirm_q_value=cq,
        confirmed=confirmed,
    )
    frame = pd.DataFrame(data)
    for name in levels:
        frame[name] = frame[name].astype(str)
    frame["rank"] = _ranks(frame)
    return frame[list(levels) + LANDSCAPE_COLUMNS]


def is_mode(landscape: pd.DataFrame) -> pd.Series:
    """Which cells are failure modes: significant or confirmed (any failing cell in landscapes written before
    the significance test existed)."""
    if "significant" not in landscape.columns:
        return landscape["failures"] > 0
    return landscape["significant"].astype(bool) | landscape["confirmed"].astype(bool)


def _ranks(frame: pd.DataFrame) -> np.ndarray:
    """Integer rank per row (1 = worst) under the module's ranking rule."""
    evidence = np.where(frame["confirmed"], frame["confirm_ci_low"], frame["ci_low"])
    key = pd.DataFrame(
        {
            "mode": is_mode(frame),
            "failed": frame["failures"] > 0,
            "confirmed": frame["confirmed"],
            "evidence": evidence,
            "severity": frame["mean_severity"],
            "queries": frame["queries"],
            "action_id": frame["action_id"],
        }
    )
    order = key.sort_values(
        ["mode", "failed", "confirmed", "evidence", "severity", "queries", "action_id"],
        ascending=[False, False, False, False, False, False, True],
        kind="mergesort",
    ).index.to_numpy()
    ranks = np.empty(len(frame), dtype=int)
    ranks[order] = np.arange(1, len(frame) + 1)
    return ranks


def failure_modes(landscape: pd.DataFrame, top_k: int | None = None) -> pd.DataFrame:
    """The ranked failure modes (significant or confirmed cells, see module doc), worst first, at most ``top_k``."""
    modes = landscape[is_mode(landscape)].sort_values("rank")
    if top_k is not None:
        modes = modes.head(top_k)
    return modes.reset_index(drop=True)


def confirm_candidates(landscape: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """The cells to re-evaluate on held-out seeds: the ``top_k`` best-ranked cells that failed at least once."""
    return landscape[landscape["failures"] > 0].sort_values("rank").head(top_k).reset_index(drop=True)


def _effect_table(level_names: list[str], n: np.ndarray, k: np.ndarray) -> pd.DataFrame:
    low, high = wilson_intervals(k, n)
    return pd.DataFrame(
        {
            "level": level_names,
            "queries": n.astype(int),
            "failures": k.astype(int),
            "failure_rate": _rate(k, n),
            "ci_low": low,
            "ci_high": high,
        }
    )


def marginal_effects(queries: pd.DataFrame | list[dict], space: Any) -> dict[str, pd.DataFrame]:
    """Per factor: explore failure rate of each level (all levels, in order) pooled over the other factors."""
    levels = factor_levels(space)
    shape = _shape(levels)
    n, k, _ = _cell_counts(_records(queries), int(np.prod(shape)), "explore")
    n, k = n.reshape(shape), k.reshape(shape)
    effects = {}
    for j, (name, values) in enumerate(levels.items()):
        others = tuple(i for i in range(len(shape)) if i != j)
        effects[name] = _effect_table(values, n.sum(axis=others), k.sum(axis=others))
    return effects


def pair_table(queries: pd.DataFrame | list[dict], space: Any, pair: tuple[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Explore failure rates (NaN where unvisited) and query counts of one factor pair; rows = levels of ``pair[0]``."""
    levels = factor_levels(space)
    shape = _shape(levels)
    names = list(levels)
    if pair[0] not in levels or pair[1] not in levels or pair[0] == pair[1]:
        raise BadConfig(f"{pair} is not a pair of two factors of the space ({', '.join(names)})")
    a, b = names.index(pair[0]), names.index(pair[1])
    n, k, _ = _cell_counts(_records(queries), int(np.prod(shape)), "explore")
    others = tuple(i for i in range(len(shape)) if i not in (a, b))
    n2, k2 = n.reshape(shape).sum(axis=others), k.reshape(shape).sum(axis=others)
    if a > b:
        n2, k2 = n2.T, k2.T
    rows, cols = pd.Index(levels[pair[0]], name=pair[0]), pd.Index(levels[pair[1]], name=pair[1])
    return pd.DataFrame(_rate(k2, n2), index=rows, columns=cols), pd.DataFrame(n2, index=rows, columns=cols)


def pairwise_effects(queries: pd.DataFrame | list[dict], space: Any) -> dict[tuple[str, str], pd.DataFrame]:
    """Per factor pair (in factor order): explore failure rates, rows = levels of the first, NaN where unvisited."""
    records = _records(queries)
    names = [factor.name for factor in space.factors]
    return {pair: pair_table(records, space, pair)[0] for pair in itertools.combinations(names, 2)}


def _overall_rate(landscape: pd.DataFrame) -> float:
    total = int(landscape["queries"].sum())
    return float(landscape["failures"].sum() / total) if total else math.nan


def shift_metrics(before: pd.DataFrame, after: pd.DataFrame) -> dict:
    """Compare two landscapes of the same space (explore columns), e.g. before and after mitigation.

    Returns plain Python values: overall failure rates, per-cell rate changes for cells visited in both,
    and counts of failure modes fixed (visited after with no failure), still failing, not revisited,
    significantly improved (after ``ci_high`` < before ``ci_low``) and new (failing only after).
    """
    if len(before) != len(after):
        raise BadConfig(f"landscapes differ in size ({len(before)} vs {len(after)} cells); compare runs over the same space")
    cols = ["action_id", "queries", "failures", "failure_rate", "ci_low", "ci_high"]
    merged = before[cols].merge(after[cols], on="action_id", suffixes=("_before", "_after"))

    both = merged[(merged["queries_before"] > 0) & (merged["queries_after"] > 0)]
    modes = merged[merged["failures_before"] > 0]
    revisited = modes[modes["queries_after"] > 0]
    cells = [
        {
            "action_id": int(row.action_id),
            "rate_before": float(row.failure_rate_before),
            "rate_after": float(row.failure_rate_after),
            "change": float(row.failure_rate_after - row.failure_rate_before),
        }
        for row in both.itertuples()
    ]
    return {
        "rate_before": _overall_rate(before),
        "rate_after": _overall_rate(after),
        "queries_before": int(before["queries"].sum()),
        "queries_after": int(after["queries"].sum()),
        "cells_compared": len(cells),
        "mean_cell_change": float(np.mean([c["change"] for c in cells])) if cells else math.nan,
        "modes_before": len(modes),
        "modes_fixed": int((revisited["failures_after"] == 0).sum()),
        "modes_still_failing": int((revisited["failures_after"] > 0).sum()),
        "modes_not_revisited": int((modes["queries_after"] == 0).sum()),
        "modes_improved_significantly": int((revisited["ci_high_after"] < revisited["ci_low_before"]).sum()),
        "new_modes": int(((merged["failures_before"] == 0) & (merged["failures_after"] > 0)).sum()),
        "cells": cells,
    }


def cell_label(row: pd.Series | dict, names: list[str], sep: str = " ") -> str:
    """``factor=level`` pairs of one landscape row."""
    return sep.join(f"{name}={row[name]}" for name in names)


def held_out_text(row: pd.Series | dict) -> str:
    """``yes 3/4`` / ``no 0/4`` for re-evaluated cells, ``not run`` otherwise."""
    if int(row["confirm_queries"]) == 0:
        return "not run"
    verdict = "yes" if bool(row["confirmed"]) else "no"
    return f"{verdict} {int(row['confirm_failures'])}/{int(row['confirm_queries'])}"


def count_text(row: pd.Series | dict) -> str:
    """Explore query count of a cell, marked ``(uncertain)`` when under the landscape's threshold."""
    return f"{int(row['queries'])} (uncertain)" if bool(row["uncertain"]) else str(int(row["queries"]))


def format_mode_table(modes: pd.DataFrame, space: Any, max_rows: int = 10) -> str:
    """Plain-text table of ranked failure modes for the terminal."""
    names = [factor.name for factor in space.factors]
    with_policy = bool(modes["policy_prob"].notna().any())
    header = ["rank", "cell", "failure rate [95% CI]", "n", "severity", "confirmed"] + (["policy p"] if with_policy else [])
    rows = [
        [
            str(int(row["rank"])),
            cell_label(row, names),
            f"{row['failure_rate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]",
            count_text(row),
            f"{row['mean_severity']:.2f}",
            held_out_text(row),
        ]
        + ([f"{row['policy_prob']:.3f}"] if with_policy else [])
        for _, row in modes.head(max_rows).iterrows()
    ]
    if not rows:
        return "no failure modes found"
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    if len(modes) > max_rows:
        lines.append(f"... {len(modes) - max_rows} more")
    return "\n".join(lines)
