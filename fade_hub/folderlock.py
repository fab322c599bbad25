"""FolderLock: one fade-hub process at a time writes a folder (a run being explored or resumed).

The lock is ``fcntl.flock`` on a hidden ``.lock`` file in the folder: the kernel drops it when its holder
exits, however it exits (a crash or ``kill -9`` leaves no stale lock, at most the empty file). The holder
writes its pid into the file, so that a refusal names it, and removes the file when it lets go (a stale one
too). A process that opened the file just before its holder removed it would lock a file no longer in the
folder: it checks that the file it locked is still the folder's, and tries again otherwise.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from .errors import BadConfig, FolderBusy

LOCK_FILE = ".lock"  # hidden: never pushed (see fade_hub.hub.PUSH_IGNORE)


class FolderLock:
    """An exclusive, non-blocking lock on a folder, held by this process from ``acquire`` to ``release``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self._handle is not None

    def acquire(self, instead: str | None = None) -> None:
        """Take the lock (the folder must exist); FolderBusy naming the holder when another process has it (and, when
        given, the flag to pass ``instead``: another folder)."""
        if self._handle is not None:
            return
        while True:
            try:
                handle = self.path.open("a+", encoding="utf-8")
            except OSError as err:
                raise BadConfig(f"cannot take {self.folder} for this process ({err.strerror}); it must be a folder "
                                "you can write to") from None
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                by = f" (pid {holder})" if holder.isdigit() else ""
                other = f", or use another {instead}" if instead else ""
                raise FolderBusy(f"{self.folder} is in use by another fade-hub process{by}; wait until it "
                                 f"ends{other}") from None
            if _same_file(handle, self.path):
                break
            handle.close()  # its holder removed the file meanwhile: lock the folder's current one
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Let go of the lock and remove its file; nothing when not held."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            self.path.unlink(missing_ok=True)  # while still locked: whoever locks next checks it is the folder's
        finally:
            handle.close()


def _same_file(handle: IO[str], path: Path) -> bool:
    """Whether an open file is still the one at ``path``."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False
