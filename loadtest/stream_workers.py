"""Notification streams held by several client processes, so that no one Python process
(the client) is the bottleneck: rush.py's thousands of waiting students, sse_fanout.py's
10,000 subscribers.

The parent (``StreamWorkers``, asyncio) starts ``processes`` children of this file, each
owning a slice of the streams and, for the rush, a slice of the cancellations and the
claims of the offers its streams receive. They talk in JSON lines: the parent writes
commands on a child's stdin, the child answers and reports on its stdout.

    child -> parent  {"t": "opened", ...}         its streams are open (clients.open_streams)
                     {"t": "event", ...}          a ``waitlist.offer`` arrived (when, what)
                     {"t": "claimed", ...}        the answer to a claim it sent for an offer
                     {"t": "cancels_done", ...}   every cancellation of its slice answered
                     {"t": "bytes", "n": ...}     body bytes its streams read so far
                     {"t": "final", ...}          request latencies, drops, other events
    parent -> child  go | bytes | stop

Every timestamp is ``time.time()``: the processes share the machine's wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import clients
from clients import Client, Response, SseEvent, SseStream

HERE = Path(__file__).resolve().parent
RETRIES = 3  # attempts of a cancel or claim whose connection broke (no answer)
REPLIES = ("opened", "bytes", "final")  # answers the parent waits for; the rest are reports


# --------------------------------------------------------------------------- child


class Child:
    """One process's streams, cancels and claims (spec: see ``StreamWorkers.start``)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base: str = spec["base"]
        self.claim_offers: bool = spec.get("claim", False)
        self.requests: dict[str, list[tuple[float, float, str]]] = {}  # phase -> rows
        self.other_events: Counter[str] = Counter()
        self.duplicates = 0
        self.seen: set[int] = set()  # entry ids offered on this process's streams
        self.claim_tasks: list[asyncio.Task[None]] = []
        self.pool = Client(self.base, max(1, int(spec.get("concurrency", 1))))

    def emit(self, message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    def record(self, phase: str, r: Response) -> None:
        self.requests.setdefault(phase, []).append((r.latency, r.sent_at, r.label))

    async def send(self, phase: str, method: str, path: str, token: str) -> Response:
        for attempt in range(RETRIES):  # a student retries when the connection breaks
            r = await self.pool.request(method, path, token=token)
            self.record(phase, r)
            if r.status != 0 or attempt == RETRIES - 1:
                break
            await asyncio.sleep(1.0)
        return r

    async def claim(self, stream: SseStream, entry_id: int) -> None:
        r = await self.send("4 claim", "POST", f"/waitlist/{entry_id}/claim", stream.token)
        self.emit(
            {
                "t": "claimed",
                "key": stream.key,
                "entry_id": entry_id,
                "status": r.status,
                "label": r.label,
                "answered": time.time(),
                "reservation_id": r.json["reservation"]["id"] if r.status == 200 else None,
            }
        )

    def on_event(self, stream: SseStream, ev: SseEvent) -> None:
        if ev.event != "waitlist.offer":
            self.other_events[ev.event or "?"] += 1
            return
        body = json.loads(ev.data)
        entry_id = body["data"]["entry_id"]
        if entry_id in self.seen:
            self.duplicates += 1
            return
        self.seen.add(entry_id)
        self.emit({"t": "event", "key": stream.key, "arrived": ev.arrived, "body": body})
        if self.claim_offers:
            self.claim_tasks.append(asyncio.create_task(self.claim(stream, entry_id)))

    async def cancels(self) -> None:
        async def one(uid: int, token: str, rid: int) -> None:
            r = await self.send("4 cancel", "DELETE", f"/reservations/{rid}", token)
            if r.status != 200:
                self.emit({"t": "cancel_failed", "uid": uid, "label": r.label})

        await asyncio.gather(*(one(*c) for c in self.spec.get("cancels", [])))
        self.emit({"t": "cancels_done", "at": time.time()})

    async def run(self) -> None:
        stream_clients = clients.StreamClients(self.base)
        streams = [
            SseStream(
                stream_clients.get(i),
                token,
                self.on_event,
                key=key,
                reconnect=self.spec.get("reconnect", False),
            )
            for i, (key, token) in enumerate(self.spec["streams"])
        ]
        opened = await clients.open_streams(streams, self.spec.get("open_concurrency", 100))
        if self.spec.get("cancels") or self.claim_offers:
            await self.pool.warm()
        self.emit({"t": "opened", **opened})
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        cancelling: asyncio.Task[None] | None = None
        while line := (await stdin.readline()).decode().strip():
            if line == "go":
                cancelling = asyncio.create_task(self.cancels())
            elif line == "bytes":
                self.emit({"t": "bytes", "n": sum(s.bytes_read() for s in streams)})
            elif line == "stop":
                break
        if cancelling is not None:
            await cancelling
        if self.claim_tasks:
            await asyncio.gather(*self.claim_tasks)
        drops = Counter(d for s in streams for d in s.drops)
        ended = Counter(s.ended for s in streams if s.ended)
        for s in streams:
            s.close()
        await asyncio.gather(self.pool.aclose(), stream_clients.aclose())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.emit(
            {
                "t": "final",
                "requests": self.requests,
                "other_events": dict(self.other_events),
                "duplicates": self.duplicates,
                "drops": dict(drops),
                "reconnected": sum(1 for s in streams if s.drops),
                "ended_early": dict(ended),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "max_rss_kib": usage.ru_maxrss,
            }
        )


def child_main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    with contextlib.suppress(ValueError, OSError):  # as many descriptors as allowed
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(Child(spec).run())


# --------------------------------------------------------------------------- parent


class StreamWorkers:
    """``len(specs)`` child processes; reports go to ``on_report(child index, message)``.

    A spec: ``base``; ``streams`` [[key, token], ...]; ``reconnect`` (EventSource's
    behaviour); ``open_concurrency`` (handshakes at once); ``claim`` (claim every offer
    the moment it arrives, with the stream's token); ``cancels`` [[user id, token,
    reservation id], ...], released by ``go()``; ``concurrency`` (connections for the
    cancels and claims)."""

    def __init__(
        self,
        specs: list[dict[str, Any]],
        on_report: Callable[[int, dict[str, Any]], None],
        directory: Path,
        name: str,
    ) -> None:
        self.specs = specs
        self.on_report = on_report
        self.directory = directory
        self.name = name
        self.procs: list[asyncio.subprocess.Process] = []
        self._replies: list[asyncio.Queue[dict[str, Any]]] = []
        self._readers: list[asyncio.Task[None]] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def start(self) -> None:
        for i, spec in enumerate(self.specs):
            path = self.directory / f"{self.name}.streams-{i}.json"
            path.write_text(json.dumps(spec))
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "stream_workers.py"),
                str(path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**26,  # the final report holds every request's latency
            )
            self.procs.append(proc)
            self._replies.append(asyncio.Queue())
            self._readers.append(asyncio.create_task(self._read(i, proc)))

    async def _read(self, i: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            message = json.loads(line)
            if message["t"] in REPLIES:
                await self._replies[i].put(message)
            else:
                self.on_report(i, message)
        await self._replies[i].put({"t": "exited", "code": await proc.wait()})

    async def _reply(self, i: int, kind: str) -> dict[str, Any]:
        message = await self._replies[i].get()
        if message["t"] != kind:
            raise RuntimeError(f"stream worker {i} answered {message} instead of {kind}")
        return message

    async def _tell(self, command: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{command}\n".encode())
        await asyncio.gather(*(p.stdin.drain() for p in self.procs if p.stdin is not None))

    async def opened(self) -> dict[str, Any]:
        """Waits until every child opened its streams; their open_streams summaries merged
        (handshake percentiles: the worst child's)."""
        parts = [await self._reply(i, "opened") for i in range(len(self.procs))]
        failures: Counter[str] = Counter()
        for p in parts:
            failures.update(p["failures"])
        return {
            "streams": sum(p["streams"] for p in parts),
            "open": sum(p["open"] for p in parts),
            "wall_s": max(p["wall_s"] for p in parts),
            "handshake_ms": {
                k: max((p["handshake_ms"][k] or 0) for p in parts)
                for k in ("p50", "p90", "p99", "max")
            },
            "failures": dict(failures),
            "processes": len(parts),
        }

    async def go(self) -> None:
        await self._tell("go")

    async def bytes_read(self) -> int:
        await self._tell("bytes")
        return sum([(await self._reply(i, "bytes"))["n"] for i in range(len(self.procs))])

    async def stop(self) -> list[dict[str, Any]]:
        """Waits for each child's pending cancels and claims, closes its streams; their
        final reports."""
        await self._tell("stop")
        finals = [await self._reply(i, "final") for i in range(len(self.procs))]
        await asyncio.gather(*self._readers)
        return finals

    async def kill(self) -> None:
        """On the way out after an error: end the children this object started."""
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
        for proc in self.procs:
            await proc.wait()


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """Round-robin slices: ``parts`` lists whose lengths differ by one at most."""
    return [items[i::parts] for i in range(parts)]


if __name__ == "__main__":
    child_main()
