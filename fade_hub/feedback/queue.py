"""The local queue of feedback files waiting to be pushed, kept per Hub endpoint and repo.

By default a writer for ``REPO`` on the Hub at ``ENDPOINT`` appends to a file in
``CACHE/feedback/<host>-<hash of ENDPOINT>/<org>--<name>/`` (``CACHE`` is ``fade_hub.cache.cache_root()``).
Next to each ``feedback-<id>.jsonl`` a sidecar ``feedback-<id>.meta.json`` records the endpoint, the repo and
how many bytes of the file the Hub holds; sidecars are never uploaded and never read as records. A writer
pushes only files whose sidecar names its own endpoint and repo (and files without a sidecar, kept from a
local-only session in a folder the user names, which it then claims), and lists in one line the files
waiting for other Hubs or repos.

The old layout (``~/.cache/fade_hub/feedback/<org>--<name>/`` or ``$FADE_HUB_CACHE/feedback/<org>--<name>/``)
recorded no endpoint. ``migrate_legacy`` reads it once per endpoint and repo, and copies into the new folder
only the files this Hub already holds a part of, so that nothing reaches a Hub it was not written for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..cache import cache_root, legacy_roots
from ..errors import NETWORK_ERRORS
from ..files import write_atomic
from ..jsonio import to_json

logger = logging.getLogger(__name__)

FEEDBACK_DIR = "feedback"  # under the cache root
PATH_IN_REPO = "data"  # where the dataset repo holds the feedback files
META_SUFFIX = ".meta.json"
LEGACY_CHECKED = ".legacy-checked"  # marker in a queue folder: the old layout was read for it


def normalize_endpoint(endpoint: str) -> str:
    """The endpoint URL as recorded and compared: no trailing slash."""
    return endpoint.strip().rstrip("/")


def endpoint_key(endpoint: str) -> str:
    """A folder name for a Hub endpoint: its host (readable) and a short hash of the whole URL (unique)."""
    endpoint = normalize_endpoint(endpoint)
    host = re.sub(r"[^A-Za-z0-9.]+", "_", urlsplit(endpoint).netloc or endpoint).strip("_") or "hub"
    return f"{host}-{hashlib.sha256(endpoint.encode()).hexdigest()[:8]}"


def repo_folder_name(repo_id: str) -> str:
    """``org--name`` for ``org/name``."""
    return repo_id.replace("/", "--")


def queue_dir(repo_id: str, endpoint: str) -> Path:
    """The default folder for feedback on ``repo_id`` at ``endpoint``: ``CACHE/feedback/<endpoint key>/<org>--<name>``."""
    return cache_root() / FEEDBACK_DIR / endpoint_key(endpoint) / repo_folder_name(repo_id)


def meta_path(path: Path) -> Path:
    """The sidecar of a feedback file: ``feedback-<id>.meta.json`` next to ``feedback-<id>.jsonl``."""
    return path.with_name(path.name.removesuffix(".jsonl") + META_SUFFIX)


@dataclass(frozen=True)
class QueuedFile:
    """A feedback file in a queue folder and what its sidecar says (``endpoint`` None: no sidecar)."""

    path: Path
    endpoint: str | None = None
    repo_id: str | None = None
    pushed_bytes: int = 0

    def belongs_to(self, endpoint: str, repo_id: str) -> bool:
        """Whether the file was written for ``repo_id`` on the Hub at ``endpoint``."""
        return self.endpoint == normalize_endpoint(endpoint) and self.repo_id == repo_id

    def waiting_records(self) -> int:
        """Records of the file that the Hub does not hold yet."""
        with self.path.open("rb") as handle:
            handle.seek(self.pushed_bytes)
            return sum(1 for line in handle if line.strip())


def write_meta(path: Path, endpoint: str, repo_id: str, pushed_bytes: int = 0) -> None:
    """Write (atomically) the sidecar of ``path``: the Hub and repo it is for, and the bytes the Hub holds."""
    meta = {"endpoint": normalize_endpoint(endpoint), "repo_id": repo_id, "pushed_bytes": pushed_bytes}
    write_atomic(meta_path(path), to_json(meta) + "\n")


def read_queue(folder: Path) -> list[QueuedFile]:
    """The feedback files in ``folder`` with what their sidecars say; an unreadable sidecar names no Hub."""
    queued = []
    for path in sorted(folder.glob("*.jsonl")):
        sidecar = meta_path(path)
        if not sidecar.exists():
            queued.append(QueuedFile(path))
            continue
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            queued.append(QueuedFile(path, str(meta["endpoint"]), str(meta["repo_id"]), int(meta["pushed_bytes"])))
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning("ignoring %s: unreadable sidecar %s (%s)", path, sidecar, err)
            queued.append(QueuedFile(path, endpoint="?", repo_id="?"))
    return queued


def claim(folder: Path, endpoint: str, repo_id: str) -> tuple[list[Path], list[QueuedFile]]:
    """(files in ``folder`` to push to ``repo_id`` at ``endpoint``, files there waiting for another Hub or repo).

    Files without a sidecar are claimed (a sidecar naming this Hub is written); fully pushed files are left out.
    """
    ours, others = [], []
    for item in read_queue(folder):
        if item.endpoint is None:
            write_meta(item.path, endpoint, repo_id)
            ours.append(item.path)
        elif item.belongs_to(endpoint, repo_id):
            if item.path.stat().st_size > item.pushed_bytes:
                ours.append(item.path)
        elif item.path.stat().st_size > item.pushed_bytes:
            others.append(item)
    return ours, others


def waiting_elsewhere(repo_id: str, endpoint: str) -> list[QueuedFile]:
    """Files for ``repo_id`` in the default queue folders of other endpoints that their Hub does not fully hold."""
    own = queue_dir(repo_id, endpoint)
    folders = sorted((cache_root() / FEEDBACK_DIR).glob(f"*/{repo_folder_name(repo_id)}"))
    return [
        item for folder in folders if folder.is_dir() and folder != own for item in read_queue(folder)
        if item.endpoint is not None and item.path.stat().st_size > item.pushed_bytes
    ]


def waiting_line(endpoint: str, waiting: list[QueuedFile]) -> str:
    """One line saying which feedback waits for other Hubs or repos, and how to push it."""
    groups: dict[tuple[str, str], list[QueuedFile]] = {}
    for item in waiting:
        groups.setdefault((str(item.endpoint), str(item.repo_id)), []).append(item)
    parts = []
    for (other, repo_id), items in sorted(groups.items()):
        folders = ", ".join(sorted({str(item.path.parent) for item in items}))
        records = sum(item.waiting_records() for item in items)
        parts.append(f"{_count(records, 'record')} in {_count(len(items), 'file')} for {repo_id} on {other} "
                     f"(in {folders}; pushed when you serve {repo_id} with HF_ENDPOINT={other})")
    return f"not pushing to {normalize_endpoint(endpoint)} the feedback waiting for other Hubs or repos: " + "; ".join(parts)


def legacy_dirs(repo_id: str) -> list[Path]:
    """Old-layout folders of ``repo_id`` (no endpoint recorded) that exist."""
    name = repo_folder_name(repo_id)
    roots = [cache_root(), *legacy_roots()]
    return [root / FEEDBACK_DIR / name for root in roots if (root / FEEDBACK_DIR / name).is_dir()]


def migrate_legacy(folder: Path, repo_id: str, api) -> None:
    """Once per queue folder: copy in the old-layout files of ``repo_id`` that this Hub holds a shorter copy of.

    A file this Hub holds a part of was written for it; the rest of the old files may belong to another Hub
    and are only listed (in one line). The old folders are read, never written.
    """
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
    from huggingface_hub.hf_api import RepoFile

    marker = folder / LEGACY_CHECKED
    old = [path for directory in legacy_dirs(repo_id) for path in sorted(directory.glob("*.jsonl"))]
    if marker.exists() or not old:
        return
    try:
        tree = api.list_repo_tree(repo_id, PATH_IN_REPO, repo_type="dataset")
        on_hub = {Path(entry.path).name: entry.size for entry in tree if isinstance(entry, RepoFile)}
    except EntryNotFoundError:
        on_hub = {}
    except (HfHubHTTPError, *NETWORK_ERRORS) as err:  # checked again at the next start
        logger.warning("could not compare fade-hub's old feedback folder for %s with the Hub (%s); left for the "
                       "next start", repo_id, type(err).__name__)
        return
    endpoint = api.endpoint
    copied = [path for path in old if path.name in on_hub and path.stat().st_size > on_hub[path.name]]
    for path in copied:
        if not (folder / path.name).exists():
            write_meta(folder / path.name, endpoint, repo_id, pushed_bytes=on_hub[path.name])
            partial = folder / f".{path.name}.tmp"
            shutil.copyfile(path, partial)
            os.replace(partial, folder / path.name)
    unknown = [path for path in old if path.name not in on_hub]
    held = len(old) - len(copied) - len(unknown)
    message = (f"read fade-hub's old feedback folder for {repo_id} ({', '.join(map(str, legacy_dirs(repo_id)))}), "
               f"which recorded no Hub: {_count(len(copied), 'file')} holding records that {endpoint} lacks, copied "
               f"to {folder} and pushed; {_count(held, 'file')} already on {endpoint}")
    if unknown:
        message += (f"; {_count(len(unknown), 'file')} never pushed to {endpoint}, maybe written for another Hub, "
                    "left in place (to push them here, serve with --feedback-dir set to their folder)")
    logger.warning(message)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text("\n".join(str(path) for path in old) + "\n", encoding="utf-8")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
