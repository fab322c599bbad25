"""Summarization judge: ROUGE-L F1 of the perturbed summary against the reference or the clean summary."""

from __future__ import annotations

import re
from typing import Any

from fade_hub.judges.base import CleanOutputs, Judge, Verdict
from fade_hub.targets import Prediction, Target

DEFAULT_THRESHOLD = 0.5
_WORD = re.compile(r"\w+")


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 on lowercased word tokens; two empty texts score 1, one empty text scores 0."""
    cand, ref = _WORD.findall(candidate.lower()), _WORD.findall(reference.lower())
    if not cand and not ref:
        return 1.0
    lcs = _lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


class RougeJudge(Judge):
    """Failure when ROUGE-L F1 falls below ``threshold x baseline``; severity is the drop from the baseline.

    Without a reference the perturbed summary is scored against the clean summary and the baseline is 1, so a
    failure is ROUGE-L < threshold. With a reference the baseline is the clean summary's own ROUGE-L against
    it, so the threshold is the share of the clean quality a perturbation must keep (an absolute bar would
    fail most clean summaries already: good abstractive summarizers score about 0.3-0.4 ROUGE-L).
    """

    name = "rouge"
    quality_metric = "ROUGE-L F1"

    @classmethod
    def from_config(cls, config, target: Target) -> RougeJudge:
        """ROUGE-L against the reference or the clean summary, at the config's threshold."""
        return cls(target, config.threshold)

    def __init__(self, target: Target, threshold: float | None) -> None:
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.clean = CleanOutputs(target)

    def _judge(self, seeds: list, inputs: list, predictions: list[Prediction], expectations: list) -> list[Verdict]:
        clean = self.clean.get(seeds)
        verdicts = []
        for seed, base, prediction in zip(seeds, clean, predictions, strict=True):
            reference = getattr(seed, "reference", None)
            expected = reference if reference else base.text
            baseline = rouge_l(base.text, reference) if reference else 1.0
            score = rouge_l(prediction.text, expected)
            verdicts.append(
                Verdict(
                    is_failure=score < self.threshold * baseline,
                    severity=max(0.0, baseline - score),
                    expected=expected,
                    score=score,
                    expected_source="reference summary" if reference else "clean summary",
                )
            )
        return verdicts

    def describe(self) -> dict[str, Any]:
        """Judge name, metric and threshold."""
        return {
            "name": self.name,
            "metric": "rouge-l f1",
            "threshold": self.threshold,
            "failure": "rouge-l < threshold x baseline (1, or the clean summary's rouge-l against the reference)",
        }
