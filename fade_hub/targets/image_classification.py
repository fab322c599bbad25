"""Image classification targets (``AutoModelForImageClassification`` + its image processor)."""

from __future__ import annotations

import math
from typing import Any

import torch
from PIL import Image

from fade_hub.targets.base import Classifier, TargetConfig, load_processor, load_transformers
from fade_hub.targets.source import ModelSource


def processor_side(processor: Any) -> int | None:
    """The side an image processor brings images to before cropping (its model's input size), if it says."""
    sides = []
    for name in ("size", "crop_size"):
        value = getattr(processor, name, None)
        if isinstance(value, int):
            sides.append(value)
            continue
        for key in ("height", "width", "shortest_edge"):
            side = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
            if isinstance(side, int):
                sides.append(side)
    if not sides:
        return None
    crop_pct = getattr(processor, "crop_pct", None)  # resized to side / crop_pct, then centre-cropped to side
    return math.ceil(max(sides) / crop_pct) if crop_pct else max(sides)


class ImageClassifier(Classifier):
    """An image classifier: PIL images in, one predicted label per image."""

    task = "image-classification"
    modality = "image"

    def __init__(self, source: ModelSource, config: TargetConfig) -> None:
        super().__init__(source, config)
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.model = load_transformers(AutoModelForImageClassification, self, source.use_safetensors)
        self.processor = load_processor(AutoImageProcessor, self)
        self.input_side = processor_side(self.processor)
        self._set_labels()

    def _encode(self, batch: list[Image.Image]) -> dict[str, torch.Tensor]:
        images = [image.convert("RGB") for image in batch]
        encoded = self.processor(images=images, return_tensors="pt")
        encoded["pixel_values"] = encoded["pixel_values"].to(self.model.dtype)
        return dict(encoded)
