"""Shared by sse_fanout.py and rush.py: a lean asyncio HTTP/1.1 client, an SSE reader,
tokens, latency summaries, and the wait for a quiet machine.

The load generators share two cores with the server, so the client is kept as cheap
as wrk's: raw sockets on uvloop, keep-alive connections, no client library (httpx
costs ~1 ms of CPU a request, taken straight from the server). It speaks just enough
HTTP/1.1 for this server (uvicorn + httptools): Content-Length or chunked bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))


import harness  # noqa: E402
from harness import JWT_SECRET, cpu_used, flush_redis_db, free_port, log  # noqa: E402, F401

from app.models import Role  # noqa: E402
from app.security import encode_token  # noqa: E402

RUNS = HERE / "runs"
# uvicorn closes a keep-alive connection idle for 5 s; reconnect before that.
IDLE_RECONNECT_S = 3.0
VENV_BIN = Path(sys.executable).parent


def git_version() -> str:
    """The commit under test, with "+dirty" when app/ or alembic/ have local changes."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "app", "alembic"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head}{'+dirty' if dirty else ''}" or "unknown"


def cpu_snapshot(server_pid: int, db: str) -> dict[str, float]:
    """bench.py's CPU accounting for one server process tree."""
    return harness.cpu_snapshot([server_pid], db)


# --------------------------------------------------------------------------- machine


def raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(want, soft)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < want:
        raise SystemExit(f"ulimit -n is {soft} (hard {hard}); {want} descriptors are needed")
    return soft


BUSY_PATTERNS = ("wrk", "pytest", "loadtest/bench.py")


def busy_processes() -> list[str]:
    """Other load on this machine: wrk or pytest runs, or bench.py between two wrk runs."""
    found = []
    for pattern in BUSY_PATTERNS:
        out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
        for line in out.splitlines():
            pid = int(line.split(None, 1)[0])
            if pid != os.getpid():
                found.append(line[:120])
    return found


