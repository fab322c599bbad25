"""Image-classifier judge for text-to-image: a Hub image classifier checks that the image shows what the prompt names.

The expected answer of each query is the one label of the judge model that its prompt names as a word (``a fancy
square`` expects ``square``; ``_`` in a label reads as a space, and a plural counts), so a prompt space's slots
fill the expected answer in. A prompt that names none or several of the labels is not judged. The image fails
when the classifier's top class is another label (or, with ``--judge-threshold``, when the named label's
probability is below it); the severity is the paper's logit severity of the wrong answer.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fade_hub.errors import BadConfig
from fade_hub.judges.base import Judge, JudgeConfig, Verdict
from fade_hub.judges.classifier import load_judge_model
from fade_hub.judges.label import logit_severity
from fade_hub.targets import Prediction, Target

logger = logging.getLogger(__name__)


def label_pattern(label: str) -> re.Pattern:
    """The whole-word, case-insensitive pattern of a label in a prompt (``_``/``-`` as spaces, plural allowed)."""
    words = re.split(r"[\s_-]+", label.strip())
    return re.compile(r"\b" + r"[\s_-]+".join(re.escape(word) for word in words) + r"(?:s|es)?\b", re.IGNORECASE)


class ImageClassifierJudge(Judge):
    """Failure when the judge model does not see, in the generated image, the label its prompt names."""

    name = "image-classifier"

    def __init__(self, config: JudgeConfig, target: Target) -> None:
        if not config.model_id:
            raise BadConfig("the image-classifier judge needs a model: pass --judge MODEL_ID (an image classifier "
                            "whose labels the prompts name, e.g. a shapes classifier for 'a photo of a {shape}')")
        self.model = load_judge_model(config, target, "image-classification")
        self.labels = dict(self.model.id2label or {})
        self.patterns = {label_id: label_pattern(name) for label_id, name in self.labels.items()}
        self.threshold = config.threshold
        self._warned = False

    def named_label(self, prompt: str) -> int | None:
        """The id of the one judge label the prompt names, or None when it names none or several."""
        named = [label_id for label_id, pattern in self.patterns.items() if pattern.search(prompt)]
        return named[0] if len(named) == 1 else None

    def _judge(self, seeds: list, inputs: list, predictions: list[Prediction], expectations: list) -> list[Verdict]:
        if any(prediction.image is None for prediction in predictions):
            raise BadConfig("the image-classifier judge needs image outputs; use it with text-to-image models")
        seen = self.model.predict([prediction.image for prediction in predictions])
        verdicts = []
        for prompt, result in zip(inputs, seen, strict=True):
            expected = self.named_label(str(prompt))
            if expected is None:
                if not self._warned:
                    logger.warning("prompt %r names none or several of the judge's labels (%s); such prompts are "
                                   "not judged", str(prompt), ", ".join(self.labels.values()))
                    self._warned = True
                verdicts.append(Verdict(False, 0.0, "not judged", judged=False,
                                        expected_source="the prompt names none or several of the judge's labels"))
                continue
            prob = float(result.probs[expected])
            wrong = result.label != expected if self.threshold is None else prob < self.threshold
            rule = "its top class" if self.threshold is None else f"probability >= {self.threshold:g}"
            verdicts.append(Verdict(
                is_failure=wrong, severity=logit_severity(result.score) if wrong else 0.0,
                expected=self.labels[expected], score=prob,
                expected_source=f"the label the prompt names ({rule} in judge model {self.model.model_id})",
            ))
        return verdicts

    def describe(self) -> dict[str, Any]:
        """Judge model (with commit), its labels and the failure rule."""
        return {
            "name": self.name,
            "model_id": self.model.model_id,
            "commit_sha": self.model.commit_sha,
            "labels": [self.labels[i] for i in sorted(self.labels)],
            "threshold": self.threshold,
            "reference": "the judge label the prompt names",
        }
