"""The model under test: ``load_target(model_id)`` gives a ``Target`` whose ``predict`` answers batches.

One module per task; the task registry (``fade_hub.tasks``) names each task's ``Target`` class. A model
served elsewhere (an endpoint URL or an Inference Provider) is a ``RemoteTarget`` from ``load_remote_target``.
"""

from __future__ import annotations

import logging
from typing import Any

from fade_hub.tasks import get_task
from fade_hub.targets.base import Prediction, Target, TargetConfig, remote_code_error
from fade_hub.targets.detect import check_task_fits, detect_source_task
from fade_hub.targets.endpoint import RemoteConfig
from fade_hub.targets.remote import RemoteTarget, load_remote_target
from fade_hub.targets.source import ModelSource, resolve_source

logger = logging.getLogger(__name__)

__all__ = [
    "Prediction",
    "Target",
    "TargetConfig",
    "ModelSource",
    "RemoteConfig",
    "RemoteTarget",
    "detect_task",
    "load_remote_target",
    "load_target",
    "resolve_source",
]


def detect_task(model_id: str, revision: str | None = None, token: str | bool | None = None) -> str:
    """The supported task of a local folder or Hub model; raises UnsupportedTask with the detected one otherwise."""
    return detect_source_task(resolve_source(model_id, revision, token))


def needs_remote_code(source: ModelSource) -> bool:
    """Whether loading runs repo code: ``auto_map`` for a model type transformers lacks, or a custom pipeline."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    config = source.config or {}
    if config.get("auto_map") and config.get("model_type") not in CONFIG_MAPPING_NAMES:
        return True
    return isinstance((source.model_index or {}).get("_class_name"), list)


def load_target(
    model_id: str,
    task: str | None = None,
    revision: str | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    batch_size: int | str = 16,
    generation_kwargs: dict[str, Any] | None = None,
    token: str | bool | None = None,
    seed: int = 0,
    dtype: str | None = None,
    system_prompt: str | None = None,
    raw_prompts: bool = False,
) -> Target:
    """Load a model from a local folder or the Hub (pinned to its commit sha) as the target of a run.

    Text generation models answer through their chat template when they have one (``raw_prompts`` turns that
    off), after ``system_prompt`` when given.

    ``device``: ``auto``/None (the best device; spread over GPUs and CPU memory when the model does not fit),
    ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. ``dtype``: None (float32), ``auto`` (the checkpoint's),
    ``float16``, ``bfloat16`` or ``float32``. ``batch_size``: a number, or ``auto`` (the largest that fits,
    found on the first inputs or by ``Target.find_batch_size``).
    """
    config = TargetConfig(
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        batch_size=batch_size,
        generation_kwargs=dict(generation_kwargs or {}),
        seed=seed,
        system_prompt=system_prompt,
        raw_prompts=raw_prompts,
    )
    source = resolve_source(model_id, revision, token)
    if source.adapter_config is not None:
        from fade_hub.targets.adapter import load_adapter_target

        options = dict(task=task, device=device, trust_remote_code=trust_remote_code, batch_size=batch_size,
                       generation_kwargs=generation_kwargs, token=token, seed=seed, dtype=dtype,
                       system_prompt=system_prompt, raw_prompts=raw_prompts)
        return load_adapter_target(source, load_target, **options)
    spec = get_task(task or detect_source_task(source))
    if task:
        check_task_fits(source, task)
    if needs_remote_code(source) and not trust_remote_code:
        raise remote_code_error(source.model_id)
    target = spec.target_class()(source, config)
    logger.info("loaded %s target %s (commit %s) on %s", spec.name, source.model_id, source.commit_sha, target.device)
    return target