def wait_until_quiet(limit_s: float, streak_s: float = 15.0) -> dict[str, Any]:
    """Wait (up to ``limit_s``) until no wrk, pytest or bench.py process has run for
    ``streak_s`` seconds in a row; report the wait and the load average."""
    started = time.monotonic()
    quiet_since = time.monotonic()
    busy: list[str] = []
    while True:
        now_busy = busy_processes()
        if now_busy:
            busy = now_busy
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= streak_s:
            busy = []
            break
        if time.monotonic() - started > limit_s:
            log(f"  still busy after {limit_s:.0f}s ({busy[:1]}); running anyway")
            break
        if now_busy:
            log(f"  waiting for other benchmarks/tests to finish: {now_busy[0]}")
        time.sleep(5 if now_busy else 1)
    return {
        "waited_s": round(time.monotonic() - started, 1),
        "busy_at_start": busy,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


class Watcher:
    """Samples other load (busy_processes) every ``every`` seconds while a run lasts."""

    def __init__(self, every: float = 2.0) -> None:
        import threading

        self.seen: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            for line in busy_processes():
                self.seen[" ".join(line.split()[1:3])[:60]] += 1

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- server


class AppServer:
    """``uvicorn app.main:app`` started the way bench.py starts it (127.0.0.1, a free port,
    uvloop + httptools, no access log, its own session) and stopped by SIGTERM to its own
    process group (SIGKILL after 20 s); plus uvicorn's own log at ``uvicorn_log_level``,
    Python's faulthandler on, and extra uvicorn options."""

    def __init__(
        self,
        *,
        database_url: str,
        workers: int,
        log_path: Path,
        extra_env: dict[str, str],
        uvicorn_log_level: str = "warning",
        uvicorn_args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env.update(
            DATABASE_URL=database_url,
            JWT_SECRET=JWT_SECRET,
            DLSMS_ENV="production",
            SCHEDULER_ENABLED="false",
            LOG_LEVEL="WARNING",
            PYTHONFAULTHANDLER="1",
        )
        env.update(extra_env)
        self.cmd = [
            str(VENV_BIN / "uvicorn"),
            "app.main:app",
            "--app-dir",
            str(ROOT),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            uvicorn_log_level,
            *uvicorn_args,
        ]
        self.log_path = log_path
        self.log_file = log_path.open("w")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base + "/ready", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout}s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        """The processes serving requests: uvicorn's children with --workers > 1, else itself."""
        import psutil

        kids = [
            p.pid
            for p in psutil.Process(self.proc.pid).children()
            if "multiprocessing.resource_tracker" not in " ".join(p.cmdline())
        ]
        return kids or [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own group: uvicorn and its workers
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log_file.close()


class WorkerMonitor:
    """Every ``every`` s, the server's worker processes: a pid that goes away is a worker
    that died or was killed (uvicorn's supervisor kills one that misses its 5 s
    health check and starts another)."""

    def __init__(self, server: AppServer, every: float = 0.5) -> None:
        import threading

        self.server = server
        self.every = every
        self.events: list[dict[str, Any]] = []
        self._known: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self) -> set[int]:
        try:
            return set(self.server.worker_pids())
        except Exception:  # the server is stopping
            return set()

    def _run(self) -> None:
        self._known = self._pids()
        t0 = time.time()
        while not self._stop.wait(self.every):
            now = self._pids()
            for pid in self._known - now:
                self.events.append({"t": round(time.time() - t0, 1), "gone": pid})
                log(f"  !! server worker {pid} went away")
            for pid in now - self._known:
                self.events.append({"t": round(time.time() - t0, 1), "new": pid})
            self._known = now or self._known

    def __enter__(self) -> WorkerMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- data


def mint_tokens(users: list[tuple[int, str]]) -> dict[int, str]:
    now = datetime.now(UTC)
    return {
        uid: encode_token(
            secret=JWT_SECRET,
            user_id=uid,
            student_id=sid,
            role=Role.STUDENT,
            now=now,
            ttl=timedelta(hours=24),
        )[0]
        for uid, sid in users
    }


async def pg(url: str) -> asyncpg.Connection:
    # The name tells the harness's own connections apart in pg_stat_activity.
    return await asyncpg.connect(url, server_settings={"application_name": "loadtest-harness"})


async def connection_headroom(url: str) -> tuple[int, int]:
    """Free PostgreSQL connection slots, and how many are in use (by anybody)."""
    conn = await pg(url)
    try:
        row = await conn.fetchrow(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int AS slots,"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
            " AS used"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["slots"]) - int(row["used"]), int(row["used"])


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- stats


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def dist_ms(values_s: list[float]) -> dict[str, Any]:
    """n, p50/p90/p99/max (and min) in ms of durations given in seconds."""

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "n": len(values_s),
        "min": ms(min(values_s)) if values_s else None,
        "p50": ms(pct(values_s, 50)),
        "p90": ms(pct(values_s, 90)),
        "p99": ms(pct(values_s, 99)),
        "max": ms(max(values_s)) if values_s else None,
    }


@dataclass
class Phase:
    """Requests of one phase: latency, status and error code of each."""

    name: str
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    t0_wall: float = field(default_factory=time.time)
    slow: list[tuple[float, float, str]] = field(default_factory=list)  # (latency, sent, label)

    def record(self, resp: Response) -> None:
        self.latencies.append(resp.latency)
        self.statuses[resp.label] += 1
        self.slow.append((resp.latency, resp.sent_at, resp.label))
        if len(self.slow) > 200:
            self.slow = sorted(self.slow, reverse=True)[:5]

    def done(self) -> None:
        self.ended = time.perf_counter()

    def summary(self) -> dict[str, Any]:
        wall = (self.ended or time.perf_counter()) - self.started
        n = len(self.latencies)
        return {
            "phase": self.name,
            "requests": n,
            "wall_s": round(wall, 2),
            "rps": round(n / wall, 1) if wall > 0 else None,
            "latency_ms": dist_ms(self.latencies),
            "status": dict(sorted(self.statuses.items())),
            # the slowest requests: latency and when they were sent (s after the phase began)
            "slowest": [
                {"ms": round(lat * 1000, 1), "sent_s": round(sent - self.t0_wall, 2), "status": lab}
                for lat, sent, lab in sorted(self.slow, reverse=True)[:5]
            ],
        }


