"""Task detection from Hub metadata, ``model_index.json`` or ``config.json``."""

from __future__ import annotations

import logging

from fade_hub.errors import UnsupportedTask
from fade_hub.targets.source import ModelSource
from fade_hub.tasks import TASKS, task_for_pipeline_tag

logger = logging.getLogger(__name__)

# transformers auto-mapping tables, checked in order: supported tasks first.
_MAPPINGS = (
    ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", "image-classification"),
    ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", "text-classification"),
    ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "summarization"),
    ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "text-generation"),
    ("MODEL_FOR_CTC_MAPPING_NAMES", "automatic-speech-recognition"),
    ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "automatic-speech-recognition"),
    ("MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES", "audio-classification"),
    ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", "token-classification"),
    ("MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES", "question-answering"),
    ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "fill-mask"),
    ("MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES", "object-detection"),
    ("MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES", "image-segmentation"),
    ("MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES", "image-segmentation"),
    ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", "image-text-to-text"),
    ("MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES", "text-to-speech"),
    ("MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES", "zero-shot-image-classification"),
    ("MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES", "depth-estimation"),
    ("MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES", "video-classification"),
)
# Class-name suffixes for architectures transformers does not know (remote code).
_SUFFIXES = (
    ("ForImageClassification", "image-classification"),
    ("ForSequenceClassification", "text-classification"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForCTC", "automatic-speech-recognition"),
    ("ForAudioClassification", "audio-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
)
_AUTO_MAP_KEYS = {
    "AutoModelForImageClassification": "image-classification",
    "AutoModelForSequenceClassification": "text-classification",
    "AutoModelForCausalLM": "text-generation",
    "AutoModelForSeq2SeqLM": "summarization",
}
_DIFFUSERS_OTHER = (
    ("Img2Img", "image-to-image"),
    ("Inpaint", "image-inpainting"),
    ("Video", "text-to-video"),
    ("Audio", "text-to-audio"),
    ("Upscale", "image-to-image"),
    ("ImageVariation", "image-to-image"),
)


def _from_architecture(arch: str, config: dict) -> str | None:
    """The task of one transformers architecture class name, or None when unknown."""
    from transformers.models.auto import modeling_auto

    for table, task in _MAPPINGS:
        if arch in getattr(modeling_auto, table, {}).values():
            return task
    if arch.endswith("ForConditionalGeneration") and config.get("is_encoder_decoder"):
        return "summarization"
    return next((task for suffix, task in _SUFFIXES if arch.endswith(suffix)), None)


def _from_config(config: dict) -> str | None:
    """The task implied by a transformers ``config.json``."""
    for key in config.get("auto_map") or {}:
        if key in _AUTO_MAP_KEYS:
            return _AUTO_MAP_KEYS[key]
    for arch in config.get("architectures") or []:
        task = _from_architecture(arch, config)
        if task:
            return task
    return None


def _from_model_index(model_index: dict) -> str:
    """The task of a diffusers pipeline from its ``_class_name``."""
    name = str(model_index.get("_class_name", ""))
    return next((task for part, task in _DIFFUSERS_OTHER if part in name), "text-to-image")


def detect_source_task(source: ModelSource) -> str:
    """The supported task of a resolved model; raises UnsupportedTask otherwise."""
    detected = task_for_pipeline_tag(source.pipeline_tag) or source.pipeline_tag
    if detected is None and source.is_diffusers:
        detected = _from_model_index(source.model_index or {})
    if detected is None and source.config is not None:
        detected = _from_config(source.config)
    if detected in TASKS:
        return detected
    supported = ", ".join(TASKS)
    if detected is None:
        archs = ", ".join((source.config or {}).get("architectures") or []) or "none listed"
        raise UnsupportedTask(
            f"could not detect the task of model {source.model_id!r} (architectures: {archs}); "
            f"pass --task with one of: {supported}"
        )
    raise UnsupportedTask(
        f"model {source.model_id!r} is a {detected!r} model, which fade-hub does not explore "
        f"(supported: {supported}); if it can do one of these, pass --task TASK"
    )


def check_task_fits(source: ModelSource, task: str) -> None:
    """UnsupportedTask, before any weights load, when ``--task`` names a head the model's config cannot have."""
    if TASKS[task].diffusers != source.is_diffusers:
        kind = "a diffusers pipeline" if source.is_diffusers else "a transformers model"
        raise UnsupportedTask(
            f"--task {task} does not fit model {source.model_id!r}, which is {kind}; drop --task to use the detected task"
        )
    config = source.config or {}
    model_type = config.get("model_type")
    tables = [table for table, mapped in _MAPPINGS if mapped == task]
    if not model_type or not tables or source.is_diffusers:
        return
    from transformers.models.auto import modeling_auto

    detected = _from_config(config)
    archs = ", ".join(config.get("architectures") or []) or model_type
    if any(model_type in getattr(modeling_auto, table, {}) for table in tables):
        if detected and detected != task:
            logger.warning("model %s was trained for %s (%s): its %s head is newly initialised, so its answers "
                           "say nothing about the model", source.model_id, detected, archs, task)
        return
    if any(key in _AUTO_MAP_KEYS and _AUTO_MAP_KEYS[key] == task for key in config.get("auto_map") or {}):
        return  # the repo's own code provides the head
    hint = f"its architecture {archs} is for {detected}; drop --task" if detected else f"its architecture is {archs}"
    raise UnsupportedTask(
        f"--task {task} does not fit model {source.model_id!r}: a {model_type} model has no {task} head; {hint}"
    )
