"""What LocalHub's storage and routes share: repo ids, the errors answered to clients, and git/LFS helpers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone

REPO_TYPES = ("model", "dataset", "space", "kernel")
DEFAULT_BRANCH = "main"
USER_NAME = "local-user"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,95}$")


class HubError(Exception):
    """An error answered to the client: HTTP status, ``X-Error-Code`` (may be empty) and a message."""

    status = 400
    code = ""

    def __init__(self, message: str, *, repo_commit: str | None = None) -> None:
        super().__init__(message)
        self.repo_commit = repo_commit


class BadRequest(HubError):
    """Malformed request (400)."""


class RepoNotFound(HubError):
    """Unknown repository (404, ``RepoNotFound``)."""

    status, code = 404, "RepoNotFound"


class RevisionNotFound(HubError):
    """Unknown branch, tag or commit (404, ``RevisionNotFound``)."""

    status, code = 404, "RevisionNotFound"


class EntryNotFound(HubError):
    """Unknown file or folder at a known revision (404, ``EntryNotFound``)."""

    status, code = 404, "EntryNotFound"


class Conflict(HubError):
    """The repo, branch or tag already exists (409)."""

    status = 409


class PreconditionFailed(HubError):
    """``parentCommit`` is no longer the head of the branch (412)."""

    status = 412


class Forbidden(HubError):
    """An operation LocalHub refuses, such as deleting the default branch (403)."""

    status = 403


@dataclass(frozen=True)
class RepoId:
    """A repository address: type (model|dataset|space|kernel), namespace and name."""

    type: str
    namespace: str
    name: str

    @property
    def id(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def url_prefix(self) -> str:
        """Path prefix of the repo's web URLs: ``""`` for models, ``"datasets/"`` for datasets, …"""
        return "" if self.type == "model" else f"{self.type}s/"

    def validate(self) -> "RepoId":
        """Return self, or raise BadRequest when the type or a name part is not allowed."""
        if self.type not in REPO_TYPES:
            raise BadRequest(f"Invalid repo type {self.type!r}; expected one of {', '.join(REPO_TYPES)}.")
        for part in (self.namespace, self.name):
            if not _NAME_RE.match(part) or ".." in part or part.endswith((".git", ".")):
                raise BadRequest(f"Invalid repo id {self.id!r}: use letters, digits, '-', '_' and '.'.")
        return self


def utc_now() -> str:
    """The current time, ISO 8601 with milliseconds and a ``Z``, as the Hub writes dates."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob holding ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that stands for an LFS object in git."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def normalize_path(path: str) -> str:
    """Check a path inside a repo and return it without a trailing slash; raise BadRequest if unsafe."""
    clean = path.strip("/")
    parts = clean.split("/")
    if not clean or any(part in ("", ".", "..") for part in parts) or "\\" in clean or "\0" in clean:
        raise BadRequest(f"Invalid path in repo: {path!r}.")
    return clean
