"""Mitigated variants as targets: an adapter (local folder or Hub repo) applied to the base model it names.

``load_target`` hands adapters here: the base model loads as any target (pinned to the adapter's recorded base
commit), then the adapter is applied the way its format is loaded with stock code: ``peft.PeftModel`` wraps a peft
adapter (``adapter_config.json``), and ``pipe.load_lora_weights`` applies a diffusers LoRA
(``pytorch_lora_weights.safetensors``, whose base ``fade_eval.json`` names). The target records its lineage (base
model, adapter, and the runs whose feedback trained it, from the adapter's ``fade_eval.json``), so that a run made
on it can feed the next round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from fade_hub.errors import AdapterMismatch, ModelNotFound
from fade_hub.notices import library_notices_hidden
from fade_hub.paths import resolve_from
from fade_hub.targets.base import Target
from fade_hub.targets.source import DIFFUSERS_LORA_FILE, EVAL_FILE, ModelSource


def is_diffusers_lora(folder: Path) -> bool:
    """Whether an adapter folder holds a diffusers LoRA rather than a peft adapter."""
    return (folder / DIFFUSERS_LORA_FILE).is_file() and not (folder / "adapter_config.json").is_file()


def adapter_lineage(source: ModelSource, folder: Path) -> dict[str, Any]:
    """What a run made on this adapter records as its lineage."""
    config = source.adapter_config or {}
    figures = json.loads((folder / EVAL_FILE).read_text(encoding="utf-8")) if (folder / EVAL_FILE).is_file() else {}
    sources = figures.get("lineage_sources") or {}
    return {
        "base_model": config.get("base_model_name_or_path"),
        "base_commit": config.get("revision"),
        "adapter": source.model_id,
        "adapter_commit": source.commit_sha,
        "adapter_run_id": figures.get("run_id"),
        "run_ids": list(figures.get("lineage_run_ids") or []),
        "run_sources": {run: resolve_from(spec, folder) for run, spec in sources.items()},
    }


def apply_adapter(target: Target, folder: Path, name: str) -> None:
    """Apply the adapter in ``folder`` to the target's model; AdapterMismatch when its layers do not fit."""
    from peft import PeftModel

    from fade_hub.targets.text_to_image import TextToImage

    diffusers_lora = is_diffusers_lora(folder)
    if diffusers_lora and not isinstance(target, TextToImage):
        raise AdapterMismatch(f"adapter {name} is a diffusers LoRA, which applies to a diffusers pipeline, not to the "
                              f"{target.task} model {target.model_id}")
    try:
        with library_notices_hidden():
            if diffusers_lora:
                target.load_lora(folder)
            else:
                target.model = PeftModel.from_pretrained(target.model, folder).eval()
    except (ValueError, RuntimeError, KeyError) as err:
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise AdapterMismatch(
            f"adapter {name} does not fit model {target.model_id} ({detail}); apply it to the base model it was "
            "trained for (adapter_config.json: base_model_name_or_path)"
        ) from None


def load_adapter_target(source: ModelSource, load_base: Callable[..., Target], **options: Any) -> Target:
    """The base model the adapter names, loaded with ``load_base(model_id, revision=..., **options)``, wrapped."""
    base = (source.adapter_config or {}).get("base_model_name_or_path")
    if not base:
        raise ModelNotFound(f"{source.model_id} is a peft adapter that names no base model (base_model_name_or_path)")
    target = load_base(base, revision=(source.adapter_config or {}).get("revision"), **options)
    folder = source.fetch()
    apply_adapter(target, folder, source.model_id)
    target.lineage = adapter_lineage(source, folder)
    target.model_id, target.revision, target.commit_sha = source.model_id, source.revision, source.commit_sha
    return target
