"""Repo, ref and file routes of LocalHub, as a mixin of its request handler, and the helpers they share.

Each route answers by raising :class:`RouteReply` (a JSON answer) or, after writing its own body, ``_Sent``.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import json
import logging
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs

from .base import (
    DEFAULT_BRANCH,
    USER_NAME,
    BadRequest,
    Conflict,
    EntryNotFound,
    RepoId,
    lfs_pointer,
    utc_now,
)
from .store import HubStore

logger = logging.getLogger("fade_hub.localhub")

_CHUNK = 1 << 20
_REGULAR_MAX_BYTES = 1_000_000
_LFS_SUFFIXES = frozenset(
    ".7z .arrow .bin .bz2 .ckpt .gguf .gz .h5 .jpeg .jpg .joblib .msgpack .npy .npz .onnx .ot .parquet .pb .pickle "
    ".pkl .png .pt .pth .safetensors .tar .tflite .wav .mp3 .mp4 .webp .xz .zip .zst".split()
)
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RouteReply(Exception):
    """A finished JSON answer, raised to unwind out of a route."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def upload_mode(path: str, sample: bytes, size: int) -> str:
    """``"regular"`` for small UTF-8 text files, ``"lfs"`` for everything else (binary, large, data files)."""
    if size > _REGULAR_MAX_BYTES or PurePosixPath(path).suffix.lower() in _LFS_SUFFIXES or b"\0" in sample:
        return "lfs"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "lfs"
    return "regular"


def _card_data(store: HubStore, tree: dict[str, dict]) -> dict | None:
    """The YAML header of README.md as a dict, or None."""
    entry = tree.get("README.md")
    if entry is None or entry["size"] > _REGULAR_MAX_BYTES:
        return None
    with store.open_object(entry["sha256"]) as handle:
        text = handle.read().decode("utf-8", errors="replace")
    header = _front_matter(text)
    if header is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(header)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _front_matter(text: str) -> str | None:
    """The text between the leading ``---`` lines of a Markdown document, or None."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return "\n".join(lines[1:index])
    return None


def _filter_tags(info: dict) -> set[str]:
    """What a ``filter`` query matches, as on the Hub: the card's tags, its library and ``dataset:ID`` per dataset."""
    card = info.get("cardData") or {}
    datasets = card.get("datasets") or []
    tags = set(map(str, info.get("tags") or []))
    if card.get("library_name"):
        tags.add(str(card["library_name"]))
    tags.update(f"dataset:{name}" for name in ([datasets] if isinstance(datasets, str) else datasets))
    return tags


def _file_item(path: str, entry: dict) -> dict:
    item: dict[str, Any] = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
    if entry["lfs"]:
        pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
        item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
    return item


def _folder_oids(tree: dict[str, dict]) -> dict[str, str]:
    """A stable 40-hex id for every folder of a tree, derived from the files below it."""
    digests: dict[str, Any] = {}
    for path in sorted(tree):
        for parent in PurePosixPath(path).parents:
            key = str(parent)
            if key != ".":
                digests.setdefault(key, hashlib.sha1()).update(f"{path}\0{tree[path]['oid']}\n".encode())
    return {key: digest.hexdigest() for key, digest in digests.items()}


def _last_commits(store: HubStore, repo: RepoId, oid: str, paths: list[str]) -> dict[str, dict]:
    """``{path: {id, title, date}}``: the newest commit that changed each path (file or folder)."""
    found: dict[str, dict] = {}
    pending = set(paths)
    for commit in store.history(repo, oid):
        if not pending:
            break
        parent_tree = store.commit(repo, commit["parents"][0])["tree"] if commit["parents"] else {}
        tree = commit["tree"]
        changed = {path for path in tree.keys() | parent_tree.keys() if tree.get(path) != parent_tree.get(path)}
        for path in list(pending):
            if any(item == path or item.startswith(path + "/") for item in changed):
                found[path] = {"id": commit["id"], "title": commit["title"], "date": commit["date"]}
                pending.discard(path)
    return found

class _Sent(RouteReply):
    """Raised after a route wrote its own (non-JSON) response."""

    def __init__(self) -> None:
        super().__init__(0, None)

