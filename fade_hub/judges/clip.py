"""Text-to-image judge: CLIP cosine similarity between the generated image and its prompt."""

from __future__ import annotations

from typing import Any

import torch

from fade_hub.errors import BadConfig
from fade_hub.judges.base import Judge, JudgeConfig, Verdict
from fade_hub.targets import Prediction, Target, resolve_source
from fade_hub.targets.base import batched

DEFAULT_THRESHOLD = 0.25


class ClipJudge(Judge):
    """Failure when cos(image, prompt) < threshold; severity 100 * (1 - cos) as in the paper."""

    name = "clip"

    def __init__(self, config: JudgeConfig, target: Target) -> None:
        if not config.model_id:
            raise BadConfig(
                "the text-to-image judge needs a CLIP model: pass --clip MODEL_ID (e.g. openai/clip-vit-base-patch32)"
            )
        from transformers import CLIPModel, CLIPProcessor

        source = resolve_source(config.model_id, config.loading.revision)
        folder = source.fetch()
        self.model_id, self.commit_sha = source.model_id, source.commit_sha
        self.device, self.batch_size = target.device, target.batch_size
        self.model = CLIPModel.from_pretrained(folder, use_safetensors=source.use_safetensors).to(self.device).eval()
        self.processor = CLIPProcessor.from_pretrained(folder)
        self.threshold = DEFAULT_THRESHOLD if config.threshold is None else float(config.threshold)

    def similarity(self, images: list, prompts: list[str]) -> list[float]:
        """Cosine similarity of each image with its own prompt, one CLIP forward per batch."""
        scores: list[float] = []
        with torch.inference_mode():
            for pairs in batched(list(zip(images, prompts, strict=True)), self.batch_size):
                encoded = self.processor(
                    text=[str(p) for _, p in pairs],
                    images=[image.convert("RGB") for image, _ in pairs],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                ).to(self.device)
                out = self.model(**encoded)
                image = torch.nn.functional.normalize(out.image_embeds.float(), dim=-1)
                text = torch.nn.functional.normalize(out.text_embeds.float(), dim=-1)
                scores.extend((image * text).sum(dim=-1).clamp(-1.0, 1.0).tolist())
        return scores

    def _judge(self, seeds: list, inputs: list, predictions: list[Prediction], expectations: list) -> list[Verdict]:
        if any(prediction.image is None for prediction in predictions):
            raise BadConfig("the CLIP judge needs image outputs; use it with text-to-image models")
        scores = self.similarity([p.image for p in predictions], [str(prompt) for prompt in inputs])
        return [
            Verdict(is_failure=cos < self.threshold, severity=100.0 * (1.0 - cos), expected=str(prompt), score=cos,
                    expected_source=f"the prompt (CLIP cosine >= {self.threshold:g})")
            for cos, prompt in zip(scores, inputs, strict=True)
        ]

    def describe(self) -> dict[str, Any]:
        """CLIP model (with commit) and threshold."""
        return {
            "name": self.name,
            "model_id": self.model_id,
            "commit_sha": self.commit_sha,
            "threshold": self.threshold,
        }
