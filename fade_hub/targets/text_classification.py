"""Text classification targets (``AutoModelForSequenceClassification`` + its tokenizer)."""

from __future__ import annotations

import torch

from fade_hub.targets.base import (
    Classifier,
    TargetConfig,
    ensure_pad_token,
    load_processor,
    load_transformers,
    text_max_length,
)
from fade_hub.targets.source import ModelSource


class TextClassifier(Classifier):
    """A text classifier: strings in (any length, any script), one predicted label per string."""

    task = "text-classification"
    modality = "text"

    def __init__(self, source: ModelSource, config: TargetConfig) -> None:
        super().__init__(source, config)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model = load_transformers(AutoModelForSequenceClassification, self, source.use_safetensors)
        self.processor = load_processor(AutoTokenizer, self)
        ensure_pad_token(self.processor, self.model)
        self.max_length = text_max_length(self.processor, self.model.config)
        self._set_labels()

    def _encode(self, batch: list[str]) -> dict[str, torch.Tensor]:
        texts = [str(text) for text in batch]
        encoded = self.processor(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return dict(encoded)
