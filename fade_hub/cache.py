"""fade-hub's one cache root: ``$FADE_HUB_CACHE``, else a ``fade-hub`` folder in the Hugging Face cache home.

Following ``HF_HOME`` means that users and tests who isolate the Hugging Face cache isolate fade-hub too.
"""

from __future__ import annotations

import os
from pathlib import Path


def hf_home() -> Path:
    """The Hugging Face cache home: ``$HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``."""
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface"


def cache_root() -> Path:
    """Where fade-hub keeps what it caches (the demo model, feedback waiting to be pushed)."""
    if os.environ.get("FADE_HUB_CACHE"):
        return Path(os.environ["FADE_HUB_CACHE"]).expanduser()
    return hf_home() / "fade-hub"
