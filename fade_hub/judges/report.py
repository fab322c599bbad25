"""What the card and ``report`` say about the judge and about sampling: who judged under which rubric, how many
answers were left unjudged, and, for a model that samples, each region's failure probability per sample and pass^K.

Under sampling the (cell, seed) pair stays the unit (``fade_hub.evidence``): a region's ``failure_rate`` is the mean
over its seeds of the share of their samples that failed, i.e. the probability that one sample fails, with the
regions table's interval over seeds (K samples of one seed are one seed, so the interval is not narrowed by K).
pass^K is the chance that K fresh samples of one seed all pass, estimated per seed without bias (``stats.pass_hat_k``)
and averaged over the region's seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..stats import pass_hat_k
from ..agreement import cells_of
from ..options import recorded_options


def samples_per_query(meta: dict[str, Any]) -> int:
    """How many answers the run asked per (cell, seed) pair."""
    return int(recorded_options(meta).get("samples_per_query") or 1)


def judge_lines(meta: dict[str, Any]) -> list[str]:
    """The card's judge section: the LLM judge, its rubric and what it cost (empty for other judges)."""
    judge = meta.get("judge") or {}
    lines: list[str] = []
    if judge.get("name") == "llm":
        where = judge.get("endpoint") or judge.get("provider") or judge.get("device") or "local"
        lines += [
            f"- **LLM judge:** `{judge.get('model_id')}` (commit {judge.get('commit_sha') or 'unknown'}, on {where}), "
            f"rubric `{judge.get('rubric')}` (SHA-256 {str(judge.get('rubric_sha256'))[:12]}...), greedy (temperature "
            f"0), JSON verdicts by {judge.get('json_mode')}; a reply that does not parse is asked once more, then the "
            "answer is *unjudged*: neither a pass nor a failure in any figure.",
        ]
        usage = meta.get("judge_usage") or {}
        lines.append(f"- **Verdicts:** {int(usage.get('requests', 0))} asked, {int(usage.get('cached', 0))} from the "
                     f"cache, {int(usage.get('asked_again', 0))} asked again, {int(usage.get('unjudged', 0))} unjudged.")
    lineage = meta.get("rejudged_from")
    if lineage:
        lines.append(f"- **Re-judged** from run `{lineage.get('run_id')}` ({lineage.get('judge')} judge before); "
                     "no model query was made.")
    return ["## Judge", "", *lines, ""] if lines else []


def sampling_lines(meta: dict[str, Any], regions: pd.DataFrame, queries: Sequence[dict[str, Any]] | pd.DataFrame) -> list[str]:
    """The card's sampling section (empty for a greedy run): per region, failure probability per sample and pass^K."""
    k = samples_per_query(meta)
    if k < 2:
        return []
    config = recorded_options(meta)
    lines = ["## Sampling", "",
             f"The model was sampled (temperature {config.get('temperature')}, top-p {config.get('top_p')}), {k} answers "
             "per (cell, seed) pair. Each pair counts as one seed, failing on the share of its samples that failed.", ""]
    if regions is None or not len(regions):
        return lines
    frame = pd.DataFrame(queries)
    lines += ["| region | failure probability per sample | 95% CI (seeds) | seeds | pass^K |", "|---|---|---|---|---|"]
    for row in regions.itertuples():
        rate = float(row.failure_rate)
        per = f"fails on 1 in {max(round(1 / rate), 1)} samples" if rate > 0 else "no failing sample"
        passes = region_pass_k(frame, cells_of(row.cells), k)
        lines.append(f"| {row.region_id} | {rate:.2f} ({per}) | {float(row.ci_low):.2f}-{float(row.ci_high):.2f} | "
                     f"{int(row.seeds)} | {'n/a' if np.isnan(passes) else f'{passes:.2f}'} |")
    return lines + [""]


def region_pass_k(queries: pd.DataFrame, cells: Sequence[int], k: int) -> float:
    """The mean over a region's explored seeds of the chance that ``k`` samples all pass (NaN without such seeds)."""
    if queries.empty:
        return float("nan")
    inside = queries[(queries["phase"] == "explore") & queries["action_id"].isin([int(c) for c in cells])]
    if "unjudged" in inside.columns:
        inside = inside[~inside["unjudged"].eq(True)]
    if inside.empty:
        return float("nan")
    grouped = inside.groupby(["action_id", "seed_id"])["is_failure"].agg(["sum", "count"])
    estimates = pass_hat_k((grouped["count"] - grouped["sum"]).to_numpy(), grouped["count"].to_numpy(), k)
    return float(np.nanmean(estimates)) if np.isfinite(estimates).any() else float("nan")


