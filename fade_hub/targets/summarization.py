"""Summarization targets (``AutoModelForSeq2SeqLM``): greedy by default, one generate per batch."""

from __future__ import annotations

from typing import Any

from fade_hub.targets.base import (
    Prediction,
    Target,
    TargetConfig,
    load_processor,
    load_transformers,
    seeded,
    text_max_length,
)
from fade_hub.targets.source import ModelSource
from fade_hub.targets.text_generation import check_new_tokens, generation_settings


class Summarizer(Target):
    """An encoder-decoder model: documents in, summaries out (T5-style prefixes applied from the config)."""

    task = "summarization"
    modality = "text"

    def __init__(self, source: ModelSource, config: TargetConfig) -> None:
        super().__init__(source, config)
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.model = load_transformers(AutoModelForSeq2SeqLM, self, source.use_safetensors)
        self.processor = load_processor(AutoTokenizer, self)
        self.generation_kwargs = generation_settings(config)
        positions = getattr(self.model.config, "max_position_embeddings", None)  # learned decoder positions
        if positions:
            check_new_tokens(int(self.generation_kwargs.get("max_new_tokens", 0)), positions, self.model_id, "decoder")
        self.max_length = text_max_length(self.processor, self.model.config)
        task_params = getattr(self.model.config, "task_specific_params", None) or {}
        self.prefix = str(task_params.get("summarization", {}).get("prefix", ""))

    def _predict_batch(self, batch: list[str]) -> list[Prediction]:
        documents = [self.prefix + str(text) for text in batch]
        encoded = self.processor(
            documents, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with seeded(self.config.seed, self.device):
            output = self.model.generate(**encoded, **self.generation_kwargs)
        return [Prediction(text=text.strip()) for text in self.processor.batch_decode(output, skip_special_tokens=True)]

    def describe(self) -> dict[str, Any]:
        """Base description plus the generation settings."""
        return {**super().describe(), "generation_kwargs": dict(self.generation_kwargs)}
