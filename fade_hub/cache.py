"""fade-hub's one cache root: ``$FADE_HUB_CACHE``, else a ``fade-hub`` folder in the Hugging Face cache home.

Following ``HF_HOME`` means that users and tests who isolate the Hugging Face cache isolate fade-hub too:
when the root lies outside the home folder, nothing fade-hub runs writes under the home folder (matplotlib's
config and font cache included, see ``keep_library_caches_in_root``). Earlier versions cached under
``~/.cache/fade_hub`` (feedback) and ``~/.cache/fade-hub`` (the demo); ``note_legacy_roots`` says once what
is left there, and ``fade_hub.feedback.queue`` carries their pending feedback over.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

LEGACY_NAMES = ("fade_hub", "fade-hub")  # under ~/.cache: feedback and the demo before one root
LEGACY_NOTED = ".legacy-noted"  # marker in the cache root: the old folders were pointed out once


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


def under_home(path: Path) -> bool:
    """Whether ``path`` lies in the home folder."""
    return Path(path).expanduser().resolve().is_relative_to(Path.home().resolve())


def legacy_roots() -> list[Path]:
    """fade-hub's old cache folders (``~/.cache/fade_hub``, ``~/.cache/fade-hub``) that exist, read only."""
    root = cache_root().resolve()
    folders = [Path.home() / ".cache" / name for name in LEGACY_NAMES]
    return [folder for folder in folders if folder.is_dir() and folder.resolve() != root]


def keep_library_caches_in_root() -> None:
    """Point matplotlib's config and font cache into the cache root when the root lies outside the home folder.

    Call before matplotlib is imported; an ``MPLCONFIGDIR`` the user set is kept.
    """
    root = cache_root()
    if not os.environ.get("MPLCONFIGDIR") and not under_home(root):
        os.environ["MPLCONFIGDIR"] = str(root / "matplotlib")


def note_legacy_roots() -> None:
    """Say once per cache root, in one warning line, which old fade-hub cache folders are no longer used."""
    root = cache_root()
    old = legacy_roots()
    if not old or (root / LEGACY_NOTED).exists():
        return
    logger.warning(
        "fade-hub now keeps its cache in %s ($FADE_HUB_CACHE, else HF_HOME/fade-hub) and no longer uses %s; "
        "feedback found there is compared with its Hub when you serve its repo again (what that Hub lacks is "
        "copied over and pushed, anything else is listed); delete the old folders when you no longer need them",
        root, ", ".join(f"{folder} ({_size_text(folder)})" for folder in old),
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / LEGACY_NOTED).write_text("\n".join(str(folder) for folder in old) + "\n", encoding="utf-8")


def _size_text(folder: Path) -> str:
    files = [path for path in folder.rglob("*") if path.is_file()]
    return f"{len(files)} files, {sum(path.stat().st_size for path in files) / 1e6:.1f} MB"
