"""Latency summaries shared by rush.py and sse_fanout.py: nearest-rank percentiles, and
one phase's requests (latency, status and error code, when each was sent)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


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


def label(status: int, body: Any) -> str:
    """The status, with the error code when there is one: "409 seat_conflict"."""
    if status == 0:
        return "conn_error"
    if status >= 400 and isinstance(body, dict) and body.get("code"):
        return f"{status} {body['code']}"
    return str(status)


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

    def record(self, latency: float, sent_at: float, status_label: str) -> None:
        self.latencies.append(latency)
        self.statuses[status_label] += 1
        self.slow.append((latency, sent_at, status_label))
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
        f"  {s['phase']:<16} {s['requests']:>6} req in {s['wall_s']:>6.2f}s "
        f"({s['rps'] or 0:>7.1f}/s)  p50 {lat['p50']} ms  p99 {lat['p99']} ms  "
        f"max {lat['max']} ms   {s['status']}",
        flush=True,
    )


def metrics(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """Values of unlabelled Prometheus samples from a /metrics body."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[name] = float(value)
    return found
