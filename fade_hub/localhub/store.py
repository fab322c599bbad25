"""Git-less storage behind LocalHub: content-addressed blobs, JSON commits and refs, per-repo file locks.

Layout under ``root``::

    objects/ab/cdef…            file contents, named by their sha256
    tmp/                        uploads in progress, one folder per running store (see ``staging``); moved into
                                objects/ once their hash is checked, and cleaned of crash leftovers at start
    {models|datasets|spaces|kernels}/{namespace}/{name}/
        repo.json               type, id, private, sdk, creation date, Space variables and secrets
        refs.json               {"heads": {branch: oid}, "tags": {tag: oid}, "prs": {num: oid}}
        commits/{oid}.json      parents, title, message, date, tree {path: entry}
        .lock                   flock'ed while a commit or a ref change is applied

Every write goes to a temporary file first and is moved into place with ``os.replace``; commits are
immutable, so readers never need a lock. Writers to one repo are serialised by ``flock`` on its lock
file, which also holds when several LocalHub processes share one root.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import IO, Any, Iterable, Iterator

from .base import (
    DEFAULT_BRANCH,
    USER_NAME,
    BadRequest,
    Conflict,
    EntryNotFound,
    Forbidden,
    PreconditionFailed,
    RepoId,
    RepoNotFound,
    RevisionNotFound,
    git_blob_sha1,
    lfs_pointer,
    normalize_path,
    utc_now,
)
from .staging import Staging

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

GITATTRIBUTES = (
    "*.7z filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
    "*.bin filter=lfs diff=lfs merge=lfs -text\n*.gz filter=lfs diff=lfs merge=lfs -text\n"
    "*.h5 filter=lfs diff=lfs merge=lfs -text\n*.npy filter=lfs diff=lfs merge=lfs -text\n"
    "*.onnx filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n*.pth filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.zip filter=lfs diff=lfs merge=lfs -text\n"
).encode()
_HEX_RE = re.compile(r"^[0-9a-f]{7,40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _write_json(path: Path, value: Any) -> None:
    _write_atomic(path, json.dumps(value, indent=1, sort_keys=True).encode())


class HubStore:
    """The repositories under one root folder; safe to use from many threads and processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.staging = Staging(self.root / "tmp")
        self._thread_locks: dict[Path, threading.Lock] = {}
        self._thread_locks_guard = threading.Lock()

    def close(self) -> None:
        """Release this store's upload folder (the repos stay)."""
        self.staging.close()

    # ------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def _locked(self, lock_file: Path) -> Iterator[None]:
        """Hold an exclusive lock on ``lock_file`` (flock where available, a thread lock otherwise)."""
        if fcntl is None:  # pragma: no cover - Windows
            with self._thread_locks_guard:
                lock = self._thread_locks.setdefault(lock_file, threading.Lock())
            with lock:
                yield
            return
        with open(lock_file, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _repo_locked(self, repo: RepoId) -> Iterator[None]:
        """Hold a repo's write lock; raise RepoNotFound if it does not exist or was deleted meanwhile."""
        self.meta(repo)
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(self._locked(self.repo_dir(repo) / ".lock"))
        except FileNotFoundError:
            raise RepoNotFound(f"Repository {repo.url_prefix}{repo.id} not found.") from None
        with stack:
            self.meta(repo)
            yield

    # ------------------------------------------------------------------ objects
    def object_path(self, sha256: str) -> Path:
        """Where the blob with this sha256 lives (it may not exist)."""
        return self.root / "objects" / sha256[:2] / sha256[2:]

    def has_object(self, sha256: str) -> bool:
        """Whether a blob with this sha256 is stored."""
        return bool(_SHA256_RE.match(sha256)) and self.object_path(sha256).is_file()

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as a blob; return its sha256."""
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.object_path(sha256).is_file():
            self.put_stream([data], sha256)
        return sha256

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str) -> int:
        """Store a streamed upload whose sha256 must be ``expected_sha256``; return its size."""
        if not _SHA256_RE.match(expected_sha256):
            raise BadRequest(f"Invalid LFS oid {expected_sha256!r}: expected a sha256 in hex.")
        tmp = self.staging.new_path()
        digest, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as handle:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
            if digest.hexdigest() != expected_sha256:
                raise BadRequest(f"Uploaded content does not match its oid {expected_sha256}.")
            target = self.object_path(expected_sha256)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return size

    def open_object(self, sha256: str) -> IO[bytes]:
        """Open a stored blob for reading."""
        return open(self.object_path(sha256), "rb")

    def _entry_for_bytes(self, data: bytes) -> dict:
        return {"sha256": self.put_bytes(data), "size": len(data), "oid": git_blob_sha1(data), "lfs": False}

    def _entry_for_lfs(self, sha256: str) -> dict:
        if not self.has_object(sha256):
            raise BadRequest(f"LFS object {sha256} was never uploaded: upload it through the LFS batch API first.")
        size = self.object_path(sha256).stat().st_size
        return {"sha256": sha256, "size": size, "oid": git_blob_sha1(lfs_pointer(sha256, size)), "lfs": True}

    # ------------------------------------------------------------------ repos
    def repo_dir(self, repo: RepoId) -> Path:
        """The folder of a repo (it may not exist)."""
        return self.root / f"{repo.type}s" / repo.namespace / repo.name

    def exists(self, repo: RepoId) -> bool:
        """Whether the repo has been created."""
        return (self.repo_dir(repo) / "repo.json").is_file()

    def meta(self, repo: RepoId) -> dict:
        """The repo's settings (``repo.json``); raise RepoNotFound if it does not exist."""
        try:
            return _read_json(self.repo_dir(repo) / "repo.json")
        except FileNotFoundError:
            raise RepoNotFound(f"Repository {repo.url_prefix}{repo.id} not found.") from None

    def create_repo(self, repo: RepoId, *, private: bool = False, sdk: str | None = None) -> str:
        """Create a repo whose ``main`` holds one commit with ``.gitattributes``; return that commit's oid."""
        repo.validate()
        with self._locked(self.root / ".lock"):
            if self.exists(repo):
                raise Conflict(f"You already created this {repo.type} repo: {repo.id}.")
            folder = self.repo_dir(repo)
            if folder.exists():  # leftovers of an interrupted create
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            now = utc_now()
            tree = {".gitattributes": self._entry_for_bytes(GITATTRIBUTES)}
            oid = self._write_commit(repo, [], tree, "initial commit", "", now)
            _write_json(folder / "refs.json", {"heads": {DEFAULT_BRANCH: oid}, "tags": {}, "prs": {}})
            meta = {
                "type": repo.type,
                "id": repo.id,
                "private": private,
                "sdk": sdk,
                "createdAt": now,
                "variables": {},
                "secrets": {},
            }
            _write_json(folder / "repo.json", meta)  # written last: marks the repo as existing
        return oid

    def delete_repo(self, repo: RepoId) -> None:
        """Delete a repo (its blobs stay in the shared object store)."""
        with self._locked(self.root / ".lock"), self._repo_locked(repo):
            self.meta(repo)
            folder = self.repo_dir(repo)
            trash = self.staging.new_path()
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def move_repo(self, source: RepoId, target: RepoId) -> None:
        """Rename a repo."""
        target.validate()
        with self._locked(self.root / ".lock"):
            self.meta(source)
            if self.exists(target):
                raise Conflict(f"Repository {target.id} already exists.")
            self.repo_dir(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.repo_dir(source), self.repo_dir(target))
            meta = self.meta(target)
            meta["id"] = target.id
            _write_json(self.repo_dir(target) / "repo.json", meta)

    def update_meta(self, repo: RepoId, changes: dict) -> dict:
        """Merge ``changes`` into the repo's settings; return the new settings."""
        with self._repo_locked(repo):
            meta = self.meta(repo)
            meta.update(changes)
            _write_json(self.repo_dir(repo) / "repo.json", meta)
        return meta

    def list_repos(self, repo_type: str) -> list[RepoId]:
        """Every repo of one type, sorted by id."""
        base = self.root / f"{repo_type}s"
        found = [
            RepoId(repo_type, path.parent.parent.name, path.parent.name)
            for path in base.glob("*/*/repo.json")
        ]
        return sorted(found, key=lambda repo: repo.id)

    # ------------------------------------------------------------------ refs and commits
    def refs(self, repo: RepoId) -> dict:
        """``{"heads": {...}, "tags": {...}, "prs": {...}}`` mapping ref names to commit oids."""
        self.meta(repo)
        return _read_json(self.repo_dir(repo) / "refs.json")

    def commit(self, repo: RepoId, oid: str) -> dict:
        """A commit record: id, parents, title, message, date, tree."""
        try:
            return _read_json(self.repo_dir(repo) / "commits" / f"{oid}.json")
        except (FileNotFoundError, OSError):
            raise RevisionNotFound(f"Invalid rev id: {oid}") from None

    def resolve(self, repo: RepoId, revision: str) -> str:
        """The commit oid a branch, tag, ``refs/...`` name or (abbreviated) commit sha points at."""
        refs = self.refs(repo)
        for prefix, kind in (("refs/heads/", "heads"), ("refs/tags/", "tags"), ("refs/pr/", "prs")):
            if revision.startswith(prefix) and revision[len(prefix) :] in refs[kind]:
                return refs[kind][revision[len(prefix) :]]
        for kind in ("heads", "tags"):
            if revision in refs[kind]:
                return refs[kind][revision]
        if _HEX_RE.match(revision):
            commits = self.repo_dir(repo) / "commits"
            if len(revision) == 40 and (commits / f"{revision}.json").is_file():
                return revision
            matches = [path.stem for path in commits.glob(f"{revision}*.json")] if len(revision) < 40 else []
            if len(matches) == 1:
                return matches[0]
        raise RevisionNotFound(f"Invalid rev id: {revision}")

    def tree(self, repo: RepoId, revision: str) -> tuple[str, dict[str, dict]]:
        """``(commit oid, {path: entry})`` at a revision."""
        oid = self.resolve(repo, revision)
        return oid, self.commit(repo, oid)["tree"]

    def history(self, repo: RepoId, revision: str) -> list[dict]:
        """The commits reachable by first parents from a revision, newest first."""
        oid: str | None = self.resolve(repo, revision)
        commits = []
        while oid:
            commit = self.commit(repo, oid)
            commits.append(commit)
            oid = commit["parents"][0] if commit["parents"] else None
        return commits

    def _write_commit(
        self, repo: RepoId, parents: list[str], tree: dict, title: str, message: str, date: str
    ) -> str:
        body = {"parents": parents, "title": title, "message": message, "date": date, "tree": tree}
        oid = hashlib.sha1(json.dumps(body, sort_keys=True).encode() + str(time.time_ns()).encode()).hexdigest()
        body.update(id=oid, author=USER_NAME)
        _write_json(self.repo_dir(repo) / "commits" / f"{oid}.json", body)
        return oid

    def _update_refs(self, repo: RepoId, kind: str, name: str, oid: str | None) -> None:
        refs = self.refs(repo)
        if oid is None:
            refs[kind].pop(name, None)
        else:
            refs[kind][name] = oid
        _write_json(self.repo_dir(repo) / "refs.json", refs)

    def create_ref(self, repo: RepoId, kind: str, name: str, start: str | None) -> str:
        """Create branch (``heads``) or tag (``tags``) ``name`` at revision ``start`` (default: main)."""
        if not name or name.startswith(("refs/", "/")) or ".." in name or name.endswith("/"):
            raise BadRequest(f"Invalid ref name {name!r}.")
        with self._repo_locked(repo):
            oid = self.resolve(repo, start or DEFAULT_BRANCH)
            if name in self.refs(repo)[kind]:
                raise Conflict(f"Reference already exists: refs/{kind}/{name}.")
            self._update_refs(repo, kind, name, oid)
        return oid

    def delete_ref(self, repo: RepoId, kind: str, name: str) -> None:
        """Delete a branch or tag; the default branch cannot be deleted."""
        if kind == "heads" and name == DEFAULT_BRANCH:
            raise Forbidden("The default branch cannot be deleted.")
        with self._repo_locked(repo):
            if name not in self.refs(repo)[kind]:
                raise RevisionNotFound(f"Invalid rev id: {name}")
            self._update_refs(repo, kind, name, None)

    def apply_commit(
        self,
        repo: RepoId,
        revision: str,
        header: dict,
        operations: list[tuple[str, dict]],
        *,
        create_pr: bool = False,
    ) -> tuple[str, int | None]:
        """Apply one commit to a branch (or open a PR from it); return ``(commit oid, PR number or None)``.

        ``operations`` are the NDJSON ``(key, value)`` pairs of the Hub's commit API: ``file``, ``lfsFile``,
        ``deletedFile``, ``deletedFolder``. Raises PreconditionFailed when ``header["parentCommit"]`` is not
        the current head: concurrent writers either land in sequence or fail, never overwrite each other.
        """
        staged = [self._stage(key, value) for key, value in operations]  # blob writes happen outside the lock
        with self._repo_locked(repo):
            refs = self.refs(repo)
            kind, name = _branch_ref(revision, refs)
            head = refs[kind][name]
            parent = header.get("parentCommit")
            if parent and not head.startswith(parent.lower()):
                raise PreconditionFailed(
                    f"A commit has happened since {parent} (head of {revision} is {head}). "
                    "Please refresh and try again."
                )
            tree = dict(self.commit(repo, head)["tree"])
            for action, path, entry in staged:
                _apply_operation(tree, action, path, entry)
            title, message = str(header.get("summary") or "update"), str(header.get("description") or "")
            oid = self._write_commit(repo, [head], tree, title, message, utc_now())
            pr_num = None
            if create_pr:
                pr_num = max((int(num) for num in refs["prs"]), default=0) + 1
                kind, name = "prs", str(pr_num)
            self._update_refs(repo, kind, name, oid)
        return oid, pr_num

    def squash(self, repo: RepoId, branch: str, message: str) -> str:
        """Replace a branch's history by one parentless commit holding its current tree; return its oid."""
        with self._repo_locked(repo):
            kind, name = _branch_ref(branch, self.refs(repo))
            tree = self.commit(repo, self.refs(repo)[kind][name])["tree"]
            oid = self._write_commit(repo, [], tree, message, "", utc_now())
            self._update_refs(repo, kind, name, oid)
        return oid

    def _stage(self, key: str, value: dict) -> tuple[str, str, dict | None]:
        path = normalize_path(str(value.get("path", "")))
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise BadRequest(f"Unsupported encoding {value.get('encoding')!r} for {path}.")
            try:
                data = base64.b64decode(value.get("content", ""), validate=True)
            except ValueError:
                raise BadRequest(f"Invalid base64 content for {path}.") from None
            return "add", path, self._entry_for_bytes(data)
        if key == "lfsFile":
            if value.get("algo", "sha256") != "sha256":
                raise BadRequest(f"Unsupported LFS algo {value.get('algo')!r} for {path}.")
            return "add", path, self._entry_for_lfs(str(value.get("oid", "")))
        if key in ("deletedFile", "deletedFolder"):
            return key, path, None
        raise BadRequest(f"Unsupported commit operation {key!r}.")


def _branch_ref(revision: str, refs: dict) -> tuple[str, str]:
    """The ``(kind, name)`` of the branch or PR ref a commit may be written to."""
    for prefix, kind in (("refs/heads/", "heads"), ("refs/pr/", "prs")):
        if revision.startswith(prefix) and revision[len(prefix) :] in refs[kind]:
            return kind, revision[len(prefix) :]
    if revision in refs["heads"]:
        return "heads", revision
    raise RevisionNotFound(f"Invalid rev id: {revision} (commits go to an existing branch).")


def _apply_operation(tree: dict[str, dict], action: str, path: str, entry: dict | None) -> None:
    """Apply one staged operation to a ``{path: entry}`` tree in place."""
    if action == "deletedFile":
        if tree.pop(path, None) is None:
            raise EntryNotFound(f"A file with this name doesn't exist: {path}")
        return
    if action == "deletedFolder":
        doomed = [key for key in tree if key.startswith(path + "/")]
        if not doomed:
            raise EntryNotFound(f"A folder with this name doesn't exist: {path}")
        for key in doomed:
            del tree[key]
        return
    parents = [str(parent) for parent in PurePosixPath(path).parents if str(parent) != "."]
    if any(parent in tree for parent in parents) or any(key.startswith(path + "/") for key in tree):
        raise BadRequest(f"Cannot add {path}: a file and a folder would share a name.")
    assert entry is not None
    tree[path] = entry
