"""Failure scoring per task: ``make_judge(task, config, target)`` gives a ``Judge`` returning ``Verdict`` objects."""

from __future__ import annotations

from fade_hub.errors import BadConfig
from fade_hub.judges.base import KINDS, Judge, JudgeConfig, Verdict
from fade_hub.judges.classifier import ClassifierJudge
from fade_hub.judges.clip import ClipJudge
from fade_hub.judges.label import LabelJudge, logit_severity
from fade_hub.judges.pattern import PatternJudge
from fade_hub.judges.rouge import RougeJudge, rouge_l
from fade_hub.targets import Target

__all__ = ["KINDS", "Judge", "JudgeConfig", "Verdict", "make_judge", "logit_severity", "rouge_l"]

DEFAULT_KIND = {
    "image-classification": "label",
    "text-classification": "label",
    "summarization": "rouge",
    "text-to-image": "clip",
}
ALLOWED_KINDS = {
    "image-classification": ("label",),
    "text-classification": ("label",),
    "text-generation": ("classifier", "keywords", "regex"),
    "summarization": ("rouge", "classifier", "keywords", "regex"),
    "text-to-image": ("clip",),
}


def _default_kind(task: str, config: JudgeConfig) -> str:
    """The judge kind for a task when the config names none."""
    if task in DEFAULT_KIND:
        return DEFAULT_KIND[task]
    if config.model_id:
        return "classifier"
    if config.keywords:
        return "keywords"
    if config.regex:
        return "regex"
    raise BadConfig(
        "text generation needs a judge: pass --judge MODEL_ID --judge-label LABEL (a text-classification model), "
        "or --judge-keywords WORD,... / --judge-regex PATTERN"
    )


def make_judge(task: str, config: JudgeConfig | None, target: Target) -> Judge:
    """Build the judge for ``task`` from ``config`` (None: the task's default judge)."""
    config = config or JudgeConfig()
    if task not in ALLOWED_KINDS:
        raise BadConfig(f"no judge for task {task!r}")
    kind = config.kind or _default_kind(task, config)
    if kind not in ALLOWED_KINDS[task]:
        raise BadConfig(f"judge {kind!r} does not apply to {task}; use one of: {', '.join(ALLOWED_KINDS[task])}")
    if kind == "label":
        return LabelJudge(target)
    if kind == "classifier":
        return ClassifierJudge(config, target)
    if kind in ("keywords", "regex"):
        return PatternJudge(config.keywords, config.regex)
    if kind == "rouge":
        return RougeJudge(target, config.threshold)
    return ClipJudge(config, target)
