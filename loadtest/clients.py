"""The asyncio side of the harness: timed requests (httpx) and notification streams
(httpx-sse) for sse_fanout.py and for rush.py's offer phase.

Thousands of SSE streams held open at once, each reacting to its own event (a claim
sent the moment an offer arrives), are what Locust and wrk do not do: they measure
request/response. So this part stays code, on maintained clients; what is left here is
the EventSource behaviour (reconnect after ``retry:``, resume with ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse
from stats import dist_ms, label

# Streams are spread over clients of this many connections each: httpx's pool scans its
# connections on every request, which costs seconds with thousands in one pool.
STREAMS_PER_CLIENT = 100
_STREAM_TIMEOUT = httpx.Timeout(
    30.0, read=None
)  # a stream waits for events for as long as it takes


@dataclass
class Response:
    status: int  # 0: the connection failed
    body: bytes
    latency: float
    sent_at: float  # time.time() just before the request was sent

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def label(self) -> str:
        """The status, with the error code when there is one: "409 seat_conflict"."""
        try:
            body = self.json if self.status >= 400 else None
        except ValueError:
            body = None
        return label(self.status, body)


class Client:
    """``connections`` keep-alive connections to one server (httpx); requests beyond
    them wait for a free one."""

    def __init__(self, base: str, connections: int) -> None:
        self.connections = connections
        self.http = httpx.AsyncClient(
            base_url=base,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=httpx.Timeout(60.0, pool=None),
        )

    async def warm(self) -> None:
        """Open every connection now (concurrent requests), so the measured ones don't."""
        await asyncio.gather(*(self.request("GET", "/health") for _ in range(self.connections)))

    async def request(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        sent_at = time.time()
        t0 = time.perf_counter()
        try:
            r = await self.http.request(method, path, headers=headers, json=body)
        except httpx.TransportError:
            return Response(0, b"", time.perf_counter() - t0, sent_at)
        return Response(r.status_code, r.content, time.perf_counter() - t0, sent_at)

    async def aclose(self) -> None:
        await self.http.aclose()


class StreamClients:
    """httpx clients for many streams: stream i goes to client i // STREAMS_PER_CLIENT."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._clients: list[httpx.AsyncClient] = []

    def get(self, i: int) -> httpx.AsyncClient:
        while len(self._clients) <= i // STREAMS_PER_CLIENT:
            self._clients.append(
                httpx.AsyncClient(
                    base_url=self.base,
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
                    timeout=_STREAM_TIMEOUT,
                )
            )
        return self._clients[i // STREAMS_PER_CLIENT]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients))


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: str
    arrived: float  # time.time() when it was read


class SseStream:
    """GET /notifications/stream for one user; events go to ``on_event``.

    With ``reconnect`` it behaves like a browser's EventSource: when the stream ends or
    breaks it reconnects after the server's ``retry:`` hint, sending ``Last-Event-ID``
    if it has seen an event id (``drops`` counts the breaks)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: str,
        on_event: Callable[[SseStream, SseEvent], None],
        *,
        key: int,
        path: str = "/notifications/stream",
        reconnect: bool = False,
    ) -> None:
        self.http, self.token, self.path = http, token, path
        self.on_event = on_event
        self.key = key
        self.reconnect = reconnect
        self.retry_s = 3.0
        self.last_id: str | None = None
        self.connected = asyncio.Event()
        self.closed = False
        self.error: str | None = None  # why the first connection failed
        self.ended: str | None = None  # why the stream ended for good, if it did
        self.drops: list[str] = []  # breaks that were followed by a reconnect
        self.events = 0
        self._bytes_before = 0  # read by earlier connections of this stream
        self._response: httpx.Response | None = None
        self.task: asyncio.Task[None] | None = None
        self.open_latency: float | None = None

    async def open(self) -> None:
        """Connect and wait for the server's opening block (``retry:``, ``id:``)."""
        self.connected = asyncio.Event()
        self.error = self.ended = None
        t0 = time.perf_counter()
        self.task = asyncio.create_task(self._run())
        await self.connected.wait()
        if self.error is not None:
            raise RuntimeError(self.error)
        self.open_latency = time.perf_counter() - t0

    async def _read_once(self) -> str:
        """One connection: read events until it ends; the reason it ended."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        try:
            async with aconnect_sse(self.http, "GET", self.path, headers=headers) as source:
                response = self._response = source.response
                if response.status_code != 200:
                    body = await response.aread()
                    raise RuntimeError(f"stream answered {response.status_code}: {body[:300]!r}")
                try:
                    async for sse in source.aiter_sse():
                        self._dispatch(sse.id, sse.event, sse.data, sse.retry)
                finally:
                    self._bytes_before += response.num_bytes_downloaded
                    self._response = None
            return "server ended the stream"
        except (httpx.TransportError, SSEError) as exc:
            return f"{type(exc).__name__}: {exc}"[:80]

    async def _run(self) -> None:
        try:
            while True:  # close() cancels this task
                try:
                    reason = await self._read_once()
                except RuntimeError as exc:
                    reason = str(exc)
                if self.closed:
                    return
                if not self.connected.is_set():
                    self.error = reason
                    return
                if not self.reconnect:
                    self.ended = reason
                    return
                self.drops.append(reason)
                await asyncio.sleep(self.retry_s)
        finally:
            self.connected.set()  # never leave open() hanging

    def bytes_read(self) -> int:
        """Body bytes received so far: events, and the heartbeat comments between them."""
        live = self._response.num_bytes_downloaded if self._response is not None else 0
        return self._bytes_before + live

    def _dispatch(self, ev_id: str, event: str, data: str, retry: int | None) -> None:
        arrived = time.time()
        if retry is not None:
            self.retry_s = retry / 1000
        if ev_id:
            self.last_id = ev_id
        self.connected.set()
        if event == "message" and not data:
            return  # the opening block: where the stream starts, and the retry hint
        self.events += 1
        self.on_event(self, SseEvent(ev_id or None, event, data, arrived))

    def close(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()


async def open_streams(
    streams: list[SseStream], concurrency: int, attempts: int = 3
) -> dict[str, Any]:
    """Open all streams, ``concurrency`` handshakes at a time; retries refused connects."""
    sem = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()

    async def one(s: SseStream) -> None:
        async with sem:
            for attempt in range(attempts):
                try:
                    await s.open()
                    return
                except RuntimeError as e:
                    failures[str(e)[:80]] += 1
                await asyncio.sleep(0.2 * (attempt + 1))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(s) for s in streams))
    wall = time.perf_counter() - t0
    opened = [s for s in streams if s.open_latency is not None and s.ended is None]
    return {
        "streams": len(streams),
        "open": len(opened),
        "wall_s": round(wall, 2),
        "handshake_ms": dist_ms([s.open_latency for s in opened if s.open_latency is not None]),
        "failures": dict(failures),
    }
