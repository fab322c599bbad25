"""Library notices meant for the libraries' own callers, kept out of what a fade-hub user reads."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

LIBRARIES = ("transformers", "trl", "peft", "accelerate", "diffusers")


@contextmanager
def library_notices_hidden() -> Iterator[None]:
    """Hide the deprecation notices (``FutureWarning``, ``DeprecationWarning``) the model libraries raise inside the
    block: advice to the code that calls them (fade-hub), not to its user."""
    with warnings.catch_warnings():
        for module in LIBRARIES:
            warnings.filterwarnings("ignore", category=FutureWarning, module=module)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        yield
