"""Concurrent, retrying requests to an endpoint: at most N in flight, each answer handed over as it arrives.

A ``Dispatcher`` owns an asyncio loop on a background thread (so that it also works under a caller's own
running loop, e.g. a notebook) and sends one request per input, ``concurrency`` at a time over all its calls, in
input order. ``stream`` hands the answers over as they arrive (in groups of those that came together), so that
the caller records each one at once; ``run`` collects them in input order. ``submit`` starts a call without
waiting for it, so that a caller keeps the endpoint busy with its next batch while it reads the answers of the
last one: the answers of every submitted call come out of ``next_group``. Inputs that are expensive to make
(``LazyItems``, e.g. perturbed images) are made in a worker thread, in order and a few at a time, each request
leaving as soon as its input is ready, so that making the inputs of a batch overlaps the requests in flight. ``--request-timeout`` is a deadline for the
whole answer, body included. Answers the endpoint may give later are retried: HTTP 429 and 5xx, time-outs and
dropped connections, after the server's ``Retry-After`` when it sends one (and every request then waits that
long, since a rate limit holds for the whole client), else after an exponential back-off. When a request still
fails after ``max_retries`` retries, or fails in a way retrying cannot fix (401, 404, 422, an answer that is
not one, ...), no new request is sent, those in flight are answered (and handed over), and the call stops
with one ``EndpointFailed``. A first Ctrl-C (SIGINT) stops the same way: what is in flight is answered and
handed over before ``KeyboardInterrupt`` is raised, so that no request the server answered is lost; a second
Ctrl-C stops at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import queue
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from fade_hub.errors import EndpointFailed, FadeHubError
from fade_hub.interrupts import first_interrupt_stops
from fade_hub.targets.endpoint import HF_AUTH_ADVICE

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
MAX_RETRY_AFTER_S = 300.0


@dataclass
class Usage:
    """What the endpoint was asked for and reported: answered requests, retries, tokens and images."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0

    def add(self, **counts: int | None) -> None:
        """Add the counts a response reported (None: not reported)."""
        for name, value in counts.items():
            if value:
                setattr(self, name, getattr(self, name) + int(value))

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Failure:
    """How one failed attempt is handled: retried (after ``wait`` seconds, or a back-off) or fatal."""

    reason: str
    retry: bool
    wait: float | None = None


class _Stop(Exception):
    """Internal: a request that cannot be answered; stops the whole call (its message is the user's line)."""


class _Halted(Exception):
    """Internal: a request left unsent (or not retried) because the call is stopping."""


