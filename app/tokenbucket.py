"""Token buckets, as GCRA: shared through Redis, per process without it.

A bucket holds up to ``burst`` tokens and gains one every ``interval`` seconds; a request
takes one or is refused. The generic cell rate algorithm keeps the same bucket as one
number per client, the *theoretical arrival time* (TAT): the instant at which the bucket
would be full again. A request is admitted when, after adding one interval, the bucket is
not over-full (``tat + interval - now <= burst * interval``). One number means one
atomic Redis command per request (a Lua script) and a few bytes per active client.

Why not a library: ``limits`` (used for the login limits) has fixed, moving and sliding
windows but no token bucket, and the listing fast path needs the bucket and the cached
answer in one round trip, which only a script of our own can combine
(``ADMIT_SCRIPT`` is written to be prefixed to another script: app/fastpath.py).

Redis keeps the clock (``TIME``), so instances with skewed clocks still share one bucket.
"""

import math
import time
from dataclasses import dataclass

import limits

# KEYS[1]: the bucket; ARGV[1]: interval, ARGV[2]: burst * interval (both microseconds).
# Sets `admitted` (1/0), `wait` (µs until a token is back; 0 when admitted) and `full_in`
# (µs until the bucket is full again). A script that prefixes this one reads them.
ADMIT_SCRIPT = """
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local admitted, wait, full_in = 0, tat + interval - now - capacity, tat - now
if wait <= 0 then
    admitted, wait, full_in = 1, 0, tat + interval - now
    redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(full_in / 1000))
end
"""
ADMIT_ONLY_SCRIPT = ADMIT_SCRIPT + "return {admitted, wait, full_in}"
_PREFIX = "dlsms:bucket:"
_MICROS = 1_000_000
# The in-memory buckets drop clients whose bucket is full again (they hold no state worth
# keeping) once this many are tracked: memory stays bounded under many addresses.
_MEMORY_SWEEP_AT = 10_000


@dataclass(frozen=True)
class Policy:
    """``rate`` tokens per ``period`` seconds, at most ``burst`` saved up."""

    name: str  # "user" or "address": the RateLimit header's policy name
    rate: int
    period: int
    burst: int

    @classmethod
    def parse(cls, name: str, rate: str, burst: int) -> "Policy":
        item = limits.parse(rate)  # "100/minute", "5 per second", ...; ValueError if not
        return cls(name=name, rate=item.amount, period=item.get_expiry(), burst=burst)

    @property
    def interval(self) -> float:
        """Seconds between two tokens."""
        return self.period / self.rate

    @property
    def micros(self) -> tuple[int, int]:
        """The script's arguments: interval and capacity in microseconds."""
        interval = round(self.interval * _MICROS)
        return interval, interval * self.burst


@dataclass(frozen=True)
class Decision:
    admitted: bool
    remaining: int  # whole tokens left after this request
    retry_after: float  # seconds until the next token (0 when admitted)
    full_in: float  # seconds until the bucket is full again


def decide(policy: Policy, admitted: bool, wait_us: float, full_in_us: float) -> Decision:
    """The decision from a script's (or the memory bucket's) three numbers."""
    interval, capacity = policy.micros
    remaining = max(0, math.floor((capacity - full_in_us) / interval)) if admitted else 0
    return Decision(admitted, remaining, wait_us / _MICROS, full_in_us / _MICROS)


def redis_key(policy: Policy, client: str) -> str:
    return f"{_PREFIX}{policy.name}:{client}"


class MemoryBuckets:
    """The same buckets in this process's memory: without Redis, or while it is down."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}  # key -> TAT in microseconds (monotonic clock)

    def admit(self, policy: Policy, client: str) -> Decision:
        key = redis_key(policy, client)
        interval, capacity = policy.micros
        now = time.monotonic() * _MICROS
        tat = max(self._tat.get(key, now), now)
        wait = tat + interval - now - capacity
        if wait > 0:
            return decide(policy, False, wait, tat - now)
        if len(self._tat) >= _MEMORY_SWEEP_AT:
            self._forget_full(now)
        self._tat[key] = tat + interval
        return decide(policy, True, 0, tat + interval - now)

    def _forget_full(self, now: float) -> None:
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now}

    def __len__(self) -> int:
        return len(self._tat)
