"""Pictures of the feedback app: images read from files or parquet cells, and two pictures side by side."""

from __future__ import annotations

import io
from typing import Any

EXAMPLE_SIDE = 224  # px: each half of a clean | perturbed pair is at least this wide


def open_image(source: Any):
    """An RGB PIL image from a path or a binary file, or None when it is no readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None


def decode_image(cell: Any):
    """A PIL image from a parquet ``datasets.Image`` cell (or raw bytes), or None."""
    data = cell.get("bytes") if isinstance(cell, dict) else cell if isinstance(cell, bytes) else None
    return open_image(io.BytesIO(data)) if data else None


def side_by_side(left, right, labels: tuple[str, str] = ("clean seed", "perturbed"), side: int = EXAMPLE_SIDE):
    """One picture: ``left`` beside ``right`` (or ``right`` alone when ``left`` is None), each labelled below."""
    from PIL import Image, ImageDraw, ImageFont

    images = [image for image in (left, right) if image is not None]
    scaled = []
    for image in images:
        factor = max(side / image.width, side / image.height, 1.0)
        size = (round(image.width * factor), round(image.height * factor))
        scaled.append(image.resize(size, Image.NEAREST if factor >= 2 else Image.BICUBIC))
    font = ImageFont.load_default(size=20)
    gap, label_h = 8, 28
    width = sum(image.width for image in scaled) + gap * (len(scaled) - 1)
    height = max(image.height for image in scaled) + label_h
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    labels = labels if left is not None else labels[1:]
    x = 0
    for image, label in zip(scaled, labels):
        canvas.paste(image, (x, 0))
        draw.text((x + 4, image.height + 3), label, fill="#333333", font=font)
        x += image.width + gap
    return canvas
