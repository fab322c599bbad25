"""Image ops (PIL RGB in, PIL RGB of the same size out) and ``prepare_image`` for any input mode."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from .ops import Factor, Op, number_level

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_INT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_RESIZE_FIRST = ("RGB", "RGBA", "L", "LA")  # modes PIL resamples well (alpha premultiplied)
_WHITE = (255, 255, 255)
# images decoding to more pixels than this are refused (a 20 KB PNG can hold 13000x13000 pixels: 0.5 GB as RGB)
MAX_DECODED_PIXELS = 64_000_000
_GRAY = (128, 128, 128)


def _float_to_l(image: Image.Image, sixteen_bit: bool) -> Image.Image:
    """An ``F`` image (from 16-bit, 32-bit integer or float data) as 8-bit gray, scaled by its value range."""
    arr = np.asarray(image, dtype=np.float32)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if sixteen_bit or (0 <= lo and 255 < hi <= 65535):
        arr = arr / 257.0
    elif 0 <= lo and hi <= 1:
        arr = arr * 255.0
    elif lo < 0 or hi > 255:
        arr = (arr - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def _convert(image: Any, max_side: int | None, short_side: int | None = None) -> Image.Image:
    """Any image as RGB, shrunk to ``max_side``/``short_side`` (when given) at the cheapest point of the conversion."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")

    def shrink(im: Image.Image) -> Image.Image:
        return _shrink(im, max_side, short_side) if max_side else im

    if image.mode in _INT_MODES:
        return _float_to_l(shrink(image.convert("F")), image.mode.startswith("I;16")).convert("RGB")
    if image.mode in _RESIZE_FIRST:
        image = shrink(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = (image.convert("LA") if image.mode == "La" else image).convert("RGBA")
        rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE + (255,)), rgba).convert("RGB")
    else:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
    return shrink(rgb)


def fit_size(size: tuple[int, int], max_side: int, short_side: int | None = None) -> tuple[int, int]:
    """The size an image is shrunk to (never enlarged, aspect kept): longer side at most ``max_side``, and,
    given ``short_side`` (a model's input size), shorter side down to that, no smaller."""
    width, height = size
    scale = min(1.0, max_side / max(width, height, 1))
    if short_side:
        scale = min(scale, short_side / max(min(width, height), 1))
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink(image: Image.Image, max_side: int, short_side: int | None = None) -> Image.Image:
    """The image downscaled to ``fit_size`` (itself when already small)."""
    size = fit_size(image.size, max_side, short_side)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


class ImageTooLarge(ValueError):
    """An image with more pixels than fade-hub decodes (a decompression bomb or a huge scan)."""


def open_image(
    source: str | Path | IO[bytes], *, max_side: int = 1024, short_side: int | None = None,
    max_pixels: int = MAX_DECODED_PIXELS,
) -> Image.Image:
    """Decode an image file as RGB at no more than the size it is shrunk to; ImageTooLarge past ``max_pixels``.

    The header is read first: JPEGs decode straight at 1/2 to 1/8 scale (``Image.draft``), and an image
    that would still decode to more than ``max_pixels`` is refused before any pixel is decoded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below against our own limit
        try:
            image = Image.open(source)
        except Image.DecompressionBombError as err:
            raise ImageTooLarge(f"{err}; the limit for decoded images is {max_pixels / 1e6:g} MP") from None
    with image:
        image.draft("RGB", fit_size(image.size, max_side, short_side))
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"{width}x{height} is {width * height / 1e6:.0f} MP, over the {max_pixels / 1e6:g} MP limit for "
                "decoded images; downscale it to use it"
            )
        image.load()
        return prepare_image(ImageOps.exif_transpose(image), max_side, short_side)


def to_rgb(image: Any) -> Image.Image:
    """Any PIL mode (or a uint8 array) as 8-bit RGB, same size; alpha is composited on white."""
    return _convert(image, None)


def prepare_image(image: Any, max_side: int = 1024, short_side: int | None = None) -> Image.Image:
    """An RGB uint8 copy of any image, downscaled (aspect kept) to ``fit_size(size, max_side, short_side)``."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    rgb = _convert(image, max_side, short_side)
    return rgb.copy() if rgb is image else rgb


