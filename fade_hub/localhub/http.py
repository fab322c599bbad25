"""HTTP routes of LocalHub: the subset of the Hugging Face Hub API that huggingface_hub, datasets,
transformers, peft, diffusers and gradio use, answered from a :class:`HubStore`.

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and a JSON
``{"error": ...}`` body so that the clients raise their typed errors. Requests are logged at debug
level, method and path only: headers (and so the ``Authorization`` token) are never logged.
"""
from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from .base import DEFAULT_BRANCH, REPO_TYPES, USER_NAME, BadRequest, HubError, RepoId
from .routes import RepoRoutes, RouteReply, _Sent
from .store import HubStore

logger = logging.getLogger("fade_hub.localhub")

_CHUNK = 1 << 20
_TYPE_PREFIXES = {f"{repo_type}s": repo_type for repo_type in REPO_TYPES if repo_type != "model"}


class HubServer(ThreadingHTTPServer):
    """A threading HTTP server that serves one HubStore and can drop its open connections on stop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], root: Path) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, HubRequestHandler)  # binds first: a port in use leaves ``root`` untouched
        try:
            self.store = HubStore(root)
        except BaseException:
            self.server_close()
            raise

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """Remember the connection, then serve it in a thread."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        """Forget the connection and close it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open (keep-alive) connection so that clients see the server go away."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HubRequestHandler(RepoRoutes, BaseHTTPRequestHandler):
    """Routes one HTTP request to the store."""

    protocol_version = "HTTP/1.1"
    server_version = "LocalHub"
    timeout = 120
    server: HubServer

    # ------------------------------------------------------------------ plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Log through ``logging`` at debug level (request line and status only, never headers)."""
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        """Dispatch GET."""
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        """Dispatch HEAD."""
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        """Dispatch POST."""
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        """Dispatch PUT."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        """Dispatch DELETE."""
        self._dispatch("DELETE")

    @property
    def store(self) -> HubStore:
        """The store this server answers from."""
        return self.server.store

    @property
    def endpoint(self) -> str:
        """The base URL the client used to reach us (from the Host header)."""
        host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
        return f"http://{host}"

    def _dispatch(self, method: str) -> None:
        self._body_done = False
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.split("/")[1:]]
        query = parse_qs(url.query)
        try:
            self._route(method, parts, query)
            raise RouteReply(404, {"error": f"LocalHub does not serve {method} {url.path}"})
        except _Sent:
            pass
        except RouteReply as answer:
            if answer.status == 404 and "X-Error-Code" not in answer.headers:
                logger.info("unsupported route: %s %s", method, url.path)
            self._send_json(method, answer.status, answer.body, answer.headers)
        except HubError as err:
            headers = {"X-Error-Message": _header_safe(str(err))}
            if err.code:
                headers["X-Error-Code"] = err.code
            if err.repo_commit:
                headers["X-Repo-Commit"] = err.repo_commit
            self._send_json(method, err.status, {"error": str(err)}, headers)
        except (ConnectionError, socket.timeout):
            self.close_connection = True
        except Exception:  # a bug: answer 500 rather than dropping the connection
            logger.exception("LocalHub failed on %s %s", method, url.path)
            self._send_json(method, 500, {"error": "LocalHub internal error (see its log)."}, {})
        has_body = int(self.headers.get("Content-Length") or 0) > 0 or "chunked" in self.headers.get(
            "Transfer-Encoding", ""
        ).lower()
        if has_body and not self._body_done:  # unread request bytes would corrupt the next request
            self.close_connection = True

    def _send_json(self, method: str, status: int, body: Any, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        content_type = headers.pop("Content-Type", "application/json")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def _body_chunks(self) -> Iterator[bytes]:
        """The request body, chunk by chunk (Content-Length or chunked transfer encoding)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest("Malformed chunked request body.") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                yield from self._read_exact(size)
                self.rfile.readline(1024)
        else:
            yield from self._read_exact(int(self.headers.get("Content-Length") or 0))
        self._body_done = True

    def _read_exact(self, size: int) -> Iterator[bytes]:
        while size > 0:
            chunk = self.rfile.read(min(size, _CHUNK))
            if not chunk:
                raise ConnectionError("client closed the connection mid-body")
            size -= len(chunk)
            yield chunk

    def _body(self) -> bytes:
        return b"".join(self._body_chunks())

    def _json(self) -> dict:
        raw = self._body()
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            raise BadRequest("Request body is not valid JSON.") from None
        if not isinstance(value, dict):
            raise BadRequest("Request body must be a JSON object.")
        return value

    # ------------------------------------------------------------------ routing
    def _route(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        if parts == [""] and method in ("GET", "HEAD"):
            raise RouteReply(200, {"localhub": True})
        if parts[:1] == ["localhub"] and parts[1:2] == ["lfs"] and len(parts) == 3 and method == "PUT":
            self.store.put_stream(self._body_chunks(), parts[2])
            raise RouteReply(200, {})
        if parts[:1] == ["api"]:
            self._route_api(method, parts[1:], query)
            return
        repo_type = "model"
        if parts and parts[0] in _TYPE_PREFIXES:
            repo_type, parts = _TYPE_PREFIXES[parts[0]], parts[1:]
        if len(parts) >= 3 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            if method == "POST":
                self._lfs_batch(RepoId(repo_type, parts[0], parts[1][: -len(".git")]).validate())
        elif len(parts) >= 5 and parts[2] in ("resolve", "raw") and method in ("GET", "HEAD"):
            revision, path = _split_revision(parts[3:])
            self._resolve(method, RepoId(repo_type, parts[0], parts[1]).validate(), revision, "/".join(path))

    def _route_api(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        if parts == ["whoami-v2"] and method == "GET":
            raise RouteReply(200, _whoami())
        if parts == ["agent-harnesses"] and method == "GET":  # huggingface_hub's agent detection registry
            raise RouteReply(200, {"standardEnvVars": [], "harnesses": {}})
        if parts == ["validate-yaml"] and method == "POST":
            self._validate_yaml()
        if parts[:1] == ["repos"] and len(parts) == 2:
            self._route_repos(method, parts[1])
        if not parts or not parts[0].endswith("s") or parts[0][:-1] not in REPO_TYPES:
            return
        repo_type = parts[0][:-1]
        if len(parts) == 1 and method == "GET":
            self._list_repos(repo_type, query)
        if len(parts) < 3:
            return
        repo, action, rest = RepoId(repo_type, parts[1], parts[2]).validate(), (parts[3:4] or [""])[0], parts[4:]
        if method == "GET" and action == "":
            raise RouteReply(200, self._repo_info(repo, DEFAULT_BRANCH, siblings=True))
        if method == "GET" and action == "revision" and rest:
            raise RouteReply(200, self._repo_info(repo, "/".join(rest), siblings=True))
        if method == "GET" and action == "tree" and rest:
            self._tree(repo, rest[0], "/".join(rest[1:]), query)
        if method == "POST" and action in ("paths-info", "preupload", "commit") and len(rest) == 1:
            handler = {"paths-info": self._paths_info, "preupload": self._preupload, "commit": self._commit}[action]
            handler(repo, rest[0], query)
        if method == "GET" and action == "commits" and len(rest) == 1:
            self._commits(repo, rest[0])
        if method == "POST" and action == "super-squash" and len(rest) == 1:
            self.store.squash(repo, rest[0], str(self._json().get("message") or "squash"))
            raise RouteReply(200, {})
        if method == "GET" and action == "refs" and not rest:
            self._refs(repo, query)
        if action in ("branch", "tag") and len(rest) == 1 and method in ("POST", "DELETE"):
            self._ref_change(method, repo, action, rest[0])
        if action == "settings" and not rest and method in ("PUT", "POST"):
            self._settings(repo)
        if repo.type == "space" and action in ("variables", "secrets") and not rest:
            self._space_config(method, repo, action)

def _split_revision(parts: list[str]) -> tuple[str, list[str]]:
    """Split ``{revision}/{path…}`` where an unencoded ``refs/pr/1``-like revision spans three parts."""
    if parts[0] == "refs" and len(parts) > 3 and parts[1] in ("heads", "tags", "pr", "convert"):
        return "/".join(parts[:3]), parts[3:]
    return parts[0], parts[1:]


def _header_safe(text: str) -> str:
    return text.encode("latin-1", errors="replace").decode("latin-1").replace("\r", " ").replace("\n", " ")[:500]


def _whoami() -> dict:
    return {
        "type": "user",
        "id": hashlib.sha1(USER_NAME.encode()).hexdigest()[:24],
        "name": USER_NAME,
        "fullname": "LocalHub user",
        "email": None,
        "emailVerified": True,
        "isPro": False,
        "canPay": False,
        "avatarUrl": "",
        "orgs": [],
        "auth": {"type": "access_token", "accessToken": {"displayName": "localhub", "role": "write"}},
    }

