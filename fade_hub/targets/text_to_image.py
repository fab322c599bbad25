"""Text-to-image targets (a diffusers pipeline): one pipeline call per batch, one seeded generator per prompt."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from fade_hub.targets.base import Prediction, Target, TargetConfig, remote_code_error
from fade_hub.choices import AUTO
from fade_hub.targets.placement import checkpoint_dtype, out_of_memory_error, plan_device_map
from fade_hub.targets.source import ModelSource

PIPELINE_DEFAULTS: dict[str, Any] = {"num_inference_steps": 25}


def prompt_seed(prompt: str, seed: int) -> int:
    """A stable 63-bit seed for one (prompt, run seed) pair: same prompt and seed, same image."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class TextToImage(Target):
    """A diffusers text-to-image pipeline: prompts in, PIL images out."""

    task = "text-to-image"
    modality = "prompt"

    def __init__(self, source: ModelSource, config: TargetConfig) -> None:
        super().__init__(source, config)
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as diffusers_logging

        dtype = checkpoint_dtype(self.local_path) if config.torch_dtype == AUTO else config.torch_dtype
        split = plan_device_map(config.device, self.device, self.local_path, dtype)
        # diffusers spreads whole components: "balanced" over several GPUs; one GPU borrows CPU memory instead
        balanced = split and torch.cuda.device_count() > 1
        shown = diffusers_logging.is_progress_bar_enabled()
        diffusers_logging.disable_progress_bar()  # the component-loading bar: fade-hub shows its own progress
        try:
            self.pipeline = DiffusionPipeline.from_pretrained(
                self.local_path,
                use_safetensors=source.use_safetensors,
                dtype=dtype,
                trust_remote_code=config.trust_remote_code,
                **({"device_map": "balanced"} if balanced else {}),
            )
            if split and not balanced:
                self.pipeline.enable_model_cpu_offload(device=self.device)
            elif not split:
                self.pipeline.to(self.device)
        except ValueError as err:
            if "trust_remote_code" in str(err):
                raise remote_code_error(self.model_id, err) from err
            raise
        except torch.OutOfMemoryError as err:
            raise out_of_memory_error(self.model_id, self.device, err) from err
        finally:
            if shown:
                diffusers_logging.enable_progress_bar()
        if balanced:
            self.device_map = dict(getattr(self.pipeline, "hf_device_map", None) or {})
        self.pipeline.set_progress_bar_config(disable=True)
        self.model = getattr(self.pipeline, "unet", None) or getattr(self.pipeline, "transformer", None)
        self.processor = getattr(self.pipeline, "tokenizer", None)
        self.generation_kwargs = {**PIPELINE_DEFAULTS, **config.generation_kwargs}

    def _predict_batch(self, batch: list[str]) -> list[Prediction]:
        prompts = [str(prompt) for prompt in batch]
        generators = [torch.Generator("cpu").manual_seed(prompt_seed(p, self.config.seed)) for p in prompts]
        kwargs = {**self.generation_kwargs, "output_type": "pil"}
        images = self.pipeline(prompt=prompts, generator=generators, **kwargs).images
        return [Prediction(text="<image>", image=image.convert("RGB")) for image in images]

    def load_lora(self, folder: Path) -> None:
        """Apply a diffusers LoRA (``save_lora_weights`` format) to the pipeline with ``pipe.load_lora_weights``."""
        self.pipeline.load_lora_weights(str(folder))

    def save_fused(self, folder: Path) -> None:
        """Fuse the loaded LoRA into the pipeline's weights and save it as a plain pipeline (``save_pretrained``)."""
        self.pipeline.fuse_lora()
        self.pipeline.unload_lora_weights()
        self.pipeline.save_pretrained(folder, safe_serialization=True)

    def describe(self) -> dict[str, Any]:
        """Base description plus the pipeline call settings."""
        return {**super().describe(), "generation_kwargs": dict(self.generation_kwargs)}
