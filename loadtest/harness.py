"""What every load test here shares: the one server launcher, the one wait for a quiet
machine, CPU accounting, tokens, and the run records.

bench.py, rush.py and sse_fanout.py start the server through ``Server`` (or, with
``--instances N``, ``ClusterServer``: deploy/cluster.py's instances behind nginx) and
wait for the shared two cores through ``wait_for_quiet`` before they measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "deploy"))  # cluster.py, for --instances

from app.models import Role  # noqa: E402
from app.security import encode_token  # noqa: E402

DATA = HERE / ".data"
RUNS = HERE / "runs"
VENV_BIN = Path(sys.executable).parent
JWT_SECRET = "loadtest-only-secret-0123456789abcdef-not-for-production"  # noqa: S105
APP = "app.main:app"


def log(msg: str) -> None:
    print(f"[{datetime.now().astimezone().strftime('%H:%M:%S')}] {msg}", flush=True)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- server


def server_env(database_url: str, redis_url: str | None, extra: dict[str, str]) -> dict[str, str]:
    """The environment every load-test server gets: production mode, the load-test JWT
    secret, no scheduler, warnings only; REDIS_URL only when asked for."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DATABASE_URL=database_url,
        JWT_SECRET=JWT_SECRET,
        DLSMS_ENV="production",
        SCHEDULER_ENABLED="false",
        LOG_LEVEL="WARNING",
        PYTHONFAULTHANDLER="1",  # a worker that crashes leaves its stack in the log
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    # Load tests measure the service, not the per-client limit (a few addresses and
    # students send thousands of requests); `--env API_RATE_LIMIT=100/minute` measures it.
    env.setdefault("API_RATE_LIMIT", "0")
    env.update(extra)
    return env


