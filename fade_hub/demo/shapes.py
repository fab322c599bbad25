"""A small real model for the demo and the benchmarks: a small ResNet that tells circles, squares and triangles apart.

It was trained on generated shapes whose training data has one gap: the darkest images appear only within
10 degrees of upright. So it really fails where that data never went — very dark *and* strongly rotated
shapes, which in the demo's concept space is the region ``brightness = 0.2`` and ``rotation = ±30`` (any
saturation), on squares and triangles more than circles. Nothing is labelled wrong on purpose.

The weights ship with the package (``SHIPPED_MODEL``, about 330 KB), so that every machine explores the same
bytes: training sums floats in an order that depends on the number of threads, so a model trained on the
user's machine would not be the model the tests saw. ``train_shape_classifier`` is the recipe that made them
(``rebuild_shipped_model``: one thread, training seed ``SHIPPED_SEED``); ``tests/test_demo_model.py`` checks
that the recipe still gives the shipped bytes.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

logger = logging.getLogger(__name__)

SHIPPED_MODEL = "shapes-resnet-v2"  # a folder of fade_hub/builtin/models
SHIPPED_SEED = 2  # the training seed of the shipped weights

LABELS = ("circle", "square", "triangle")
IMAGE_SIZE = 32
# The gap in the training data: images darker than DARKEST_ROTATED only within UPRIGHT_DEGREES of upright.
UPRIGHT_DEGREES = 10.0
DARKEST_UPRIGHT = 0.15
DARKEST_ROTATED = 0.45


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
    """Training variation: mirror images, any saturation, rotations up to 35 degrees, the darkest images only near
    upright."""
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    angle = float(rng.uniform(-35, 35))
    darkest = DARKEST_UPRIGHT if abs(angle) <= UPRIGHT_DEGREES else DARKEST_ROTATED
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


def shipped_model_dir() -> Path:
    """The folder of the demo's shipped shapes classifier (``save_pretrained`` layout, read-only)."""
    from importlib.resources import files

    return Path(str(files("fade_hub") / "builtin" / "models" / SHIPPED_MODEL))


def rebuild_shipped_model(folder: Path) -> Path:
    """Train the shipped classifier again into ``folder`` with its recipe, on one thread (as the shipped bytes were)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_shape_classifier(folder, seed=SHIPPED_SEED)
    finally:
        torch.set_num_threads(threads)


def _write_model_card(folder: Path) -> None:
    """A short model card declaring the demo model's licence (a run of it takes its licence from here)."""
    card = folder / "README.md"
    if not card.exists():
        card.write_text(
            "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: image-classification\n---\n\n"
            "# fade-hub demo: shapes classifier\n\nA small ResNet that tells generated circles, squares and "
            "triangles apart, trained without very dark shapes rotated more than 10 degrees, to show how fade-hub "
            "finds where a model fails.\n",
            encoding="utf-8",
        )
