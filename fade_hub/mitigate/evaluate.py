"""Before and after: the same cells, the same held-out seeds and the run's own judge, for the base and the adapted
model, compared pairwise.

The seed is the unit: each model answers every (cell, seed) pair of the evaluation grid once, and every figure is a
pooled failure rate whose 95 % interval comes from one bootstrap over seeds (``fade_hub.stats.paired_bootstrap``),
before and after sharing every resample, so that a drop or a change is measured on the same seeds. The pairs fall in
four groups:

- **targeted**: the cells of the regions reviewers marked fix, on the seed classes each region holds on, and the
  cells marked fix on their own, on every seed (with one figure per region and per cell);
- **collateral on unseen perturbations**: a random share of the untargeted cells, drawn before training and never
  trained on (``split_untargeted``), where a side effect of the adapter shows;
- **untargeted, trained on**: the other pairs (the rest of the untargeted cells, which training mixes in to keep the
  model's answers, and the targeted cells' seeds of classes their region does not hold on);
- **clean**: the unperturbed seeds (for prompt templates, which have no unperturbed form, the untargeted cells one
  level away from a targeted cell: ``a plain square`` for the region ``a fancy square``).

The verdicts (``verdicts``) read interval bounds, never point estimates. The per-cell change (before - after, with
its interval) is the shift's headline; the Wasserstein distance between the two sets of per-cell rates stays as a
secondary number: it compares the rates sorted, so failures that move from some cells to others score nothing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..env import FailureEnv, QueryResult
from ..stats import bootstrap_weights, paired_bootstrap
from .selection import Selection, TargetRegion

logger = logging.getLogger(__name__)

EXAMPLES_PER_MODE = 16
MIN_COLLATERAL = 20  # collateral cells at least, when the untargeted cells allow (never more than half for it)
FADED_DROP = 0.8  # "the region faded": the lower bound of its failures' drop reaches this
CLEAN_LOSS = 0.01  # "clean inputs kept": the upper bound of the clean failure rate's rise stays within this
COLLATERAL_RISE = 0.02  # "no collateral": the upper bound of the failure rise on unseen perturbations stays within
WASSERSTEIN_NOTE = ("compares the sorted per-cell failure rates, so failures that move from some cells to as many "
                    "others score 0: read the per-cell change map instead")


@dataclass
class Measurement:
    """One model's answers on the evaluation grid: a failure per (cell, seed) pair and per clean seed."""

    cells: list[int]
    seed_ids: list[str]
    failed: np.ndarray  # (cells, seeds): 1.0 where the answer failed
    clean: np.ndarray | None = None  # (seeds,): the unperturbed seeds' failures (None for prompt templates)
    clean_score_sum: np.ndarray | None = None  # (seeds,): the judge's scores of each seed's clean queries, summed
    clean_score_count: np.ndarray | None = None  # (seeds,): how many of them have a score
    examples: dict[tuple[int, str], QueryResult] = field(default_factory=dict)  # (targeted cell, seed id) -> answer

    def row(self, cell: int) -> int:
        """The row of ``cell`` in ``failed``."""
        return self.cells.index(cell)


def clean_cells(env: FailureEnv, cells: Sequence[int], targeted: Sequence[int]) -> list[int]:
    """Prompt spaces: the judged untargeted ``cells`` one level away from a targeted cell (none for other spaces)."""
    if env.space.inputs.clean_input:
        return []
    space, chosen = env.space, set(targeted)
    modes = [space.action_from_id(cell) for cell in targeted]

    def near(cell: int) -> bool:
        action = space.action_from_id(cell)
        return any(sum(a != b for a, b in zip(action, mode)) == 1 for mode in modes)

    return [cell for cell in cells if cell not in chosen and env.expectation(cell).judged and near(cell)]


