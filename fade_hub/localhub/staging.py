"""Where LocalHub writes uploads before they are checked and moved into the object store.

Each ``HubStore`` writes into its own folder ``ROOT/tmp/<id>/``, claimed by holding an exclusive
``flock`` on ``ROOT/tmp/<id>.lock`` for as long as the store lives. An upload cut short by a crash leaves
its part there; the next store to start on the same root removes every folder whose lock nobody holds
(and anything else in ``tmp/``), while the folders of LocalHub processes still running on the root stay.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, so only leftovers older than a day are removed
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("fade_hub.localhub")

_LOCK_SUFFIX = ".lock"
_UNLOCKED_AGE_S = 24 * 3600


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path`` (created if missing), or None when another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _remove(path: Path) -> None:
    """Remove a file or folder, whichever it is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _claimed(lock: Path) -> bool:
    """Whether a running store holds ``lock``; when nobody does, the stale lock file is removed."""
    if fcntl is None:  # no flock: whatever is younger than a day may be a running store's
        return lock.exists() and time.time() - lock.stat().st_mtime < _UNLOCKED_AGE_S
    if not lock.exists():
        return False
    fd = _try_lock(lock)
    if fd is None:
        return True
    lock.unlink(missing_ok=True)
    os.close(fd)
    return False


def clean_stale(tmp: Path) -> int:
    """Remove from ``tmp`` what no running store claims (parts of interrupted uploads); return how many went."""
    removed = 0
    for entry in sorted(tmp.iterdir()):
        if entry.name.endswith(_LOCK_SUFFIX):
            if not entry.with_name(entry.name[: -len(_LOCK_SUFFIX)]).exists():
                _claimed(entry)  # an orphan lock: removed unless held
            continue
        if not _claimed(entry.with_name(entry.name + _LOCK_SUFFIX)):
            _remove(entry)
            removed += 1
    if removed:
        logger.info("removed %d leftovers of interrupted uploads from %s", removed, tmp)
    return removed


class Staging:
    """This store's own upload folder under ``tmp/``, claimed until ``close``."""

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        clean_stale(tmp)
        self._fd: int | None = None
        name = uuid.uuid4().hex
        while fcntl is not None:
            fd = _try_lock(tmp / (name + _LOCK_SUFFIX))
            if fd is not None and _same_file(fd, tmp / (name + _LOCK_SUFFIX)):
                self._fd = fd
                break
            if fd is not None:  # a cleaner unlinked the file between our open and our flock: claim another
                os.close(fd)
            name = uuid.uuid4().hex
        self._lock = tmp / (name + _LOCK_SUFFIX)
        self._lock.touch()
        self.folder = tmp / name
        self.folder.mkdir()

    def new_path(self) -> Path:
        """A fresh file name in this store's folder."""
        return self.folder / uuid.uuid4().hex

    def close(self) -> None:
        """Remove the folder and release the claim."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self._lock.unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