def retry_after_seconds(headers: Any) -> float | None:
    """The ``Retry-After`` header in seconds (delay-seconds or an HTTP date), or None."""
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def classify(err: BaseException, timeout: float, auth_advice: str = HF_AUTH_ADVICE) -> _Failure:
    """Whether a failed request is worth retrying, and why it failed (one line, no URL or secret)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return _Failure("HF_HUB_OFFLINE is set, so huggingface_hub sends no request; unset it", retry=False)
    if isinstance(err, InferenceTimeoutError | httpx2.TimeoutException | TimeoutError):
        return _Failure(f"no answer within {timeout:g} s", retry=True)
    if isinstance(err, httpx2.TransportError):
        return _Failure(f"connection failed ({type(err).__name__})", retry=True)
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        if status in RETRY_STATUSES:
            return _Failure(f"HTTP {status}", retry=True, wait=retry_after_seconds(err.response.headers))
        detail = (getattr(err, "server_message", None) or "").strip().splitlines()
        detail_text = f": {detail[0][:200]}" if detail else ""
        if status in (401, 403):
            return _Failure(f"HTTP {status}: refused the credentials; {auth_advice}{detail_text}", False)
        if status == 404:
            return _Failure("HTTP 404: no such route; check --endpoint, --task and --generation-route", False)
        return _Failure(f"HTTP {status}{detail_text}", retry=False)
    if isinstance(err, FadeHubError):  # an answer fade-hub cannot use; its message says so in full
        raise _Stop(str(err)) from None
    if isinstance(err, ValueError):  # huggingface_hub refusing to build the request
        return _Failure(str(err).splitlines()[0] if str(err) else type(err).__name__, retry=False)
    raise err


class LazyItems(Sequence):
    """A sequence whose items are made on first access (``make(index)``); the dispatcher makes them in its worker
    thread, in order, while earlier requests are in flight. Each item is made once."""

    def __init__(self, count: int, make: Callable[[int], Any]) -> None:
        self._make, self._items, self._made = make, [None] * count, [False] * count

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        if not self._made[index]:
            self._items[index] = self._make(index)
            self._made[index] = True
        return self._items[index]


class _Outbox:
    """Where answers go: a thread-safe queue of lists of ``(call, index, answer)``. The loop hands over the answers
    that came in one turn as one list, so that the reading thread wakes (and takes the GIL) once per group, not once
    per answer."""

    def __init__(self) -> None:
        self.arrivals: queue.SimpleQueue = queue.SimpleQueue()
        self.pending: list[tuple[Any, Any, Any]] = []

    def put(self, entry: tuple[Any, Any, Any]) -> None:
        """Queue one answer for the end of this turn of the loop (called on the loop)."""
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending.append(entry)

    def flush(self) -> None:
        """Hand the queued answers over now (called on the loop)."""
        if self.pending:
            entries, self.pending = self.pending, []
            self.arrivals.put(entries)

    def take(self) -> list[tuple[Any, Any, Any]]:
        """Every entry handed over so far, at least one (waits for it)."""
        entries = self.arrivals.get()  # a fresh list from ``flush``: ours to extend
        while not self.arrivals.empty():
            entries.extend(self.arrivals.get())
        return entries


class _Call:
    """One call: where its answers go (an ``_Outbox``) and whether it is stopping."""

    def __init__(self, outbox: _Outbox) -> None:
        self.outbox = outbox
        self.future: Any = None  # the call's coroutine on the loop (concurrent.futures.Future)
        self.stopping = False  # no new request, no retry: set on the loop, or by Ctrl-C in the caller's thread
        self.halted: asyncio.Event | None = None  # set with ``stopping``, wakes the waits between attempts

    def halt(self) -> None:
        """Send nothing more (called on the dispatcher's loop)."""
        self.stopping = True
        if self.halted is not None:
            self.halted.set()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the call stops meanwhile."""
        try:
            await asyncio.wait_for(self.halted.wait(), seconds)
        except TimeoutError:
            pass


_DONE = object()  # the last item of a call's arrivals


class Dispatcher:
    """Runs ``ask(item)`` for every item, ``concurrency`` at a time, with retries; see the module docstring."""

    def __init__(
        self, ask: Callable[[Any], Awaitable[Any]], *, where: str, concurrency: int, max_retries: int, timeout: float,
        auth_advice: str = HF_AUTH_ADVICE,
    ) -> None:  # fmt: skip
        self.ask, self.where, self.auth_advice = ask, where, auth_advice
        self.concurrency, self.max_retries, self.timeout = concurrency, max_retries, timeout
        self.usage = Usage()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._workers: ThreadPoolExecutor | None = None  # makes LazyItems
        self._slots: asyncio.Semaphore | None = None  # ``concurrency`` requests in flight over all calls
        self._paused_until = 0.0
        self._shared = _Outbox()  # answers of submitted calls
        self._active: list[_Call] = []  # submitted calls not finished, in submission order
        self._error: BaseException | None = None  # why a submitted call stopped, raised once all are answered

    def run(self, items: Sequence[Any], ask: Callable[[Any], Awaitable[Any]] | None = None) -> list[Any]:
        """The answers to ``items`` in order (by ``ask``, default the dispatcher's); EndpointFailed when it must stop."""
        answers: list[Any] = [None] * len(items)
        for group in self.stream(items, ask):
            for index, answer in group:
                answers[index] = answer
        return answers

    def stream(
        self, items: Sequence[Any], ask: Callable[[Any], Awaitable[Any]] | None = None
    ) -> Iterator[list[tuple[int, Any]]]:
        """The answers to ``items`` as they arrive: groups of ``(index, answer)``; EndpointFailed when it must stop.

        A first Ctrl-C while the call runs (in the main thread) sends no new request and still hands over the
        answers of those in flight, then raises ``KeyboardInterrupt``; a second one raises it at once.
        """
        if not len(items):
            return
        call = self._start(items, ask, _Outbox())
        loop = self._loop
        try:
            with first_interrupt_stops(lambda: loop.call_soon_threadsafe(call.halt)) as interrupted:
                finished = False
                while not finished:
                    entries = call.outbox.take()
                    finished = any(index is _DONE for _, index, _ in entries)
                    group = [(index, answer) for _, index, answer in entries if index is not _DONE]
                    if group:
                        yield group
                call.future.result()  # EndpointFailed when a request stopped the call
            if interrupted:
                raise KeyboardInterrupt
        finally:
            if not call.future.done():  # the caller stopped reading, or a second Ctrl-C: abandon what is in flight
                call.future.cancel()

    def submit(self, items: Sequence[Any], ask: Callable[[Any], Awaitable[Any]] | None = None) -> _Call:
        """Start asking ``items`` without waiting; their answers come out of ``next_group``."""
        call = self._start(items, ask, self._shared)
        self._active.append(call)
        return call

    def next_group(self) -> list[tuple[_Call, int, Any]]:
        """Answers of submitted calls as they arrive: ``(call, index, answer)``, at least one (waits for it); []
        once no call is left. When a request stops its call, the other calls send nothing new either, and its
        EndpointFailed is raised once every request in flight has been answered and handed over."""
        while self._active:
            entries = self._shared.take()
            group = []
            for call, index, answer in entries:
                if index is not _DONE:
                    group.append((call, index, answer))
                    continue
                self._active.remove(call)
                error = None if answer.cancelled() else answer.exception()
                if error is not None and self._error is None:
                    self._error = error
                    self.halt_all()
            if group:
                return group
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return []

    def halt_all(self) -> None:
        """Send nothing more for any submitted call (the requests in flight are still answered)."""
        if self._loop is not None:
            for call in self._active:
                self._loop.call_soon_threadsafe(call.halt)

    @contextmanager
    def interruptible(self) -> Iterator[list[bool]]:
        """While reading ``next_group`` in the block, a first Ctrl-C halts every submitted call (noted in the yielded
        flag) so that the answers in flight still come out; a second one raises ``KeyboardInterrupt`` at once."""
        with first_interrupt_stops(self.halt_all) as interrupted:
            yield interrupted

    def _start(self, items: Sequence[Any], ask: Callable[[Any], Awaitable[Any]] | None, outbox: _Outbox) -> _Call:
        """Schedule a call on the loop; its answers, then ``(call, _DONE, future)``, go to ``outbox``."""
        call, loop = _Call(outbox), self._ensure_loop()
        items = items if isinstance(items, LazyItems) else list(items)
        call.future = asyncio.run_coroutine_threadsafe(self._run_all(items, ask or self.ask, call), loop)
        call.future.add_done_callback(lambda future: outbox.arrivals.put([(call, _DONE, future)]))
        return call

    def call(self, coroutine: Awaitable[Any]) -> Any:
        """Run one coroutine on the dispatcher's loop (e.g. closing the client) and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure_loop()).result()

    def close(self) -> None:
        """Stop the background loop and the worker thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._loop = self._thread = self._slots = None
        if self._workers is not None:
            self._workers.shutdown(wait=True)
            self._workers = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="fade-hub-endpoint", daemon=True)
            self._thread.start()
        return self._loop

    async def _run_all(self, items: Sequence[Any], ask: Callable[[Any], Awaitable[Any]], call: _Call) -> None:
        call.halted = asyncio.Event()
        if call.stopping:
            call.halted.set()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)  # FIFO: requests leave in input order
        slots = self._slots
        stops: list[_Stop] = []
        loop = asyncio.get_running_loop()
        ready = [loop.create_future() for _ in range(len(items))]

        async def make() -> None:
            """Make the inputs in order, a few at a time in the worker thread (plain items are ready at once)."""
            start, chunk = 0, 1
            while start < len(items) and not call.stopping:
                end = min(len(items), start + chunk)
                if isinstance(items, LazyItems):
                    made = await loop.run_in_executor(self._worker_pool(), _make, items, start, end)
                else:
                    made = [items[i] for i in range(start, end)]
                for index, item in zip(range(start, end), made):
                    ready[index].set_result(item)
                start, chunk = end, min(2 * chunk, self.concurrency)
            for future in ready[start:]:  # halted: the rest is never asked
                future.cancel()

        async def one(index: int) -> None:
            try:
                item = await ready[index]
            except asyncio.CancelledError:
                if call.stopping:
                    return
                raise
            async with slots:
                try:
                    answer = await self._attempts(item, ask, call)
                except _Halted:
                    return
                except _Stop as stop:
                    stops.append(stop)
                    call.halt()  # the requests in flight are still answered and handed over
                    return
            call.outbox.put((call, index, answer))

        tasks = [asyncio.ensure_future(make())] + [asyncio.ensure_future(one(i)) for i in range(len(items))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            await _cancel(tasks)
            raise
        finally:
            call.outbox.flush()  # every answer is handed over before the call's end is
        if stops:
            raise EndpointFailed(str(stops[0]))

    def _worker_pool(self) -> ThreadPoolExecutor:
        if self._workers is None:
            self._workers = ThreadPoolExecutor(1, thread_name_prefix="fade-hub-inputs")
        return self._workers

    async def _attempts(self, item: Any, ask: Callable[[Any], Awaitable[Any]], call: _Call) -> Any:
        retries = 0
        while True:
            await self._respect_pause(call)
            if call.stopping:
                raise _Halted
            try:
                answer = await _within(ask(item), self.timeout)  # a deadline for the whole answer
            except Exception as err:  # noqa: BLE001 - classify() re-raises what it does not know
                failure = classify(err, self.timeout, self.auth_advice)
            else:
                self.usage.add(requests=1)
                return answer
            if not failure.retry:
                raise _Stop(f"{self.where} failed: {failure.reason}")
            if retries >= self.max_retries:
                plural = "y" if retries == 1 else "ies"
                raise _Stop(f"{self.where} kept failing ({failure.reason}) after {retries} retr{plural}")
            if failure.wait is not None and failure.wait > MAX_RETRY_AFTER_S:
                raise _Stop(f"{self.where} asks to retry after {failure.wait:.0f} s ({failure.reason}); try later")
            if call.stopping:
                raise _Halted
            retries += 1
            self.usage.add(retries=1)
            wait = failure.wait if failure.wait is not None else min(BACKOFF_BASE_S * 2 ** (retries - 1), BACKOFF_CAP_S)
            if failure.wait is not None:
                self._paused_until = max(self._paused_until, time.monotonic() + wait)
            logger.info("%s: %s; retry %d/%d in %.1f s", self.where, failure.reason, retries, self.max_retries, wait)
            await call.sleep(wait)

    async def _respect_pause(self, call: _Call) -> None:
        delay = self._paused_until - time.monotonic()
        if delay > 0:
            await call.sleep(delay)


async def _within(answer: Awaitable[Any], seconds: float) -> Any:
    """``answer`` awaited, TimeoutError after ``seconds``: ``asyncio.timeout`` where there is one (Python 3.11+), which
    spares ``wait_for``'s extra task per request."""
    if sys.version_info < (3, 11):
        return await asyncio.wait_for(answer, seconds)
    async with asyncio.timeout(seconds):
        return await answer


def _make(items: LazyItems, start: int, end: int) -> list[Any]:
    """Items ``start`` to ``end`` of a lazy sequence, made in order (runs in the worker thread)."""
    return [items[i] for i in range(start, end)]


async def _cancel(tasks: list[asyncio.Future]) -> None:
    """Cancel every unfinished task and wait until they are all done."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
