"""Where a local model runs: the device, the dtype, and whether accelerate spreads it over several devices.

``--device auto`` (the default) takes the best device accelerate sees; when the model's weights do not
fit that GPU's free memory, the model is loaded with ``device_map="auto"`` so that accelerate spreads it
over every GPU and then CPU memory. An explicit device (``cpu``, ``cuda:1``, ``mps``) is used as given.
CPU and MPS are never split: there the model loads whole or not at all.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import torch

from fade_hub.choices import AUTO
from fade_hub.errors import BadConfig

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# weights + this share on top for activations, caches and the CUDA context before a device counts as "fits"
HEADROOM = 1.2
# safetensors dtype codes -> bytes per element; floating ones are loaded in the requested dtype
_ST_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
             "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}  # fmt: skip
_ST_FLOATS = {"F64", "F32", "F16", "BF16"}
_ST_TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
_GIB = 1024**3


def is_auto_device(device: str | None) -> bool:
    """Whether the device is left to fade-hub (None or ``auto``)."""
    return device is None or device == AUTO


def resolve_device(device: str | None) -> str:
    """The device to run on: accelerate's pick for ``auto``/None, else the given one, checked to exist here."""
    if is_auto_device(device):
        from accelerate import PartialState

        return str(PartialState().device)
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise BadConfig(f"--device {device!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise BadConfig(f"--device {device}: no CUDA GPU is visible here; use --device auto or cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise BadConfig(
                f"--device {device}: only {torch.cuda.device_count()} CUDA GPU(s) visible (cuda:0..); pick one of them"
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise BadConfig(f"--device {device}: MPS is not available here; use --device auto or cpu")
    return device


def _safetensors_header(path: Path) -> dict:
    """The tensor table of a safetensors file (its JSON header), without reading the weights."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def weight_files(folder: Path) -> list[Path]:
    """The weight files under a model folder: safetensors when there are any, else the pickle-based ones."""
    files = sorted(folder.rglob("*.safetensors"))
    return files or sorted(p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))


def weights_bytes(folder: Path, dtype: torch.dtype | None = None) -> int:
    """Bytes the model's weights take once loaded, floating tensors counted in ``dtype`` (None: as stored)."""
    total = 0
    for path in weight_files(folder):
        if path.suffix != ".safetensors":
            total += path.stat().st_size
            continue
        for info in _safetensors_header(path).values():
            numel = 1
            for size in info["shape"]:
                numel *= int(size)
            floating = info["dtype"] in _ST_FLOATS and dtype is not None
            total += numel * (dtype.itemsize if floating else _ST_BYTES.get(info["dtype"], 4))
    return total


def checkpoint_dtype(folder: Path) -> torch.dtype:
    """The floating dtype most of the stored weights use (float32 when nothing says otherwise)."""
    counts: dict[torch.dtype, int] = {}
    for path in weight_files(folder):
        if path.suffix == ".safetensors":
            for info in _safetensors_header(path).values():
                if info["dtype"] in _ST_TORCH:
                    counts[_ST_TORCH[info["dtype"]]] = counts.get(_ST_TORCH[info["dtype"]], 0) + 1
    return max(counts, key=counts.get) if counts else torch.float32


def free_memory(device: str) -> int | None:
    """Free bytes on a CUDA device; None for devices fade-hub does not split models over (cpu, mps, ...)."""
    parsed = torch.device(device)
    if parsed.type != "cuda" or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(parsed.index or 0)
    return int(free)


def needs_device_map(device: str | None, needed: int, free: int | None) -> bool:
    """Whether to spread the model with ``device_map="auto"``: only for ``--device auto`` on a GPU it overflows."""
    if not is_auto_device(device) or free is None:
        return False
    return needed * HEADROOM > free


def plan_device_map(requested: str | None, device: str, folder: Path, dtype: torch.dtype | None) -> bool:
    """Decide (and log) whether the model in ``folder`` must be spread over several devices."""
    free = free_memory(device)
    if free is None or not is_auto_device(requested):
        return False
    needed = weights_bytes(folder, dtype)
    split = needs_device_map(requested, needed, free)
    if split:
        logger.warning(
            "the model needs about %.1f GiB and %s has %.1f GiB free: spreading it over the GPUs and CPU memory "
            "with accelerate (device_map='auto')", needed / _GIB, device, free / _GIB,
        )  # fmt: skip
    return split


def out_of_memory_error(model_id: str, device: str, err: BaseException) -> BadConfig:
    """The one-line error for a model that does not fit the device it was asked to load on."""
    return BadConfig(
        f"model {model_id!r} does not fit on {device} ({str(err).splitlines()[0][:120]}); use --device auto to spread "
        "it over the GPUs and CPU memory, or --dtype bfloat16 to halve its size"
    )