def coerce(item: Any) -> Image.Image:
    """The item as an RGB PIL image (mode conversion only, no resizing)."""
    return to_rgb(item)


def rotate(image: Image.Image, level: float, rng_seed: int, factor: Factor) -> Image.Image:
    """Rotate counter-clockwise by ``level`` degrees about the centre, bilinear, black corners."""
    return image.rotate(level, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def _enhance(kind: type) -> Any:
    def op(image: Image.Image, level: float, rng_seed: int, factor: Factor) -> Image.Image:
        return image.copy() if level == 1 else kind(image).enhance(level)

    op.__doc__ = f"PIL ImageEnhance.{kind.__name__} with factor ``level`` (1.0 = unchanged)."
    return op


def darken(image: Image.Image, level: float, rng_seed: int, factor: Factor) -> Image.Image:
    """Darken by ``level`` in [0, 1]: brightness factor ``1 - level``."""
    return image.copy() if level == 0 else ImageEnhance.Brightness(image).enhance(1 - level)


def blur(image: Image.Image, level: float, rng_seed: int, factor: Factor) -> Image.Image:
    """Gaussian blur of radius ``level`` pixels."""
    return image.copy() if level == 0 else image.filter(ImageFilter.GaussianBlur(level))


def noise(image: Image.Image, level: float, rng_seed: int, factor: Factor) -> Image.Image:
    """Additive Gaussian noise of std ``level`` on pixels scaled to [0, 1], clipped."""
    if level == 0:
        return image.copy()
    arr = np.asarray(image, dtype=np.float32) / 255.0
    arr += np.random.default_rng(rng_seed).normal(0.0, level, arr.shape).astype(np.float32)
    return Image.fromarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mode="RGB")


def jpeg(image: Image.Image, level: int, rng_seed: int, factor: Factor) -> Image.Image:
    """Re-encode as JPEG at quality ``level`` (1-100) in memory."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(level))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def occlude(image: Image.Image, level: float, rng_seed: int, factor: Factor) -> Image.Image:
    """Paint a gray rectangle covering fraction ``level`` of the area, placed by the seed."""
    out = image.copy()
    if level == 0:
        return out
    width, height = image.size
    area = level * width * height
    w = min(width, max(1, round(math.sqrt(area))))
    h = min(height, max(1, round(area / w)))
    if h == height:  # a square does not fit: widen the strip instead
        w = min(width, max(1, round(area / height)))
    rng = np.random.default_rng(rng_seed)
    x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    out.paste(_GRAY, (x0, y0, x0 + w, y0 + h))
    return out


OPS: dict[str, Op] = {
    "rotate": Op(rotate, number_level(-360, 360), is_noop=lambda lv: lv % 360 == 0),
    "brightness": Op(_enhance(ImageEnhance.Brightness), number_level(0), is_noop=lambda lv: lv == 1),
    "contrast": Op(_enhance(ImageEnhance.Contrast), number_level(0), is_noop=lambda lv: lv == 1),
    "saturation": Op(_enhance(ImageEnhance.Color), number_level(0), is_noop=lambda lv: lv == 1),
    "darken": Op(darken, number_level(0, 1), is_noop=lambda lv: lv == 0),
    "blur": Op(blur, number_level(0), is_noop=lambda lv: lv == 0),
    "noise": Op(noise, number_level(0), is_noop=lambda lv: lv == 0),
    "jpeg": Op(jpeg, number_level(1, 100, integer=True)),
    "occlude": Op(occlude, number_level(0, 1, hi_open=True), is_noop=lambda lv: lv == 0),
}
