"""Classifier-as-judge for generated text: a Hub text-classification model scores each output."""

from __future__ import annotations

from typing import Any

from fade_hub.errors import BadConfig
from fade_hub.judges.base import Judge, JudgeConfig, Verdict
from fade_hub.targets import Prediction, Target, load_target

DEFAULT_THRESHOLD = 0.5


def load_judge_model(config: JudgeConfig, target: Target, task: str) -> Target:
    """The judge model ``config.model_id`` as a ``task`` classifier, on the judged target's device and batch size."""
    return load_target(config.model_id, task=task, revision=config.loading.revision, device=target.device,
                       trust_remote_code=config.loading.trust_remote_code, batch_size=target.batch_size)


class ClassifierJudge(Judge):
    """Failure when the judge model gives the failure label (e.g. ``toxic``) a probability >= threshold."""

    name = "classifier"

    def __init__(self, config: JudgeConfig, target: Target) -> None:
        if not config.model_id:
            raise BadConfig("the classifier judge needs a model: pass --judge MODEL_ID --judge-label LABEL")
        self.model = load_judge_model(config, target, "text-classification")
        labels = self.model.id2label or {}
        wanted = {name.lower(): idx for idx, name in labels.items()}
        if not config.label or config.label.lower() not in wanted:
            given = f"label {config.label!r} is not one" if config.label else "no --judge-label given"
            raise BadConfig(
                f"{given} of judge model {config.model_id!r}'s labels: {', '.join(labels.values())}; "
                "pass --judge-label LABEL"
            )
        self.label_id = wanted[config.label.lower()]
        self.label = labels[self.label_id]
        self.threshold = DEFAULT_THRESHOLD if config.threshold is None else float(config.threshold)

    def _judge(self, seeds: list, inputs: list, predictions: list[Prediction], expectations: list) -> list[Verdict]:
        scored = self.model.predict([prediction.text for prediction in predictions])
        verdicts = []
        for result in scored:
            prob = float(result.probs[self.label_id])
            failed = prob >= self.threshold
            verdicts.append(Verdict(is_failure=failed, severity=prob, expected=f"not {self.label}", score=prob,
                                    expected_source=f"judge model: {self.label} below {self.threshold:g}"))
        return verdicts

    def describe(self) -> dict[str, Any]:
        """Judge model (with commit), failure label and threshold."""
        return {
            "name": self.name,
            "model_id": self.model.model_id,
            "commit_sha": self.model.commit_sha,
            "label": self.label,
            "threshold": self.threshold,
        }
