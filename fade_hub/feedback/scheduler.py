"""The scheduler that pushes a writer's queue: only the files of its own Hub and repo, sizes recorded as pushed."""

from __future__ import annotations

from glob import escape
from pathlib import Path

from huggingface_hub import CommitScheduler

from .queue import normalize_endpoint, write_meta


class QueueScheduler(CommitScheduler):
    """A ``CommitScheduler`` that pushes only the given files and records in their sidecars what the Hub holds."""

    def __init__(self, *, files: list[Path], endpoint: str, repo_id: str, **kwargs) -> None:
        self.files = [Path(path) for path in files]
        self.endpoint = normalize_endpoint(endpoint)
        self.queued_repo = repo_id  # as the sidecars name it (``self.repo_id`` is the Hub's spelling)
        self.recorded: dict[Path, int] = {}
        # CommitScheduler starts pushing in its constructor: everything push_to_hub reads is set above
        super().__init__(repo_id=repo_id, allow_patterns=[escape(path.name) for path in self.files], **kwargs)

    def push_to_hub(self):
        """Push what changed in our files, then record their pushed sizes (a lower bound of what the Hub holds)."""
        with self.lock:
            sizes = {path: path.stat().st_size for path in self.files if path.exists()}
        info = super().push_to_hub()
        for path, size in sizes.items():
            if self.recorded.get(path) != size:
                write_meta(path, self.endpoint, self.queued_repo, pushed_bytes=size)
                self.recorded[path] = size
        return info
