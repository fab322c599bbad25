"""Ctrl-C (SIGINT) handled where a run keeps records: stopping with the requests in flight kept, or after a step
whose bookkeeping must not be cut in two. Both only act in the main thread over Python's default handler, so they
nest (an inner block leaves the outer one's handler in place) and do nothing under a caller's own handler."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)


def _ours_to_handle() -> bool:
    return threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler  # fmt: skip


@contextmanager
def first_interrupt_stops(stop: Callable[[], None]) -> Iterator[list[bool]]:
    """While in the block, a first SIGINT calls ``stop`` (and is noted in the yielded flag) instead of raising
    ``KeyboardInterrupt``; a second raises it."""
    interrupted: list[bool] = []
    if not _ours_to_handle():
        yield interrupted
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        logger.warning("interrupted: waiting for the requests in flight to be answered and kept (Ctrl-C again to "
                       "stop at once)")  # fmt: skip
        stop()

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def interrupt_deferred() -> Iterator[None]:
    """A SIGINT that arrives in the block raises ``KeyboardInterrupt`` once the block is done (e.g. requests
    started and registered, so that whoever catches it can still collect their answers)."""
    if not _ours_to_handle():
        yield
        return
    arrived: list[bool] = []
    signal.signal(signal.SIGINT, lambda signum, frame: arrived.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if arrived:
        raise KeyboardInterrupt


def import_torch_whole() -> None:
    """Import torch with Ctrl-C held until its native start-up is done, then raise it: a ``KeyboardInterrupt``
    raised inside that start-up cannot pass through pybind11's C++ frames and aborts the process (SIGABRT, a C++
    message on stderr) instead of stopping it."""
    if "torch" in sys.modules:
        return
    with interrupt_deferred():
        import torch  # noqa: F401