class RepoRoutes:
    """The routes that read and write repos; mixed into ``HubRequestHandler``, which provides the plumbing."""

    # ------------------------------------------------------------------ repos
    def _route_repos(self, method: str, verb: str) -> None:
        if verb == "create" and method == "POST":
            body = self._json()
            repo = RepoId(body.get("type") or "model", body.get("organization") or USER_NAME, str(body.get("name", "")))
            private = body.get("visibility", "public") == "private" or bool(body.get("private"))
            url = f"{self.endpoint}/{repo.url_prefix}{repo.id}"
            try:
                self.store.create_repo(repo, private=private, sdk=body.get("sdk"))
            except Conflict as err:  # clients read "url" from the 409 answer when exist_ok=True
                raise RouteReply(409, {"error": str(err), "url": url, "name": repo.id}) from None
            raise RouteReply(200, {"url": url, "name": repo.id, "id": repo.id})
        if verb == "delete" and method == "DELETE":
            body = self._json()
            repo = RepoId(body.get("type") or "model", body.get("organization") or USER_NAME, str(body.get("name", "")))
            self.store.delete_repo(repo.validate())
            raise RouteReply(200, {})
        if verb == "move" and method == "POST":
            body = self._json()
            repo_type = body.get("type") or "model"
            source, target = (_parse_repo_id(repo_type, str(body.get(key, ""))) for key in ("fromRepo", "toRepo"))
            self.store.move_repo(source, target)
            raise RouteReply(200, {})

    def _list_repos(self, repo_type: str, query: dict[str, list[str]]) -> None:
        author = (query.get("author") or [None])[0]
        search = ((query.get("search") or [""])[0]).lower()
        limit = int((query.get("limit") or ["0"])[0] or 0)
        full = (query.get("full") or ["false"])[0].lower() in ("1", "true")
        wanted = set(query.get("filter") or [])  # as the Hub: every filter must be one of the repo's tags
        items = [
            self._repo_info(repo, DEFAULT_BRANCH, siblings=full)
            for repo in self.store.list_repos(repo_type)
            if (author is None or repo.namespace == author) and search in repo.id.lower()
        ]
        items = [item for item in items if wanted <= _filter_tags(item)]
        raise RouteReply(200, items[:limit] if limit else items)

    def _repo_info(self, repo: RepoId, revision: str, *, siblings: bool) -> dict:
        meta = self.store.meta(repo)
        oid, tree = self.store.tree(repo, revision)
        commit = self.store.commit(repo, oid)
        card = _card_data(self.store, tree)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "author": repo.namespace,
            "sha": oid,
            "lastModified": commit["date"],
            "createdAt": meta["createdAt"],
            "private": bool(meta.get("private")),
            "gated": meta.get("gated", False),
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list((card or {}).get("tags") or []),
            "cardData": card,
            "usedStorage": sum(entry["size"] for entry in tree.values()),
        }
        if siblings:
            info["siblings"] = [_sibling(path, entry) for path, entry in sorted(tree.items())]
        if repo.type == "model" and card:
            info.update(library_name=card.get("library_name"), pipeline_tag=card.get("pipeline_tag"))
        if repo.type == "space":
            info["sdk"] = meta.get("sdk") or (card or {}).get("sdk")
        return info

    def _settings(self, repo: RepoId) -> None:
        body = self._json()
        changes: dict[str, Any] = {}
        if "private" in body:
            changes["private"] = bool(body["private"])
        if "visibility" in body:
            changes["private"] = body["visibility"] == "private"
        if "gated" in body:
            changes["gated"] = body["gated"]
        self.store.update_meta(repo, changes)
        raise RouteReply(200, {})

    def _space_config(self, method: str, repo: RepoId, kind: str) -> None:
        stored: dict = dict(self.store.meta(repo).get(kind) or {})
        if method in ("POST", "DELETE"):
            body = self._json()
            key = str(body.get("key") or "")
            if not key:
                raise BadRequest("Missing 'key'.")
            if method == "POST":
                stored[key] = {"value": str(body.get("value", "")), "description": body.get("description")}
                stored[key]["updatedAt"] = utc_now()
            else:
                stored.pop(key, None)
            self.store.update_meta(repo, {kind: stored})
        elif method != "GET":
            return
        if kind == "secrets":  # secret values are write-only
            stored = {key: {k: v for k, v in value.items() if k != "value"} for key, value in stored.items()}
        raise RouteReply(200, stored)

    # ------------------------------------------------------------------ refs and history
    def _refs(self, repo: RepoId, query: dict[str, list[str]]) -> None:
        refs = self.store.refs(repo)

        def items(kind: str, prefix: str) -> list[dict]:
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": o} for n, o in sorted(refs[kind].items())]

        body = {"branches": items("heads", "refs/heads/"), "converts": [], "tags": items("tags", "refs/tags/")}
        if query.get("include_prs"):
            body["pullRequests"] = items("prs", "refs/pr/")
        raise RouteReply(200, body)

    def _ref_change(self, method: str, repo: RepoId, action: str, name: str) -> None:
        kind = "heads" if action == "branch" else "tags"
        if method == "DELETE":
            self.store.delete_ref(repo, kind, name)
        elif action == "branch":
            self.store.create_ref(repo, kind, name, self._json().get("startingPoint"))
        else:  # POST tag/{revision} with {"tag": name}
            body = self._json()
            self.store.create_ref(repo, kind, str(body.get("tag") or ""), name)
        raise RouteReply(200, {})

    def _commits(self, repo: RepoId, revision: str) -> None:
        commits = self.store.history(repo, revision)
        body = [
            {
                "id": commit["id"],
                "title": commit["title"],
                "message": commit["message"],
                "date": commit["date"],
                "authors": [{"user": commit.get("author", USER_NAME)}],
            }
            for commit in commits
        ]
        raise RouteReply(200, body)

    # ------------------------------------------------------------------ files
    def _tree(self, repo: RepoId, revision: str, base: str, query: dict[str, list[str]]) -> None:
        oid, tree = self.store.tree(repo, revision)
        recursive = (query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        expand = (query.get("expand") or ["false"])[0].lower() in ("1", "true")
        folders = _folder_oids(tree)
        base = base.strip("/")
        if base and base not in folders:
            raise EntryNotFound(f"{base} is not a folder at {revision}.", repo_commit=oid)
        prefix = f"{base}/" if base else ""

        def wanted(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        items = [{"type": "directory", "oid": o, "size": 0, "path": p} for p, o in sorted(folders.items()) if wanted(p)]
        items += [_file_item(path, entry) for path, entry in sorted(tree.items()) if wanted(path)]
        if expand:
            _add_last_commits(self.store, repo, oid, items)
        raise RouteReply(200, items)

    def _paths_info(self, repo: RepoId, revision: str, query: dict[str, list[str]]) -> None:
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            body = self._json()
            paths, expand = body.get("paths") or [], bool(body.get("expand"))
        else:
            form = parse_qs(self._body().decode())
            paths = form.get("paths", [])
            expand = (form.get("expand") or ["false"])[0].lower() in ("1", "true")
        if isinstance(paths, str):
            paths = [paths]
        oid, tree = self.store.tree(repo, revision)
        folders = _folder_oids(tree)
        items = []
        for raw in paths:
            path = str(raw).strip("/")
            if path in tree:
                items.append(_file_item(path, tree[path]))
            elif path in folders:
                items.append({"type": "directory", "oid": folders[path], "size": 0, "path": path})
        if expand:
            _add_last_commits(self.store, repo, oid, items)
        raise RouteReply(200, items)

    def _preupload(self, repo: RepoId, revision: str, query: dict[str, list[str]]) -> None:
        body = self._json()
        _, tree = self.store.tree(repo, revision)
        answers = []
        for item in body.get("files") or []:
            path = str(item.get("path", ""))
            try:
                sample = base64.b64decode(item.get("sample") or "")
            except ValueError:
                raise BadRequest(f"Invalid base64 sample for {path}.") from None
            mode = upload_mode(path, sample, int(item.get("size") or 0))
            answer: dict[str, Any] = {"path": path, "uploadMode": mode, "shouldIgnore": False}
            remote = tree.get(path.strip("/"))
            if remote is not None:
                answer["oid"] = remote["sha256"] if mode == "lfs" and remote["lfs"] else remote["oid"]
            answers.append(answer)
        raise RouteReply(200, {"files": answers, "commitOid": self.store.resolve(repo, revision)})

    def _commit(self, repo: RepoId, revision: str, query: dict[str, list[str]]) -> None:
        header: dict | None = None
        operations: list[tuple[str, dict]] = []
        for line in self._body().splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError):
                raise BadRequest("Commit payload must be NDJSON lines of {key, value}.") from None
            if key == "header":
                header = value
            else:
                operations.append((key, value))
        if header is None:
            raise BadRequest("Commit payload has no header line.")
        create_pr = (query.get("create_pr") or ["0"])[0] in ("1", "true", "True")
        oid, pr_num = self.store.apply_commit(repo, revision, header, operations, create_pr=create_pr)
        repo_url = f"{self.endpoint}/{repo.url_prefix}{repo.id}"
        raise RouteReply(
            200,
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{repo_url}/commit/{oid}",
                "hookOutput": "",
                "pullRequestUrl": f"{repo_url}/discussions/{pr_num}" if pr_num else None,
            },
        )

    def _resolve(self, method: str, repo: RepoId, revision: str, path: str) -> None:
        oid, tree = self.store.tree(repo, revision)
        entry = tree.get(path)
        if entry is None:
            raise EntryNotFound(f"Entry not found: {path} at {revision}.", repo_commit=oid)
        size = entry["size"]
        etag = entry["sha256"] if entry["lfs"] else entry["oid"]
        headers = {
            "X-Repo-Commit": oid,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(size)})
        status, start, length = 200, 0, size
        wanted = self.headers.get("Range")
        if wanted and size > 0:
            span = _parse_range(wanted, size)
            if span is None:
                headers["Content-Range"] = f"bytes */{size}"
                raise RouteReply(416, {"error": f"Range not satisfiable: {wanted}"}, headers)
            start, end = span
            status, length = 206, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if method == "GET" and length:
            with self.store.open_object(entry["sha256"]) as handle:
                self.connection.sendfile(handle, start, length)
        raise _Sent()

    def _lfs_batch(self, repo: RepoId) -> None:
        body = self._json()
        self.store.meta(repo)
        if body.get("operation", "upload") != "upload":
            raise BadRequest("LocalHub's LFS batch API only handles uploads; download through /resolve/.")
        objects = []
        for item in body.get("objects") or []:
            oid, size = str(item.get("oid", "")), int(item.get("size") or 0)
            answer: dict[str, Any] = {"oid": oid, "size": size}
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                answer["error"] = {"code": 422, "message": "oid must be a sha256 in lowercase hex"}
            elif not self.store.has_object(oid):
                href = f"{self.endpoint}/localhub/lfs/{oid}"
                answer.update(authenticated=True, actions={"upload": {"href": href, "expires_in": 3600}})
            objects.append(answer)
        content_type = {"Content-Type": "application/vnd.git-lfs+json"}
        raise RouteReply(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, content_type)

    def _validate_yaml(self) -> None:
        import yaml

        header = _front_matter(str(self._json().get("content") or ""))
        error = None
        if header is not None:
            try:
                if not isinstance(yaml.safe_load(header) or {}, dict):
                    error = "The YAML header of README.md must be a mapping."
            except yaml.YAMLError as err:
                error = f"Invalid YAML in README.md header: {err}"
        if error:
            raise RouteReply(400, {"errors": [{"message": error}], "error": error})
        raise RouteReply(200, {"warnings": []})


def _add_last_commits(store: HubStore, repo: RepoId, oid: str, items: list[dict]) -> None:
    last = _last_commits(store, repo, oid, [item["path"] for item in items])
    for item in items:
        if item["path"] in last:
            item["lastCommit"] = last[item["path"]]


def _sibling(path: str, entry: dict) -> dict:
    sibling: dict[str, Any] = {"rfilename": path, "size": entry["size"], "blobId": entry["oid"]}
    if entry["lfs"]:
        sibling["lfs"] = {
            "size": entry["size"],
            "sha256": entry["sha256"],
            "pointerSize": len(lfs_pointer(entry["sha256"], entry["size"])),
        }
    return sibling


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte of a single ``bytes=`` range, or None when unsatisfiable."""
    match = _RANGE_RE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    if match.group(1) == "":
        start, end = max(0, size - int(match.group(2))), size - 1
    else:
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    return (start, end) if start <= end and start < size else None


def _parse_repo_id(repo_type: str, value: str) -> RepoId:
    namespace, _, name = value.rpartition("/")
    if not name:
        raise BadRequest(f"Invalid repo id {value!r}.")
    return RepoId(repo_type, namespace or USER_NAME, name).validate()

