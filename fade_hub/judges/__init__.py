"""Failure scoring per task: ``make_judge(task, config, target)`` gives a ``Judge`` returning ``Verdict`` objects.

``JUDGES`` maps each judge kind to its class (``"module:Class"``, imported on demand); the task registry
says which kinds apply to a task and which is its default. Every judge class builds itself with
``from_config(config, target)``. Users add their own with ``--judge package.module:Class`` (a ``Judge``
subclass), imported only when user code is allowed.
"""

from __future__ import annotations

from fade_hub.errors import BadConfig
from fade_hub.judges.base import Judge, JudgeConfig, Verdict
from fade_hub.judges.label import logit_severity
from fade_hub.judges.rouge import rouge_l
from fade_hub.tasks import get_task, load_object
from fade_hub.targets import Target
from fade_hub.usercode import import_user_object, is_user_ref

__all__ = ["JUDGES", "Judge", "JudgeConfig", "Verdict", "make_judge", "logit_severity", "rouge_l"]

JUDGES: dict[str, str] = {
    "label": "fade_hub.judges.label:LabelJudge",
    "classifier": "fade_hub.judges.classifier:ClassifierJudge",
    "keywords": "fade_hub.judges.pattern:PatternJudge",
    "regex": "fade_hub.judges.pattern:PatternJudge",
    "rouge": "fade_hub.judges.rouge:RougeJudge",
    "clip": "fade_hub.judges.clip:ClipJudge",
    "image-classifier": "fade_hub.judges.image_classifier:ImageClassifierJudge",
    "llm": "fade_hub.judges.llm:LLMJudge",
}
# what ``--judge MODEL_ID`` (kind "classifier") means for tasks whose outputs are images
_MODEL_JUDGE_FOR_IMAGES = "image-classifier"


def _default_kind(task: str, config: JudgeConfig) -> str:
    """The judge kind for a task when the config names none."""
    spec = get_task(task)
    if config.llm or config.served.is_remote:
        return "llm"
    if spec.default_judge is not None:
        return spec.default_judge
    for kind, given in (("classifier", config.model_id), ("keywords", config.keywords), ("regex", config.regex)):
        if given and kind in spec.judges:
            return kind
    raise BadConfig(
        f"{task} needs a judge: pass --judge MODEL_ID --judge-label LABEL (a text-classification model), "
        "--judge-llm MODEL_ID (a chat model with a rubric), or --judge-keywords WORD,... / --judge-regex PATTERN"
    )


def make_judge(task: str, config: JudgeConfig | None, target: Target, *, allow_user_code: bool = False) -> Judge:
    """Build the judge for ``task`` from ``config`` (None: the task's default judge)."""
    config = config or JudgeConfig()
    spec = get_task(task)
    kind = config.kind or _default_kind(task, config)
    if is_user_ref(kind):
        cls = import_user_object(kind, allowed=allow_user_code, what="--judge")
        if not (isinstance(cls, type) and issubclass(cls, Judge)):
            raise BadConfig(f"--judge {kind} is not a fade_hub.judges.Judge subclass")
        return cls.from_config(config, target)
    if kind == "classifier" and kind not in spec.judges and _MODEL_JUDGE_FOR_IMAGES in spec.judges:
        kind = _MODEL_JUDGE_FOR_IMAGES  # a judge model for generated images is an image classifier
    if kind not in JUDGES:
        raise BadConfig(f"unknown judge {kind!r}; choose one of: {', '.join(JUDGES)}, or package.module:Class")
    if kind not in spec.judges:
        raise BadConfig(f"judge {kind!r} does not apply to {task}; use one of: {', '.join(spec.judges)}")
    return load_object(JUDGES[kind]).from_config(config, target)
