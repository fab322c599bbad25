"""A small real model for the demo and the benchmarks: a small ResNet that tells circles, squares and triangles apart.

It is trained in under a minute on CPU on generated shapes whose training data has one gap: dark
images appear only when the shape is nearly upright. So it really fails where that data never went —
dark *and* rotated shapes — a block of about a sixth of the demo's concept space. Nothing is labelled
wrong on purpose; ``grid`` exploration measures where it fails.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

logger = logging.getLogger(__name__)

LABELS = ("circle", "square", "triangle")
IMAGE_SIZE = 32


def draw_shape(label: str, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    """One shape of a random colour, size and position on a light random background."""
    background = tuple(int(v) for v in rng.integers(170, 256, size=3))
    colour = tuple(int(v) for v in rng.integers(0, 140, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.26, 0.4) * size
    cx, cy = rng.uniform(radius + 1, size - radius - 1, size=2)
    if label == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    elif label == "square":
        half = radius * 0.85
        draw.rectangle([cx - half, cy - half, cx + half, cy + half], fill=colour)
    elif label == "triangle":
        points = [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        draw.polygon(points, fill=colour)
    else:
        raise ValueError(f"unknown shape {label!r}; use one of {LABELS}")
    return image


def write_seed_folder(folder: Path, per_class: int, seed: int) -> Path:
    """Write ``LABEL/NNN.png`` seed images (the layout ``--seeds`` reads)."""
    rng = np.random.default_rng(seed)
    for label in LABELS:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            draw_shape(label, rng).save(folder / label / f"{index:03d}.png")
    return folder


def augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Training variation: any saturation, rotations up to 35 degrees, and darkness only when upright."""
    angle = float(rng.uniform(-35, 35))
    darkest = 0.15 if abs(angle) <= 5 else 0.55
    image = image.rotate(angle, resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(darkest, 1.0)))
    return ImageEnhance.Color(image).enhance(float(rng.uniform(0.0, 1.0)))


def to_pixels(images: list[Image.Image]):
    """The image processor's preprocessing for 32x32 RGB (rescale, normalise with mean = std = 0.5), batched."""
    import torch

    array = np.stack([np.asarray(image, dtype=np.float32) for image in images]) / 255.0
    return torch.from_numpy((array - 0.5) / 0.5).permute(0, 3, 1, 2).contiguous()


def shapes_resnet(width: int) -> Any:
    """An untrained three-stage ResNet over the shape labels, ``width`` channels in its first stage."""
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(
        num_channels=3, embedding_size=width, hidden_sizes=[width, 2 * width, 4 * width], depths=[1, 1, 1],
        layer_type="basic", downsample_in_first_stage=False,
        id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)},
    )
    return ResNetForImageClassification(config)


def train_shape_classifier(folder: Path, *, seed: int = 0, steps: int = 250, batch_size: int = 48) -> Path:
    """Train a small ResNet on bright, upright shapes and ``save_pretrained`` it (idempotent)."""
    if (folder / "model.safetensors").exists():
        _write_model_card(folder)
        return folder
    import torch
    from transformers import ViTImageProcessor

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = shapes_resnet(16)
    processor = ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_resize=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    model.train()
    for _ in range(steps):
        labels = rng.integers(len(LABELS), size=batch_size)
        images = [augment(draw_shape(LABELS[i], rng), rng) for i in labels]
        pixels = to_pixels(images)
        loss = model(pixel_values=pixels, labels=torch.as_tensor(labels)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    _write_model_card(folder)
    logger.info("trained the shapes classifier in %s (last loss %.3f)", folder, float(loss.detach()))
    return folder


def _write_model_card(folder: Path) -> None:
    """A short model card declaring the demo model's licence (a run of it takes its licence from here)."""
    card = folder / "README.md"
    if not card.exists():
        card.write_text(
            "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: image-classification\n---\n\n"
            "# fade-hub demo: shapes classifier\n\nA small ResNet trained by `fade-hub demo` on generated bright, "
            "upright circles, squares and triangles, to show how fade-hub finds where a model fails.\n",
            encoding="utf-8",
        )
