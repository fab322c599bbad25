"""Batch sizes of local targets under memory pressure.

``--batch-size auto`` runs the biggest real input at batch sizes 1, 2, 4, ... until the device runs out of
memory (``torch.OutOfMemoryError``, or the allocator messages accelerate knows), then bisects between the
last size that ran and the first that did not: the largest batch that fits. On a CPU the search stops at
``CPU_BATCH_LIMIT`` (CPU memory rarely fails cleanly, and larger batches do not run faster there). Later,
any batch that still runs out of memory is halved and retried, so no query is lost to an OOM.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

CPU_BATCH_LIMIT = 32
ACCELERATOR_BATCH_LIMIT = 512
PROVISIONAL_BATCH_SIZE = 16  # what ``batch_size`` holds while an ``auto`` size waits for its first inputs


def is_out_of_memory(err: BaseException) -> bool:
    """Whether an exception means the device ran out of memory (CUDA, XPU, MPS or the CPU allocator)."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    from accelerate.utils.memory import should_reduce_batch_size

    return isinstance(err, Exception) and should_reduce_batch_size(err)


def release_memory() -> None:
    """Give cached device memory back after an out-of-memory error."""
    from accelerate.utils.memory import clear_device_cache

    clear_device_cache(garbage_collection=True)


def batch_limit(device: str) -> int:
    """The largest batch size ``auto`` tries on a device."""
    return CPU_BATCH_LIMIT if torch.device(device).type == "cpu" else ACCELERATOR_BATCH_LIMIT


def _footprint(item: Any) -> int:
    """How much memory an input needs relative to others of its kind: characters, or pixels."""
    if isinstance(item, str):
        return len(item)
    size = getattr(item, "size", None)
    return int(size[0] * size[1]) if isinstance(size, tuple) and len(size) == 2 else 0


def probe_inputs(samples: Sequence[Any], size: int) -> list[Any]:
    """``size`` copies of the sample that needs the most memory (the longest text, the largest image)."""
    biggest = max(samples, key=_footprint)
    return [biggest] * size


def largest_fitting(fits: Callable[[int], bool], limit: int) -> int:
    """The largest size in ``[1, limit]`` for which ``fits`` holds (0 when even 1 fails), assuming it is monotone."""
    good, size = 0, 1
    while size <= limit and fits(size):
        good, size = size, size * 2
    bad = min(size, limit + 1)
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good
