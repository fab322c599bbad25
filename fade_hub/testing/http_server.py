"""A small asyncio HTTP/1.1 server on a background thread, with scripted faults, for endpoint tests and benchmarks.

Keep-alive connections, ``Content-Length`` or chunked request bodies, one handler coroutine for every
request. ``Faults`` make POST requests misbehave by their arrival number (1, 2, ...): rate limits (429),
unavailability (503 with ``Retry-After``), slow answers, dropped connections, a body sent one byte at a time,
or failing for good from some request on. ``stats`` counts requests, answers, faults and the most requests in
flight at once, and keeps the headers of every request.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""  # the URL's query string, without the ``?``

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """One HTTP response to send."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    trickle_s: float = 0.0  # > 0: the head at once, then the body one byte every this many seconds

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Response:
        """A JSON response."""
        return cls(status, json.dumps(payload).encode(), headers=dict(headers))


Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Faults:
    """Which POST requests misbehave, by arrival number: every n-th one of a kind (0 = never)."""

    rate_limit_every: int = 0  # 429, with Retry-After only when rate_limit_retry_after is set
    unavailable_every: int = 0  # 503 with Retry-After: retry_after
    slow_every: int = 0  # answered after slow_s seconds
    drop_every: int = 0  # connection closed without an answer
    fail_from: int | None = None  # from this request on, every one gets 503 (no Retry-After)
    retry_after: int = 1
    rate_limit_retry_after: int | None = None
    slow_s: float = 1.0

    def pick(self, number: int) -> str | None:
        """The fault of request ``number``, if any."""
        if self.fail_from is not None and number >= self.fail_from:
            return "down"
        for kind, every in (("drop", self.drop_every), ("rate_limit", self.rate_limit_every),
                            ("unavailable", self.unavailable_every), ("slow", self.slow_every)):  # fmt: skip
            if every and number % every == 0:
                return kind
        return None


@dataclass
class Stats:
    """What the server saw."""

    requests: int = 0
    answered: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_seen: list[int] = field(default_factory=list)  # requests in flight as each POST arrived (itself too)
    faults: Counter = field(default_factory=Counter)
    bodies: list[Any] = field(default_factory=list)  # JSON bodies of the answered POST requests, in order
    authorized: int = 0  # POST requests that carried an Authorization header
    headers: list[dict[str, str]] = field(default_factory=list)  # the headers of every request (GET too), in order


class HTTPServerThread:
    """Serve ``handler`` on 127.0.0.1 from a background thread; use as a context manager.

    With ``token``, POST requests without ``Authorization: Bearer <token>`` get 401.
    """

    def __init__(self, handler: Handler, faults: Faults | None = None, port: int = 0, token: str | None = None) -> None:
        self.handler, self.faults, self.port, self.token = handler, faults or Faults(), port, token
        self.stats = Stats()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fade-hub-test-http", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HTTPServerThread:
        """Start listening; returns self."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", self.port, backlog=1024), self._loop
        )
        self._server = future.result(timeout=30)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop listening, drop open connections, end the thread and close the handler (when it has ``close``)."""
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=30)
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if callable(getattr(self.handler, "close", None)):
            self.handler.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> HTTPServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                response = await self._respond(request)
                if response is None:  # a dropped connection
                    writer.transport.abort()
                    return
                if response.trickle_s > 0:
                    await _trickle(writer, response)
                else:
                    writer.write(_encode(response))
                await writer.drain()
                if request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:  # shutting down: end quietly (the stream's callback logs cancelled tasks)
            pass
        finally:
            writer.close()

    async def _respond(self, request: Request) -> Response | None:
        self.stats.headers.append(dict(request.headers))
        if request.method != "POST":
            return await self.handler(request)
        stats = self.stats
        stats.requests += 1
        stats.authorized += "authorization" in request.headers
        if self.token is not None and request.headers.get("authorization") != f"Bearer {self.token}":
            return Response.json({"error": "Authorization header is correct, but the token seems invalid"}, status=401)
        number = stats.requests
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        stats.in_flight_seen.append(stats.in_flight)
        try:
            fault = self.faults.pick(number)
            if fault:
                stats.faults[fault] += 1
            if fault == "drop":
                return None
            if fault == "down":
                return Response.json({"error": "the model is down"}, status=503)
            if fault == "rate_limit":
                extra = {} if self.faults.rate_limit_retry_after is None else {"Retry-After": str(self.faults.rate_limit_retry_after)}
                return Response.json({"error": "rate limit reached"}, status=429, **extra)
            if fault == "unavailable":
                return Response.json({"error": "model is loading"}, status=503, **{"Retry-After": str(self.faults.retry_after)})
            if fault == "slow":
                await asyncio.sleep(self.faults.slow_s)
            response = await self.handler(request)
            if response.status == 200:
                stats.answered += 1
                if "json" in request.headers.get("content-type", ""):
                    stats.bodies.append(request.json())
            return response
        finally:
            stats.in_flight -= 1


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while (size := int((await reader.readline()).strip() or b"0", 16)) > 0:
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    path, _, query = target.partition("?")
    return Request(method, path, headers, body, query)


async def _trickle(writer: asyncio.StreamWriter, response: Response) -> None:
    """Send the head at once, then the body byte by byte (a server that keeps a client waiting)."""
    encoded = _encode(response)
    head = len(encoded) - len(response.body)
    writer.write(encoded[:head])
    await writer.drain()
    for index in range(head, len(encoded)):
        await asyncio.sleep(response.trickle_s)
        writer.write(encoded[index : index + 1])
        await writer.drain()


def _encode(response: Response) -> bytes:
    head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}",
            f"Content-Type: {response.content_type}", f"Content-Length: {len(response.body)}"]  # fmt: skip
    head += [f"{name}: {value}" for name, value in response.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
