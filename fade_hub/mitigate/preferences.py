"""Preference data for a language model, built from the training plan and the model's own answers.

For every training seed perturbed into a targeted mode, the base model answers and the run's judge scores it. Each
failing answer becomes the ``rejected`` side of a pair whose ``chosen`` side is, in this order: the reviewers'
agreed correction (for the examples they corrected), the model's own answer to the clean prompt when the judge
passes it, or the best of N sampled answers to the perturbed prompt that pass the judge (rejection sampling).
Passing answers to clean prompts and to untargeted cells are kept as *anchors*: desirable examples that keep
the model as it was where it did not fail.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..env import QueryResult
from ..errors import BadConfig
from ..targets import Prediction
from .base import TrainingPlan

logger = logging.getLogger(__name__)

QUERY_CHUNK = 256


@dataclass
class Pair:
    """A failing prompt, the answer to prefer, and the failing answer (None: a correction without one)."""

    prompt: str
    chosen: str
    rejected: str | None
    source: str  # "correction", "clean answer" or "sampled answer"


@dataclass
class PreferenceData:
    """The pairs and anchors to train on, with what it took to build them (for ``fade_eval.json``)."""

    pairs: list[Pair]
    anchors: list[tuple[str, str]]  # (prompt, passing answer)
    stats: dict[str, Any] = field(default_factory=dict)


def _answer(env, cells: list[int], seed_ids: list[str]) -> list[QueryResult]:
    """The model's judged answers on (cell, seed) pairs, in chunks."""
    results: list[QueryResult] = []
    for start in range(0, len(seed_ids), QUERY_CHUNK):
        chunk = slice(start, start + QUERY_CHUNK)
        results += env.evaluate([env.space.action_from_id(cell) for cell in cells[chunk]], seed_ids[chunk])
    return results


def _sampled(plan: TrainingPlan, target: Any, failing: list[QueryResult], samples: int) -> list[str | None]:
    """For each failing query, the passing sampled answer of least severity, or None when none of them passes."""
    if not failing or samples < 1:
        return [None] * len(failing)
    answers = target.sample([str(result.input) for result in failing], samples)
    seeds = [result.seed for result in failing for _ in range(samples)]
    inputs = [result.input for result in failing for _ in range(samples)]
    expectations = [plan.env.expectation(result.action_id) for result in failing for _ in range(samples)]
    verdicts = plan.env.judge.judge(seeds, inputs, [Prediction(text=text) for group in answers for text in group],
                                    expectations)
    best: list[str | None] = []
    for index, group in enumerate(answers):
        mine = verdicts[index * samples : (index + 1) * samples]
        scored = [(verdict.severity, text) for text, verdict in zip(group, mine, strict=True) if not verdict.is_failure]
        best.append(min(scored, key=lambda item: item[0])[1] if scored else None)
    return best


def _contrast(output: str | None, chosen: str) -> str | None:
    """A recorded failing output worth contrasting with the chosen answer: not empty, and not the same text."""
    return output if output and output.strip() and output.strip() != chosen.strip() else None


def _no_pair_error(failing: int, prompts: int, samples: int, cells: list[int]) -> BadConfig:
    where = ", ".join(str(cell) for cell in cells)
    if not failing:
        return BadConfig(
            f"the base model answers none of the {prompts} training prompts of the targeted modes ({where}) with a "
            "failure, so there is nothing to fade; add preferred texts for failing examples in the feedback Space, "
            "or pass --train-seeds with prompts on which these modes fail"
        )
    return BadConfig(
        f"no usable preference pair: none of the {failing} failing answers of the targeted modes ({where}) has a "
        f"passing alternative (the answers to the clean prompts fail the judge too, and so do {samples} sampled "
        "answers to each prompt); add a preferred text to failing examples of these modes in the feedback Space "
        "(a correction on an example such as q12)"
    )


def collect(plan: TrainingPlan, target: Any, *, samples: int, anchors_per_seed: int = 1,
            seed: int = 0) -> PreferenceData:
    """Pairs for the targeted modes and the corrections, anchors from clean and untargeted prompts.

    BadConfig (one line naming what to add in the feedback Space) when there is not a single pair to train on.
    """
    env, seed_ids = plan.env, [item.seed_id for item in plan.seeds]
    clean = {result.seed.seed_id: result for result in env.evaluate_clean(seed_ids)}
    cells = [cell for cell in plan.targeted for _ in seed_ids]
    targeted = _answer(env, cells, seed_ids * len(plan.targeted)) if plan.targeted else []
    failing = [result for result in targeted if result.verdict.is_failure]
    pairs = [Pair(str(example.input), example.answer, _contrast(example.output, example.answer), "correction")
             for example in plan.corrections]
    need_sampling = []
    for result in failing:
        own = clean[result.seed.seed_id]
        if own.verdict.is_failure:
            need_sampling.append(result)
        else:
            pairs.append(Pair(str(result.input), own.prediction.text, result.prediction.text, "clean answer"))
    found = _sampled(plan, target, need_sampling, samples)
    pairs += [Pair(str(result.input), text, result.prediction.text, "sampled answer")
              for result, text in zip(need_sampling, found, strict=True) if text is not None]
    if not pairs:
        raise _no_pair_error(len(failing), len(targeted), samples, plan.targeted)
    rng = np.random.default_rng(seed)
    others = [int(rng.choice(plan.untargeted)) for _ in seed_ids for _ in range(anchors_per_seed)] \
        if plan.untargeted else []
    untargeted = _answer(env, others, [sid for sid in seed_ids for _ in range(anchors_per_seed)]) if others else []
    anchors = [(str(result.input), result.prediction.text) for result in [*clean.values(), *untargeted]
               if not result.verdict.is_failure]
    sources = Counter(pair.source for pair in pairs)
    stats = {
        "targeted_prompts": len(targeted), "failing_answers": len(failing),
        "pairs": dict(sources), "anchors": len(anchors),
        "sampling": {"prompts": len(need_sampling), "samples_per_prompt": samples if need_sampling else 0,
                     "tried": len(need_sampling) * samples if need_sampling else 0,
                     "found": sources.get("sampled answer", 0)},
    }
    logger.info("preference data: %d pairs (%s), %d anchors", len(pairs), dict(sources), len(anchors))
    return PreferenceData(pairs, anchors, stats)
