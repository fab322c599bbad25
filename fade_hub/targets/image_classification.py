"""Image classification targets (``AutoModelForImageClassification`` + its image processor)."""

from __future__ import annotations

import torch
from PIL import Image

from fade_hub.targets.base import Classifier, TargetConfig, load_processor, load_transformers
from fade_hub.targets.source import ModelSource


class ImageClassifier(Classifier):
    """An image classifier: PIL images in, one predicted label per image."""

    task = "image-classification"
    modality = "image"

    def __init__(self, source: ModelSource, config: TargetConfig) -> None:
        super().__init__(source, config)
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.model = load_transformers(AutoModelForImageClassification, self, source.use_safetensors)
        self.processor = load_processor(AutoImageProcessor, self)
        self._set_labels()

    def _encode(self, batch: list[Image.Image]) -> dict[str, torch.Tensor]:
        images = [image.convert("RGB") for image in batch]
        encoded = self.processor(images=images, return_tensors="pt")
        encoded["pixel_values"] = encoded["pixel_values"].to(self.model.dtype)
        return dict(encoded)
