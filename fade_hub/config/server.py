"""Where a server fade-hub starts listens (``ServeOptions``): a section of ``localhub serve`` and of ``space serve``
(the review app), each with its own wording; the app takes no port 0."""

from __future__ import annotations

from dataclasses import dataclass

from fade_hub.options import option


@dataclass
class ServeOptions:
    """Where a server listens (the port is range-checked before anything starts)."""

    host: str = option("127.0.0.1", help="Interface to listen on (this machine only by default).")
    port: int | None = option(None, low=0, high=65535,
                              help="TCP port to listen on (default: a free port, printed at start; 0 = any free port).")