def print_phase(s: dict[str, Any]) -> None:
    lat = s["latency_ms"]
    print(
        f"  {s['phase']:<14} {s['requests']:>6} req in {s['wall_s']:>6.2f}s "
        f"({s['rps'] or 0:>7.1f}/s)  p50 {lat['p50']} ms  p99 {lat['p99']} ms  "
        f"max {lat['max']} ms   {s['status']}",
        flush=True,
    )


# Plain-text lines worth counting: warnings, errors, uvicorn's supervisor replacing a
# worker, and what faulthandler prints on a crash.
LOG_MARKERS = (" WARNING ", " ERROR ", "WARNING:", "ERROR:", "Traceback", "died", "Fatal Python")


def server_log_summary(path: Path, top: int = 8) -> dict[str, int]:
    """Warnings, errors and tracebacks the server logged, by message (numbers masked).
    Reads the app's JSON lines (``"level": "WARNING"``) and plain text alike."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        message = None
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                    message = f"{rec.get('level')} {rec.get('logger')} {rec.get('message')}"
                    if rec.get("exc_info"):
                        message += " | " + str(rec["exc_info"]).strip().splitlines()[-1]
        elif any(k in line for k in LOG_MARKERS):
            message = line
        if message:
            counts[re.sub(r"\d+", "N", message)[:200]] += 1
    return dict(counts.most_common(top))


def metrics(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """Values of unlabelled Prometheus samples from a /metrics body."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[name] = float(value)
    return found


def append_jsonl(name: str, record: dict[str, Any]) -> Path:
    RUNS.mkdir(exist_ok=True)
    path = RUNS / name
    with path.open("a") as f:
        f.write(json.dumps(record, default=str) + "\n")
    return path


# --------------------------------------------------------------------------- HTTP


@dataclass
class Response:
    status: int  # 0: the connection failed
    body: bytes
    latency: float
    sent_at: float  # time.time() just before the request was written

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def label(self) -> str:
        """The status, with the error code when there is one: "409 seat_conflict"."""
        if self.status == 0:
            return "conn_error"
        if self.status >= 400:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                code = self.json.get("code")
                if code:
                    return f"{self.status} {code}"
        return str(self.status)


