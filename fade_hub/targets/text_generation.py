"""Text generation targets (``AutoModelForCausalLM``): greedy by default, left padding, one generate per batch."""

from __future__ import annotations

from typing import Any

from fade_hub.errors import BadConfig
from fade_hub.targets.base import (
    Prediction,
    Target,
    TargetConfig,
    ensure_pad_token,
    load_processor,
    load_transformers,
    seeded,
    text_max_length,
)
from fade_hub.targets.source import ModelSource

GENERATION_DEFAULTS: dict[str, Any] = {"do_sample": False, "max_new_tokens": 32}


def generation_settings(config: TargetConfig) -> dict[str, Any]:
    """Generation kwargs: deterministic defaults overridden by the user's."""
    return {**GENERATION_DEFAULTS, **config.generation_kwargs}


def check_new_tokens(new_tokens: int, limit: int, model_id: str, what: str) -> None:
    """BadConfig when ``max_new_tokens`` does not fit below the model's ``limit`` of positions."""
    if new_tokens >= limit:
        raise BadConfig(f"--max-new-tokens {new_tokens} does not fit model {model_id!r}: its {what} has "
                        f"{limit} positions; pass at most {limit - 1}")


class TextGenerator(Target):
    """A causal language model: prompts in, the generated continuation (without the prompt) out."""

    task = "text-generation"
    modality = "text"

    def __init__(self, source: ModelSource, config: TargetConfig) -> None:
        super().__init__(source, config)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = load_transformers(AutoModelForCausalLM, self, source.use_safetensors)
        self.processor = load_processor(AutoTokenizer, self)
        self.processor.padding_side = "left"
        self.processor.truncation_side = "left"  # long prompts keep their end, where generation continues
        ensure_pad_token(self.processor, self.model)
        self.generation_kwargs = generation_settings(config)
        new_tokens = int(self.generation_kwargs.get("max_new_tokens", 0))
        context = text_max_length(self.processor, self.model.config)
        check_new_tokens(new_tokens, context, self.model_id, "context (prompt and answer)")
        self.max_length = context - new_tokens
        empty_is_empty = len(self.processor("")["input_ids"]) == 0
        self._empty_prompt = (self.processor.bos_token or self.processor.eos_token or " ") if empty_is_empty else ""

    def _predict_batch(self, batch: list[str]) -> list[Prediction]:
        prompts = [str(text) or self._empty_prompt for text in batch]
        encoded = self.processor(
            prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with seeded(self.config.seed, self.device):
            output = self.model.generate(**encoded, **self.generation_kwargs)
        continuations = output[:, encoded["input_ids"].shape[1] :]
        return [Prediction(text=text) for text in self.processor.batch_decode(continuations, skip_special_tokens=True)]

    def describe(self) -> dict[str, Any]:
        """Base description plus the generation settings."""
        return {**super().describe(), "generation_kwargs": dict(self.generation_kwargs)}
