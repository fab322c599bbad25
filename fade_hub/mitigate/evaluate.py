"""Before and after: the same cells, the same held-out seeds and the run's own judge, for the base and the adapted
model. Reports per targeted mode, the clean inputs and the untargeted cells, with Wilson intervals, the judge's mean
score on the clean inputs, and the Wasserstein distance between the two landscapes (the paper's shift measure).

Prompt templates have no unperturbed form: there, the clean inputs are the prompts of the *clean cells*, the
untargeted cells one level away from a targeted mode (``a plain square`` for the mode ``a fancy square``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..env import FailureEnv, QueryResult
from ..stats import wilson_interval

logger = logging.getLogger(__name__)

EXAMPLES_PER_MODE = 16


@dataclass
class Measurement:
    """One model's answers on the evaluation grid: failures and queries per cell and on clean seeds."""

    cells: dict[int, list[int]] = field(default_factory=dict)  # action id -> [failures, queries]
    clean: list[int] = field(default_factory=lambda: [0, 0])
    clean_scores: list[float] = field(default_factory=list)  # the judge's score of each clean query that has one
    examples: dict[tuple[int, str], QueryResult] = field(default_factory=dict)  # (targeted cell, seed id) -> answer

    def rate(self, cells: Sequence[int]) -> dict[str, Any]:
        """Pooled failures, queries, rate and Wilson interval over ``cells``."""
        k = sum(self.cells[cell][0] for cell in cells)
        n = sum(self.cells[cell][1] for cell in cells)
        return counts(k, n)


def counts(k: int, n: int) -> dict[str, Any]:
    """``{"queries", "failures", "rate", "ci_low", "ci_high"}`` (rate None without queries)."""
    low, high = wilson_interval(k, n)
    return {"queries": n, "failures": k, "rate": k / n if n else None, "ci_low": low, "ci_high": high}


def clean_cells(env: FailureEnv, cells: Sequence[int], targeted: Sequence[int]) -> list[int]:
    """Prompt spaces: the judged untargeted ``cells`` one level away from a targeted cell (none for other spaces)."""
    if env.space.modality != "prompt":
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


def _count_clean(found: Measurement, result: QueryResult) -> None:
    found.clean[0] += result.verdict.is_failure
    found.clean[1] += 1
    if result.verdict.score is not None:
        found.clean_scores.append(float(result.verdict.score))


def measure(env: FailureEnv, cells: Sequence[int], targeted: Sequence[int], *, label: str,
            show_progress: bool = True) -> Measurement:
    """Query ``env``'s target on every (cell, seed) and on the clean seeds; keep the targeted cells' answers."""
    found = Measurement(cells={cell: [0, 0] for cell in cells})
    clean = set(clean_cells(env, cells, targeted))
    seed_ids = [seed.seed_id for seed in env.seeds]
    pairs = [(cell, seed_id) for cell in cells for seed_id in seed_ids]
    batch = max(env.target.batch_size, 1) * 4
    with tqdm(total=len(pairs) + len(seed_ids), desc=f"evaluating {label}", unit="query",
              disable=not show_progress, dynamic_ncols=True) as bar:
        if env.space.modality != "prompt":
            for result in env.evaluate_clean(seed_ids):
                _count_clean(found, result)
        bar.update(len(seed_ids))
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            results = env.evaluate([env.space.action_from_id(cell) for cell, _ in chunk], [s for _, s in chunk])
            for (cell, seed_id), result in zip(chunk, results, strict=True):
                found.cells[cell][0] += result.verdict.is_failure
                found.cells[cell][1] += 1
                if cell in clean:
                    _count_clean(found, result)
                if cell in targeted:
                    found.examples[(cell, seed_id)] = result
            bar.update(len(chunk))
    return found


def wasserstein(before: Sequence[float], after: Sequence[float]) -> float:
    """1-Wasserstein distance between two landscapes seen as distributions of per-cell failure rates."""
    a, b = np.sort(np.asarray(before, dtype=float)), np.sort(np.asarray(after, dtype=float))
    return float(np.mean(np.abs(a - b))) if len(a) else 0.0


def compare(env: FailureEnv, before: Measurement, after: Measurement, targeted: Sequence[int],
            votes: dict[int, Any]) -> dict[str, Any]:
    """The figures of ``fade_eval.json``: per mode, targeted, clean, untargeted, Wasserstein."""
    space = env.space
    cells = sorted(before.cells)
    untargeted = [cell for cell in cells if cell not in set(targeted)]
    modes = []
    for cell in targeted:
        levels = space.level_strings(space.action_from_id(cell))
        modes.append({
            "action_id": int(cell),
            "cell": ", ".join(f"{name}={value}" for name, value in levels.items()),
            "levels": levels,
            "votes": dict(votes.get(cell, {})),
            "before": before.rate([cell]),
            "after": after.rate([cell]),
        })
    targeted_before, targeted_after = before.rate(targeted), after.rate(targeted)
    clean_before, clean_after = counts(*before.clean), counts(*after.clean)
    untargeted_before, untargeted_after = before.rate(untargeted), after.rate(untargeted)
    return {
        "modes": modes,
        "targeted": {"before": targeted_before, "after": targeted_after,
                     "drop": _drop(targeted_before["rate"], targeted_after["rate"])},
        "clean": {"before": clean_before, "after": clean_after,
                  "accuracy_change": _change(clean_before["rate"], clean_after["rate"], sign=-1),
                  "judge_score": {"before": _mean(before.clean_scores), "after": _mean(after.clean_scores)},
                  "inputs": _clean_source(env, cells, targeted), **_quality(env, before, after)},
        "untargeted": {"before": untargeted_before, "after": untargeted_after,
                       "change": _change(untargeted_before["rate"], untargeted_after["rate"])},
        "wasserstein": wasserstein([before.rate([c])["rate"] or 0.0 for c in cells],
                                   [after.rate([c])["rate"] or 0.0 for c in cells]),
        "cells_evaluated": len(cells),
        "queries_per_model": sum(n for _, n in before.cells.values()) + before.clean[1],
    }


def _quality(env: FailureEnv, before: Measurement, after: Measurement) -> dict[str, Any]:
    """``{"quality": {metric, before, after, change}}``: the mean judge score on clean inputs, for judges whose score
    is a quality measure (ROUGE-L of summaries, CLIP score of images); empty for the others."""
    metric = env.judge.quality_metric
    if not metric or not before.clean_scores or not after.clean_scores:
        return {}
    mean_before, mean_after = _mean(before.clean_scores), _mean(after.clean_scores)
    return {"quality": {"metric": metric, "before": mean_before, "after": mean_after,
                        "change": mean_after - mean_before, "queries": len(after.clean_scores)}}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _clean_source(env: FailureEnv, cells: Sequence[int], targeted: Sequence[int]) -> str:
    """What the clean figures were measured on, in words."""
    if env.space.modality != "prompt":
        return "the unperturbed seeds"
    space = env.space
    named = [", ".join(f"{k}={v}" for k, v in space.level_strings(space.action_from_id(cell)).items())
             for cell in clean_cells(env, cells, targeted)]
    return "the clean cells (untargeted, one level from a targeted mode): " + ("; ".join(named) or "none")


def _drop(before: float | None, after: float | None) -> float | None:
    """The relative drop of a failure rate (1.0 = faded entirely); None when there was nothing to drop."""
    if not before or after is None:
        return None
    return (before - after) / before


def _change(before: float | None, after: float | None, sign: int = 1) -> float | None:
    """``after - before`` (times ``sign``), or None."""
    if before is None or after is None:
        return None
    return sign * (after - before)
