"""A command's claim on the folder it writes: a lock that no crashed holder leaves behind, and a staging folder.

``OutputClaim(output)`` holds an exclusive ``flock`` on ``.NAME.fade-staging/lock`` beside ``output`` for as long
as the command runs, so that a second command on the same output refuses at once (the kernel drops the lock of a
process that dies, even by ``kill -9``). Everything the command makes before it is done (a trainer's scratch files,
the folder being written) lives in that staging folder, outside ``output``; ``publish`` moves the finished folder
into place in one rename. Whatever an interrupted command left there is removed by the next one to claim the
output, so a rerun after Ctrl-C, ``kill -9`` or a crash needs no cleaning by hand.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

from .errors import BadConfig

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; leftovers are still removed on the next start
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

SUFFIX = ".fade-staging"
_LOCK = "lock"


def staging_folder(output: str | Path) -> Path:
    """The hidden staging folder beside ``output`` (``.NAME.fade-staging``)."""
    output = Path(output).absolute()
    return output.parent / f".{output.name}{SUFFIX}"


class OutputClaim:
    """Exclusive use of ``output`` and its staging folder while the ``with`` block runs (see the module docstring)."""

    def __init__(self, output: str | Path, command: str) -> None:
        self.output = Path(output)
        self.folder = staging_folder(output)
        self.command = command
        self._fd: int | None = None
        self._made: list[Path] = []  # folders above the output that this claim created (removed if left empty)

    def __enter__(self) -> OutputClaim:
        missing = [folder for folder in self.folder.parents if not folder.exists()]
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._made = missing
        while True:
            self.folder.mkdir(exist_ok=True)
            lock = self.folder / _LOCK
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the holder removed the folder as it finished: again
                continue
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                    os.close(fd)
                    self._remove_made()
                    raise BadConfig(
                        f"another fade-hub {self.command} (process {holder}) is writing {self.output}; wait for it "
                        "to finish, or choose another --output"
                    ) from None
            if _same_file(fd, lock):  # else the holder removed the folder between our open and our flock: again
                break
            os.close(fd)
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        for entry in self.folder.iterdir():  # what an interrupted command left
            if entry.name != _LOCK:
                logger.info("removing %s, left by an interrupted fade-hub %s", entry, self.command)
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        return self

    def path(self, name: str) -> Path:
        """A place inside the staging folder (not created)."""
        return self.folder / name

    def publish(self, built: Path) -> None:
        """Move ``built`` (a folder made inside the staging folder) to the output in one rename; an existing empty
        output folder is replaced, keeping its permissions."""
        if self.output.is_dir():
            os.chmod(built, stat.S_IMODE(self.output.stat().st_mode))
            self.output.rmdir()
        os.replace(built, self.output)
        self._made = []

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)  # the lock file with it: the next claim makes a new one
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._remove_made()

    def _remove_made(self) -> None:
        for folder in self._made:  # nearest first
            try:
                folder.rmdir()
            except OSError:
                break
        self._made = []


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