class HttpConn:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def connect(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.last_used = time.monotonic()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if self.writer is None or time.monotonic() - self.last_used > IDLE_RECONNECT_S:
            await self.connect()
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if token:
            head.append(f"Authorization: Bearer {token}")
        if body is not None:
            head.append("Content-Type: application/json")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(payload)}")
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        sent_at = time.time()
        t0 = time.perf_counter()
        try:
            assert self.writer is not None
            assert self.reader is not None
            self.writer.write(raw)
            status, hdrs, data = await read_response(self.reader)
        except (OSError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            self.close()
            return Response(0, b"", time.perf_counter() - t0, sent_at)
        latency = time.perf_counter() - t0
        self.last_used = time.monotonic()
        if hdrs.get(b"connection", b"").lower() == b"close":
            self.close()
        return Response(status, data, latency, sent_at)


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    status = int(line.split()[1])
    headers: dict[bytes, bytes] = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n"):
            return status, headers
        if not h:
            raise ConnectionError("connection closed in headers")
        k, _, v = h.partition(b":")
        headers[k.strip().lower()] = v.strip()


async def read_chunk(reader: asyncio.StreamReader) -> bytes | None:
    """One chunk of a chunked body; None at its end."""
    size_line = await reader.readline()
    if not size_line:
        raise ConnectionError("connection closed in a chunked body")
    size = int(size_line.split(b";")[0], 16)
    data = await reader.readexactly(size + 2)
    return data[:-2] if size else None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    status, headers = await read_head(reader)
    if b"content-length" in headers:
        return status, headers, await reader.readexactly(int(headers[b"content-length"]))
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts = []
        while (chunk := await read_chunk(reader)) is not None:
            parts.append(chunk)
        return status, headers, b"".join(parts)
    return status, headers, await reader.read()


class ConnPool:
    """``size`` keep-alive connections; a request waits (FIFO) for a free one."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.size = size
        self._free: asyncio.Queue[HttpConn] = asyncio.Queue()
        for _ in range(size):
            self._free.put_nowait(HttpConn(host, port))

    async def warm(self) -> None:
        """Connect every connection now, so the first requests don't pay for it."""
        conns = [self._free.get_nowait() for _ in range(self.size)]
        await asyncio.gather(*(c.connect() for c in conns))
        for c in conns:
            self._free.put_nowait(c)

    @contextlib.asynccontextmanager
    async def conn(self) -> AsyncIterator[HttpConn]:
        c = await self._free.get()
        try:
            yield c
        finally:
            self._free.put_nowait(c)

    async def request(self, method: str, path: str, **kw: Any) -> Response:
        async with self.conn() as c:
            return await c.request(method, path, **kw)

    def close(self) -> None:
        while not self._free.empty():
            self._free.get_nowait().close()


# --------------------------------------------------------------------------- SSE


@dataclass
class SseEvent:
    id: str | None
    event: str | None
    data: str
    arrived: float  # time.time() when its chunk was read


class SseStream:
    """GET /notifications/stream for one user; events go to ``on_event``.

    With ``reconnect`` it behaves like a browser's EventSource: when the stream ends or
    breaks it reconnects after the server's ``retry:`` hint, sending ``Last-Event-ID``
    if it has seen an event id (``drops`` counts the breaks)."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        on_event: Callable[[SseStream, SseEvent], None],
        *,
        key: Any = None,
        path: str = "/notifications/stream",
        reconnect: bool = False,
    ) -> None:
        self.host, self.port, self.token, self.path = host, port, token, path
        self.on_event = on_event
        self.key = key
        self.reconnect = reconnect
        self.retry_s = 3.0
        self.last_id: str | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.StreamReader | None = None
        self.connected = asyncio.Event()
        self.closed = False
        self.ended: str | None = None  # why the stream ended for good, if it did
        self.drops: list[str] = []  # breaks that were followed by a reconnect
        self.comments = 0
        self.events = 0
        self.task: asyncio.Task[None] | None = None
        self.open_latency: float | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id else ""
        self.writer.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n"
                f"{resume}\r\n"
            ).encode()
        )
        status, _ = await read_head(self.reader)
        if status != 200:
            body = await self.reader.read(2000)
            raise RuntimeError(f"stream answered {status}: {body[:300]!r}")

    async def open(self) -> None:
        """Connect and wait for the server's first bytes (the ': connected' comment)."""
        t0 = time.perf_counter()
        await self._connect()
        self.task = asyncio.create_task(self._run())
        await self.connected.wait()
        self.open_latency = time.perf_counter() - t0

    async def _read(self) -> str:
        assert self.reader is not None
        buf = b""
        try:
            while True:
                chunk = await read_chunk(self.reader)
                arrived = time.time()
                if chunk is None:
                    return "server ended the stream"
                buf += chunk.replace(b"\r\n", b"\n")
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    self._dispatch(block, arrived)
        except (OSError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"[:80]

    async def _run(self) -> None:
        try:
            while True:
                reason = await self._read()
                if self.closed:
                    return
                if not self.reconnect:
                    self.ended = reason
                    return
                self.drops.append(reason)
                while not self.closed:
                    await asyncio.sleep(self.retry_s)
                    try:
                        await self._connect()
                        break
                    except (OSError, RuntimeError, ConnectionError, ValueError):
                        continue
        finally:
            self.connected.set()  # never leave open() hanging

    def _dispatch(self, block: bytes, arrived: float) -> None:
        ev_id = ev_type = None
        data: list[str] = []
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                ev_id = value
            elif name == "event":
                ev_type = value
            elif name == "data":
                data.append(value)
            elif name == "retry" and value.isdigit():
                self.retry_s = int(value) / 1000
        self.connected.set()
        if ev_id is not None:
            self.last_id = ev_id
        if ev_type or data:
            self.events += 1
            self.on_event(self, SseEvent(ev_id, ev_type, "\n".join(data), arrived))

    def close(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


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
                    if s.ended is None:
                        return
                    failures[f"ended: {s.ended}"[:80]] += 1
                except (OSError, RuntimeError, ConnectionError, asyncio.IncompleteReadError) as e:
                    failures[f"{type(e).__name__}: {e}"[:80]] += 1
                s.close()
                s.closed = False
                s.connected = asyncio.Event()
                s.ended = None
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


def use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