class Server:
    """``uvicorn app.main:app --workers N`` on 127.0.0.1 and a free port (uvloop,
    httptools, no access log) in its own session; stopped by SIGTERM to its own process
    group (SIGKILL after 20 s), never anything else."""

    def __init__(
        self,
        *,
        database_url: str,
        workers: int,
        log_path: Path,
        redis_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        app: str = APP,
        uvicorn_log_level: str = "warning",
        uvicorn_args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = server_env(database_url, redis_url, extra_env or {})
        self.cmd = [
            str(VENV_BIN / "uvicorn"),
            app,
            # calibration.py's apps live beside this file, the service at the top
            *("--app-dir", str(ROOT if app == APP else HERE)),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--workers", str(workers), "--no-access-log"),
            *("--loop", "uvloop", "--http", "httptools", "--log-level", uvicorn_log_level),
            *uvicorn_args,
        ]
        self.log_path = log_path
        with log_path.open("w") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=ROOT,
                env=self.env,
                stdout=out,
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
        kids = [
            p.pid
            for p in psutil.Process(self.proc.pid).children()
            if "multiprocessing.resource_tracker" not in " ".join(p.cmdline())
        ]
        return kids or [self.proc.pid]

    def cpu_pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            # The server leads its own process group (start_new_session): that group holds
            # uvicorn and its workers and nothing else.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class ClusterServer:
    """``--instances N``: N single-worker instances behind nginx (deploy/cluster.py),
    measured through nginx; the same interface as Server."""

    def __init__(
        self,
        *,
        instances: int,
        database_url: str,
        directory: Path,
        redis_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        import cluster

        self._cluster = cluster
        self.directory = directory
        env = server_env(database_url, redis_url, extra_env or {})
        env.setdefault("REDIS_URL", "")
        self.cluster = cluster.start(instances, directory=directory, env=env)
        self.base = self.cluster.url
        self.pid = self.cluster.app_pids[0]
        self.log_path = directory / "app0.log"

    def wait_ready(self, timeout: float = 60) -> None:
        pass  # cluster.start waits for every instance and for nginx

    def worker_pids(self) -> list[int]:
        return list(self.cluster.app_pids)

    def cpu_pids(self) -> list[int]:
        nginx = self.directory / "nginx.pid"
        return [*self.cluster.app_pids, *([int(nginx.read_text())] if nginx.exists() else [])]

    def stop(self) -> None:
        self._cluster.stop(self.directory)


class WorkerMonitor:
    """Every ``every`` s, the server's worker processes: a pid that goes away is a worker
    that died or was killed (uvicorn's supervisor kills one that misses its 5 s health
    check and starts another)."""

    def __init__(self, server: Server, every: float = 0.5) -> None:
        self.server = server
        self.every = every
        self.events: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self) -> set[int]:
        try:
            return set(self.server.worker_pids())
        except psutil.Error:  # the server is stopping
            return set()

    def _run(self) -> None:
        known = self._pids()
        t0 = time.time()
        while not self._stop.wait(self.every):
            now = self._pids()
            for pid in known - now:
                self.events.append({"t": round(time.time() - t0, 1), "gone": pid})
                log(f"  !! server worker {pid} went away")
            for pid in now - known:
                self.events.append({"t": round(time.time() - t0, 1), "new": pid})
            known = now or known

    def __enter__(self) -> WorkerMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- machine


def wait_for_quiet(limit_s: float, *, busy: float = 0.3, streak_s: float = 6.0) -> dict[str, Any]:
    """The machine is shared: wait (up to ``limit_s``) until other processes have used
    less than ``busy`` cores for ``streak_s`` seconds in a row. Returns the wait, the
    last reading and the load average, for the run's record."""
    started = time.monotonic()
    quiet_since: float | None = None
    cores = 0.0
    while limit_s > 0:
        cores = psutil.cpu_percent(interval=2) / 100 * (psutil.cpu_count() or 1)
        if cores >= busy:
            quiet_since = None
            log(f"  machine busy ({cores:.2f} cores used by others); waiting")
        elif quiet_since is None:
            quiet_since = time.monotonic() - 2
        if quiet_since is not None and time.monotonic() - quiet_since >= streak_s:
            break
        if time.monotonic() - started > limit_s:
            log(f"  machine still busy ({cores:.2f} cores) after {limit_s:.0f}s; running anyway")
            break
    return {
        "waited_s": round(time.monotonic() - started, 1),
        "others_cores_at_start": round(cores, 2),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(want, soft)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < want:
        raise SystemExit(f"ulimit -n is {soft} (hard {hard}); {want} descriptors are needed")
    return soft


def cpu_snapshot(server_pids: list[int], db: str) -> dict[str, float]:
    """CPU seconds so far of the server (all its processes), PostgreSQL and Redis.

    PostgreSQL counts the backends connected to the bench database plus the shared
    auxiliary processes (WAL writer, checkpointer, ...), not other databases' backends."""
    totals = {"server": 0.0, "postgres": 0.0, "redis": 0.0}
    server = set(server_pids) | {
        c.pid for pid in server_pids for c in psutil.Process(pid).children(recursive=True)
    }
    ours = re.compile(rf"^postgres: (\S+: )?(.* {re.escape(db)}( |$)|[a-z ]+$)")
    for p in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
        name, times = p.info["name"] or "", p.info["cpu_times"]
        if times is None:
            continue
        title = " ".join(p.info["cmdline"] or [])
        key = None
        if p.info["pid"] in server:
            key = "server"
        elif name.startswith("postgres") and ours.match(title):
            key = "postgres"
        elif name.startswith("redis"):
            key = "redis"
        if key:
            totals[key] += times.user + times.system
    totals["machine"] = sum(psutil.cpu_times()[:3])  # user + nice + system, all cores
    return totals


def cpu_used(before: dict[str, float], after: dict[str, float], secs: float) -> dict[str, float]:
    """Average cores busy during the run, per component (exited processes are missed)."""
    used = {k: round(max(after[k] - before.get(k, 0.0), 0.0) / secs, 2) for k in after}
    used["others"] = round(
        max(used["machine"] - used["server"] - used["postgres"] - used["redis"], 0.0), 2
    )
    return used


class ProcessCpu:
    """Samples the CPU seconds of some processes every ``every`` s (a thread), so a run
    can show that no load-generating process was the bottleneck: each process's mean
    cores and its busiest ``window`` s."""

    def __init__(
        self, pids: list[int], *, tree: bool = False, every: float = 0.5, window: float = 2.0
    ) -> None:
        self.tree = tree  # count each process's children too (uvicorn's workers)
        self.every, self.window = every, window
        self.samples: dict[int, list[tuple[float, float]]] = {}  # pid -> [(wall, cpu s)]
        self._procs: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.add(pids)

    def add(self, pids: list[int]) -> None:
        """More processes to follow (started after the record began)."""
        for pid in pids:
            self.samples.setdefault(pid, [])
            self._procs = {**self._procs, pid: psutil.Process(pid)}

    def _sample(self) -> None:
        now = time.time()
        for pid, proc in self._procs.items():
            try:
                times = [proc.cpu_times()]
                times += [c.cpu_times() for c in proc.children()] if self.tree else []
            except psutil.Error:  # exited: its last sample stands
                continue
            self.samples[pid].append((now, sum(t.user + t.system for t in times)))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> ProcessCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def summary(self, since: float | None = None) -> dict[str, Any]:
        """Cores: the sum of the processes' means, the highest mean, the highest peak;
        ``since`` (a time.time()) leaves out what came before (e.g. Locust's start-up)."""
        means, peaks = [], []
        for full in self.samples.values():
            series = [x for x in full if since is None or x[0] >= since - self.every]
            if len(series) < 2:
                continue
            (t0, c0), (t1, c1) = series[0], series[-1]
            means.append((c1 - c0) / max(t1 - t0, 1e-9))
            peak, j = means[-1], 0
            for ti, ci in series:  # the busiest stretch of >= window s ending at each sample
                while j + 1 < len(series) and ti - series[j + 1][0] >= self.window:
                    j += 1
                tj, cj = series[j]
                if ti - tj >= self.window:
                    peak = max(peak, (ci - cj) / (ti - tj))
            peaks.append(peak)
        return {
            "processes": len(self.samples),
            "total_mean": round(sum(means), 2),
            "max_process_mean": round(max(means, default=0.0), 2),
            "max_process_peak": round(max(peaks, default=0.0), 2),
        }


class StepCpu:
    """The CPU of one step of a run: the server, PostgreSQL and Redis as ``cpu_used``
    counts them, and, sampled (``ProcessCpu``), the server's process tree and the client
    processes (this one, plus any added)."""

    def __init__(self, server_pids: list[int], db: str, client_pids: list[int]) -> None:
        self.server_pids, self.db = server_pids, db
        self.t0 = time.monotonic()
        self.before = cpu_snapshot(server_pids, db)
        self.server = ProcessCpu(server_pids, tree=True).__enter__()
        self.clients = ProcessCpu([os.getpid(), *client_pids]).__enter__()

    def add(self, pids: list[int]) -> None:
        self.clients.add(pids)

    def end(self, since: float | None = None) -> dict[str, Any]:
        """Averages over the whole step; ``server_sampled`` and ``client`` over the part
        after ``since`` (with peaks over 2 s)."""
        secs = time.monotonic() - self.t0
        self.clients.__exit__()
        self.server.__exit__()
        used: dict[str, Any] = cpu_used(self.before, cpu_snapshot(self.server_pids, self.db), secs)
        client = self.clients.summary(since)
        used["others"] = round(max(used["others"] - self.clients.summary()["total_mean"], 0.0), 2)
        return {
            "seconds": round(secs, 2),
            **used,
            "server_sampled": self.server.summary(since),
            "client": client,
        }


# --------------------------------------------------------------------------- data


def flush_redis_db(url: str) -> None:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


async def pg(url: str, attempts: int = 30) -> asyncpg.Connection:
    """A connection of the harness (named, to tell it apart in pg_stat_activity), retried
    for a while when the server is out of connection slots."""
    for attempt in range(attempts):
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                url, server_settings={"application_name": "loadtest-harness"}
            )
            return conn
        except asyncpg.TooManyConnectionsError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


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


def mint_tokens(users: list[tuple[int, str]]) -> dict[int, str]:
    """An HS256 JWT (24 h) for each (user id, student id): no /auth/login, whose bcrypt
    would be the benchmark."""
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


# --------------------------------------------------------------------------- records

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


def append_jsonl(name: str, record: dict[str, Any]) -> Path:
    RUNS.mkdir(exist_ok=True)
    path = RUNS / name
    with path.open("a") as f:
        f.write(json.dumps(record, default=str) + "\n")
    return path


def stamp() -> str:
    return datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