def evaluation_cells(env: FailureEnv, targeted: Sequence[int], excluded: Sequence[int], budget: int,
                     seed: int) -> list[int]:
    """Every judged cell when the grid fits ``budget`` queries, else the targeted and clean ones plus a fixed sample."""
    space = env.space
    judged = [cell for cell in range(space.num_cells) if env.expectation(cell).judged and cell not in set(excluded)]
    clean = clean_cells(env, judged, targeted)
    others = [cell for cell in judged if cell not in set(targeted) | set(clean)]
    room = max(budget // max(len(env.seeds), 1) - len(targeted) - len(clean), 0)
    if len(others) > room:
        others = sorted(np.random.default_rng(seed).choice(others, size=room, replace=False).tolist())
    return sorted(set(targeted) | set(clean) | set(others))


def collateral_count(untargeted: int, share: float) -> int:
    """How many of ``untargeted`` cells are held out as unseen perturbations: ``share`` of them, at least
    ``MIN_COLLATERAL`` when that is at most half of them, and never all (training keeps one at least)."""
    if untargeted < 2:
        return 0
    return min(untargeted - 1, max(math.ceil(share * untargeted), min(MIN_COLLATERAL, untargeted // 2)))


def split_untargeted(cells: Sequence[int], targeted: Sequence[int], share: float, seed: int,
                     keep: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """(collateral, trained on): the untargeted evaluation ``cells`` split at random (seeded) before training; the
    cells in ``keep`` (training needs them: the clean cells of prompt spaces, the cells of corrected examples) are
    never held out."""
    untargeted = [cell for cell in cells if cell not in set(targeted)]
    candidates = [cell for cell in untargeted if cell not in set(keep)]
    count = collateral_count(len(candidates), share)
    rng = np.random.default_rng([seed, 22])  # 22: its own stream, apart from the sample of evaluation cells
    collateral = sorted(int(cell) for cell in rng.choice(candidates, size=count, replace=False)) if count else []
    return collateral, [cell for cell in untargeted if cell not in set(collateral)]


def _score(result: QueryResult, sums: np.ndarray, counts: np.ndarray, column: int) -> None:
    if result.verdict.score is not None:
        sums[column] += float(result.verdict.score)
        counts[column] += 1


def measure(env: FailureEnv, cells: Sequence[int], targeted: Sequence[int], *, label: str,
            show_progress: bool = True) -> Measurement:
    """Query ``env``'s target on every (cell, seed) and on the clean seeds; keep the targeted cells' answers."""
    cells = list(cells)
    seed_ids = [seed.seed_id for seed in env.seeds]
    column = {seed_id: i for i, seed_id in enumerate(seed_ids)}
    failed = np.zeros((len(cells), len(seed_ids)))
    sums, counts = np.zeros(len(seed_ids)), np.zeros(len(seed_ids))
    clean, prompt_clean = None, set(clean_cells(env, cells, targeted))
    rows, chosen = {cell: i for i, cell in enumerate(cells)}, set(targeted)
    pairs = [(cell, seed_id) for cell in cells for seed_id in seed_ids]
    batch = max(env.target.batch_size, 1) * 4
    found = Measurement(cells, seed_ids, failed)
    with tqdm(total=len(pairs) + len(seed_ids), desc=f"evaluating {label}", unit="query",
              disable=not show_progress, dynamic_ncols=True) as bar:
        if env.space.inputs.clean_input:
            clean = np.zeros(len(seed_ids))
            for i, result in enumerate(env.evaluate_clean(seed_ids)):
                clean[i] = float(result.verdict.is_failure)
                _score(result, sums, counts, i)
        bar.update(len(seed_ids))
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            results = env.evaluate([env.space.action_from_id(cell) for cell, _ in chunk], [s for _, s in chunk])
            for (cell, seed_id), result in zip(chunk, results, strict=True):
                failed[rows[cell], column[seed_id]] = float(result.verdict.is_failure)
                if cell in prompt_clean:
                    _score(result, sums, counts, column[seed_id])
                if cell in chosen:
                    found.examples[(cell, seed_id)] = result
            bar.update(len(chunk))
    found.clean, found.clean_score_sum, found.clean_score_count = clean, sums, counts
    return found


def wasserstein(before: Sequence[float], after: Sequence[float]) -> float:
    """1-Wasserstein distance between two landscapes seen as distributions of per-cell failure rates (secondary:
    see ``WASSERSTEIN_NOTE``)."""
    a, b = np.sort(np.asarray(before, dtype=float)), np.sort(np.asarray(after, dtype=float))
    return float(np.mean(np.abs(a - b))) if len(a) else 0.0


def _number(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


class BeforeAfter:
    """The base and adapted measurements of one evaluation, and the bootstrap resamples every figure shares."""

    def __init__(self, env: FailureEnv, before: Measurement, after: Measurement, targeted: Sequence[int],
                 seed: int) -> None:
        self.env, self.before, self.after, self.targeted = env, before, after, list(targeted)
        self.weights = bootstrap_weights(len(before.seed_ids), seed=seed)
        self.contexts = np.array([str(item.context) for item in env.seeds], dtype=object)

    def rows(self, cells: Sequence[int]) -> np.ndarray:
        """A (cells, seeds) mask of the rows of ``cells``."""
        mask = np.zeros(self.before.failed.shape, dtype=bool)
        mask[[self.before.row(cell) for cell in cells]] = True
        return mask

    def region_mask(self, region: TargetRegion) -> np.ndarray:
        """The region's (cell, seed) pairs: its cells, on the seeds of the classes it holds on."""
        mask = self.rows([cell for cell in region.cells if cell in self.before.cells])
        if region.classes:
            mask &= np.isin(self.contexts, list(region.classes))[None, :]
        return mask

    def figures(self, mask: np.ndarray | None = None, *, clean: bool = False) -> dict[str, Any]:
        """Before, after, change and drop of the pairs in ``mask`` (or of the clean inputs), with their intervals."""
        if clean:
            k0, k1, n = self._clean()
        else:
            n = mask.sum(axis=0).astype(float)
            k0, k1 = (self.before.failed * mask).sum(axis=0), (self.after.failed * mask).sum(axis=0)
        found = paired_bootstrap(k0, k1, n, self.weights)
        figures: dict[str, Any] = {
            when: {"queries": int(n.sum()), "failures": int(round(float(k.sum()))), "seeds": int((n > 0).sum()),
                   "rate": _number(found[when][0]), "ci_low": _number(found[f"{when}_low"][0]),
                   "ci_high": _number(found[f"{when}_high"][0])}
            for when, k in (("before", k0), ("after", k1))
        }
        for name in ("change", "drop"):
            figures.update({name: _number(found[name][0]), f"{name}_low": _number(found[f"{name}_low"][0]),
                            f"{name}_high": _number(found[f"{name}_high"][0])})
        figures["unchanged"] = bool(found["unchanged"][0])
        return figures

    def _clean(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per seed: clean failures before and after, and clean queries."""
        if self.before.clean is not None:
            return self.before.clean, self.after.clean, np.ones(len(self.before.seed_ids))
        cells = clean_cells(self.env, self.before.cells, self.targeted)
        mask = self.rows(cells)
        return ((self.before.failed * mask).sum(axis=0), (self.after.failed * mask).sum(axis=0),
                mask.sum(axis=0).astype(float))

    def quality(self) -> dict[str, Any]:
        """The mean judge score on clean inputs before and after, with the interval of its change (a quality
        metric: ROUGE-L of summaries, CLIP score of images); empty for judges whose score is no quality."""
        metric = self.env.judge.quality_metric
        counts = self.before.clean_score_count
        if not metric or counts is None or not counts.sum() or not self.after.clean_score_count.sum():
            return {}
        found = paired_bootstrap(self.before.clean_score_sum, self.after.clean_score_sum, counts, self.weights)
        return {"quality": {"metric": metric, "before": _number(found["before"][0]),
                            "after": _number(found["after"][0]), "change": _number(found["change"][0]),
                            "change_low": _number(found["change_low"][0]),
                            "change_high": _number(found["change_high"][0]), "queries": int(counts.sum())}}

    def cell_changes(self, roles: dict[int, str]) -> pd.DataFrame:
        """One row per evaluated cell: its levels, role, failure rates before and after, and the change (before -
        after: positive where the adapter fixed failures) with its interval."""
        space, before, after = self.env.space, self.before, self.after
        n = np.ones_like(before.failed)
        found = paired_bootstrap(before.failed, after.failed, n, self.weights)
        rows = []
        for i, cell in enumerate(before.cells):
            levels = space.level_strings(space.action_from_id(cell))
            rows.append({"action_id": int(cell), **levels, "role": roles.get(cell, "untargeted"),
                         "seeds": int(before.failed.shape[1]), "failures_before": int(before.failed[i].sum()),
                         "failures_after": int(after.failed[i].sum()), "rate_before": float(found["before"][i]),
                         "rate_after": float(found["after"][i]), "change": float(-found["change"][i]),
                         "change_low": float(-found["change_high"][i]),
                         "change_high": float(-found["change_low"][i])})
        return pd.DataFrame(rows)


def compare(env: FailureEnv, before: Measurement, after: Measurement, selection: Selection, collateral: Sequence[int],
            *, seed: int = 0) -> tuple[dict[str, Any], pd.DataFrame]:
    """The figures of ``fade_eval.json`` (per region and cell targeted, targeted, clean, collateral, untargeted_trained,
    verdicts, Wasserstein) and the per-cell change table."""
    space, targeted = env.space, list(selection.targeted)
    comparison = BeforeAfter(env, before, after, targeted, seed)
    in_regions = {cell for region in selection.regions for cell in region.cells}
    whole = [cell for cell in targeted if cell not in in_regions]  # cells marked fix on their own: every seed
    targeted_mask = comparison.rows(whole)
    regions = []
    for region in selection.regions:
        mask = comparison.region_mask(region)
        targeted_mask |= mask
        regions.append({**region.summary(), **comparison.figures(mask)})
    collateral_mask = comparison.rows(list(collateral))
    untargeted_mask = ~targeted_mask & ~collateral_mask
    modes = []
    for cell in targeted:
        levels = space.level_strings(space.action_from_id(cell))
        modes.append({"action_id": int(cell), "cell": ", ".join(f"{name}={value}" for name, value in levels.items()),
                      "levels": levels, "votes": dict(selection.votes.get(cell, {})),
                      **comparison.figures(comparison.rows([cell]))})
    clean = comparison.figures(clean=True)
    roles = {**{cell: "collateral" for cell in collateral}, **{cell: "targeted" for cell in targeted}}
    changes = comparison.cell_changes(roles)
    figures = {
        "regions": regions,
        "modes": modes,
        "targeted": comparison.figures(targeted_mask),
        "clean": {**clean, "accuracy_change": _negated(clean["change"]),
                  "accuracy_change_low": _negated(clean["change_high"]),
                  "accuracy_change_high": _negated(clean["change_low"]),
                  "judge_score": _judge_score(before, after), "inputs": _clean_source(env, before.cells, targeted),
                  **comparison.quality()},
        "collateral": {**comparison.figures(collateral_mask), "cells": [int(cell) for cell in collateral]},
        "untargeted_trained": {**comparison.figures(untargeted_mask),
                       "cells": len([cell for cell in before.cells if cell not in set(targeted) | set(collateral)]),
                       "targeted_cells_other_classes": bool((untargeted_mask & comparison.rows(targeted)).any())},
        "wasserstein": wasserstein(changes["rate_before"].fillna(0.0), changes["rate_after"].fillna(0.0)),
        "wasserstein_note": WASSERSTEIN_NOTE,
        "cells_evaluated": len(before.cells),
        "queries_per_model": int(before.failed.size + (len(before.seed_ids) if before.clean is not None else 0)),
        "statistics": {"unit": "seed", "interval": "95% percentile bootstrap over seeds, paired (before and after "
                       "share every resample)", "resamples": int(comparison.weights.shape[0]), "seed": seed},
    }
    figures["cell_changes"] = change_summary(changes, [factor.name for factor in space.factors])
    figures["verdicts"] = verdicts(figures)
    return figures, changes


def change_summary(changes: pd.DataFrame, factors: Sequence[str]) -> dict[str, Any]:
    """The per-cell change map in a few numbers: the cells whose change interval lies above 0 (fixed) or below 0
    (worse), and the untargeted cell whose failures rose most."""
    others = changes[changes["role"] != "targeted"]
    worst = None
    if len(others) and others["change"].min() < 0:
        row = others.loc[others["change"].idxmin()]
        worst = {"action_id": int(row["action_id"]), "role": row["role"],
                 "cell": ", ".join(f"{name}={row[name]}" for name in factors), "change": float(row["change"]),
                 "change_low": float(row["change_low"]), "change_high": float(row["change_high"])}
    return {"cells": len(changes), "fixed": int((changes["change_low"] > 0).sum()),
            "worse": int((changes["change_high"] < 0).sum()), "largest_rise": worst}


def _negated(value: float | None) -> float | None:
    return None if value is None else -value


def _judge_score(before: Measurement, after: Measurement) -> dict[str, float | None]:
    """The judge's mean score on the clean inputs, before and after (None where no clean query has one)."""

    def mean(found: Measurement) -> float | None:
        count = found.clean_score_count
        return float(found.clean_score_sum.sum() / count.sum()) if count is not None and count.sum() else None

    return {"before": mean(before), "after": mean(after)}


def _clean_source(env: FailureEnv, cells: Sequence[int], targeted: Sequence[int]) -> str:
    """What the clean figures were measured on, in words."""
    if env.space.inputs.clean_input:
        return "the unperturbed seeds"
    space = env.space
    named = [", ".join(f"{k}={v}" for k, v in space.level_strings(space.action_from_id(cell)).items())
             for cell in clean_cells(env, cells, targeted)]
    return "the clean cells (untargeted, one level from a targeted region or cell): " + ("; ".join(named) or "none")


def verdicts(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the figures allow to say, read from interval bounds: ``faded`` (the targeted failures dropped by at least
    ``FADED_DROP``), ``clean`` (the clean failure rate rose by at most ``CLEAN_LOSS``) and ``collateral`` (failures
    on unseen perturbations rose by at most ``COLLATERAL_RISE``); ``holds`` is None where nothing was measured."""
    targeted, clean, collateral = figures["targeted"], figures["clean"], figures["collateral"]
    return {
        "faded": {"holds": None if targeted["drop_low"] is None else targeted["drop_low"] >= FADED_DROP,
                  "bound": targeted["drop_low"], "limit": FADED_DROP},
        "clean": {"holds": None if clean["change_high"] is None else clean["change_high"] <= CLEAN_LOSS,
                  "bound": clean["change_high"], "limit": CLEAN_LOSS},
        "collateral": {"holds": None if collateral["change_high"] is None
                       else collateral["change_high"] <= COLLATERAL_RISE,
                       "bound": collateral["change_high"], "limit": COLLATERAL_RISE},
    }
