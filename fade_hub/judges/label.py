"""Classifier judge: a wrong label is a failure, severity from the confidence of the wrong answer."""

from __future__ import annotations

import logging
import math
from typing import Any

from fade_hub.judges.base import CleanOutputs, Judge, Verdict
from fade_hub.targets import Prediction, Target

logger = logging.getLogger(__name__)
_EPS = 1e-6


def logit_severity(prob: float) -> float:
    """The paper's severity of a wrong answer: 10 * |log(p / (1 - p))| of the predicted class."""
    p = min(max(float(prob), _EPS), 1.0 - _EPS)
    return 10.0 * abs(math.log(p / (1.0 - p)))


class LabelJudge(Judge):
    """Failure when the predicted class differs from the seed's label (or the clean prediction when unlabelled)."""

    name = "label"
    honours_directional = True

    @classmethod
    def from_config(cls, config, target: Target) -> LabelJudge:
        """The label judge needs only the target."""
        return cls(target)

    def __init__(self, target: Target) -> None:
        self.id2label = target.id2label or {}
        self.label2id = {name: label_id for label_id, name in sorted(self.id2label.items(), reverse=True)}
        self.clean = CleanOutputs(target)
        self._noted_unlabelled = False

    def _judge(self, seeds: list, inputs: list, predictions: list[Prediction], expectations: list) -> list[Verdict]:
        unlabelled = [seed for seed in seeds if getattr(seed, "label", None) is None]
        clean = dict(zip((s.seed_id for s in unlabelled), self.clean.get(unlabelled), strict=True))
        if unlabelled and not self._noted_unlabelled:
            logger.info("seeds without labels: judging against the model's own prediction on the clean input")
            self._noted_unlabelled = True
        verdicts = []
        for seed, prediction, expectation in zip(seeds, predictions, expectations, strict=True):
            labelled = getattr(seed, "label", None) is not None
            own = seed.label if labelled else clean[seed.seed_id].label
            expected = expectation.apply(self.id2label.get(own, str(own)))
            wrong = prediction.label != self.label2id.get(expected, own)
            severity = logit_severity(prediction.score if prediction.score is not None else 0.5) if wrong else 0.0
            source = expectation.describe("seed label" if labelled else "clean prediction")
            verdicts.append(Verdict(is_failure=wrong, severity=severity, expected=expected, score=prediction.score,
                                    expected_source=source))
        return verdicts

    def describe(self) -> dict[str, Any]:
        """Judge name and what counts as the right answer."""
        return {"name": self.name, "reference": "the seed's label, else the model's prediction on the clean seed, "
                "mapped through the cell's directional ops"}
