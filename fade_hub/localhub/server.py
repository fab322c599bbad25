"""LocalHub: a Hugging Face Hub-compatible HTTP server over a folder, for offline demos and tests.

Point the unmodified clients at it with ``HF_ENDPOINT=http://127.0.0.1:PORT`` and
``HF_HUB_DISABLE_XET=1`` (set both before importing huggingface_hub or datasets)::

    with LocalHub(Path("hub-data")) as hub:
        os.environ["HF_ENDPOINT"] = hub.endpoint
        ...

Any token is accepted; every repo belongs to ``local-user`` unless an organization is named.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import TracebackType

from .http import HubServer

logger = logging.getLogger("fade_hub.localhub")


class LocalHub:
    """Serve the repos stored under ``root`` over HTTP; restartable on the same root and port."""

    def __init__(self, root: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.root = Path(root)
        self.host = host
        self.port = port or 0
        self._server: HubServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The base URL clients use: ``http://HOST:PORT`` (``127.0.0.1`` when bound to all interfaces)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None

    def start(self) -> "LocalHub":
        """Bind the port (a free one when ``port`` was None) and serve in a background thread."""
        if self._server is not None:
            return self
        self._server = HubServer((self.host, self.port), self.root)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"localhub-{self.port}", daemon=True
        )
        self._thread.start()
        logger.info("LocalHub serving %s at %s", self.root, self.endpoint)
        return self

    def stop(self) -> None:
        """Stop serving and close open connections; the data stays under ``root``."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server, self._thread = None, None
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        server.store.close()
        logger.info("LocalHub at port %d stopped", self.port)

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalHub(root={str(self.root)!r}, endpoint={self.endpoint!r}, {state})"
