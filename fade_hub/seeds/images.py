"""Opening seed images: each decoded once, straight at the size it is kept at, and refused past a pixel cap.

Seeds are kept no larger than the model's input needs (``short_side``, the shorter side the model's
image processor resizes to) and never over ``MAX_SIDE`` pixels on their longer side. JPEGs decode at
reduced scale; any image that would decode to more than ``max_pixels`` is refused before decoding
(``ImageTooLarge``), so a 20 KB PNG of 13000x13000 pixels costs nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from fade_hub.perturb.image import open_image, prepare_image

MAX_SIDE = 1024

Opener = Callable[[object], Image.Image]


def local_opener(base: Path, short_side: int | None, max_pixels: int) -> Opener:
    """An opener of image paths relative to ``base``."""

    def open_local(value: object) -> Image.Image:
        path = value if isinstance(value, Path) else base / str(value)
        return open_image(path, max_side=MAX_SIDE, short_side=short_side, max_pixels=max_pixels)

    return open_local


def hub_opener(token: str | bool | None, short_side: int | None, max_pixels: int) -> Opener:
    """An opener of a Hub dataset's undecoded image cells (``{"bytes", "path"}``, a path, or a PIL image)."""

    def open_cell(value: object) -> Image.Image:
        if isinstance(value, Image.Image):
            return prepare_image(value, MAX_SIDE, short_side)
        cell = {"path": value, "bytes": None} if isinstance(value, str) else dict(value)  # type: ignore[arg-type]
        data = cell.get("bytes")
        if data is None:
            data = _read(str(cell.get("path") or ""), token)
        return open_image(io.BytesIO(data), max_side=MAX_SIDE, short_side=short_side, max_pixels=max_pixels)

    return open_cell


def _read(path: str, token: str | bool | None) -> bytes:
    """The bytes of an image a dataset row names by path: a local file or a file of the dataset repo."""
    if not path:
        raise ValueError("the image cell has neither bytes nor a path")
    if Path(path).is_file():
        return Path(path).read_bytes()
    from datasets import DownloadConfig
    from datasets.utils.file_utils import xopen

    with xopen(path, "rb", download_config=DownloadConfig(token=token)) as handle:
        return handle.read()
