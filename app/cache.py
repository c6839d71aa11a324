"""Seat-listing cache in Redis: versioned keys, short TTLs, never raises.

Every cached answer is stored under the *generation* of what it depends on: one
per branch and one for "all branches". A change that affects availability replaces
those generations with new values after its transaction commits (``seats_changed``),
so the next read looks under a new key and old answers simply age out. A reader that computed
its answer from a snapshot taken before the commit stores it under the generation
it read *before* querying, which no reader looks at once the bump has happened:
nobody sees a seat as free after its booking was committed and answered.

Answers about the present moment also carry the instant up to which they stay
true (the next start or end of an active reservation), checked on every read.

Redis is optional. Any Redis error logs one warning and turns the cache off for
the TTL plus a margin (so an answer whose invalidation may have been
lost is never served by this instance); callers then read PostgreSQL.

This module owns the rules: which key a request's answer lives under
(``listing_slot``: the normalised raw query, read before validation so that the
ASGI fast path in app/fastpath.py can answer without routing) and when an answer
may be stored (``SeatCache.keep``: only for the branch scope the key was made from).
"""

import asyncio
import functools
import hashlib
import logging
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from app import metrics, tokenbucket, tracing

log = logging.getLogger(__name__)

_PREFIX = "dlsms:seats:v3"  # v3: branches carry id, timezone, open_now, next_change_at
_ALL = "all"
# One round trip: the current generation, and the answer stored under it (if any).
# Generations are never reused: a bump writes a fresh random value, and a counter that
# vanished (flush, eviction) is recreated from the server clock, later than any before.
# Written with placeholders for where its key and arguments are, so that the rate
# limiter's script can run first in the same round trip (``admit_and_lookup``).
_READ_LUA = """
local generation = redis.call('GET', {gen_key})
if not generation then
    local now = redis.call('TIME')
    redis.call('SET', {gen_key}, 't' .. now[1] .. now[2], 'NX')
    generation = redis.call('GET', {gen_key})
end
local stored = redis.call('GET', {list_prefix} .. generation .. ':' .. {digest})
"""
_GET_SCRIPT = (
    _READ_LUA.format(gen_key="KEYS[1]", list_prefix="ARGV[1]", digest="ARGV[2]")
    + "return {generation, stored}"
)
# The token bucket (KEYS[1], ARGV[1..2]) and, only when it admits, the read.
_ADMIT_AND_GET_SCRIPT = (
    tokenbucket.ADMIT_SCRIPT
    + "if admitted == 0 then return {admitted, wait, full_in} end\n"
    + _READ_LUA.format(gen_key="KEYS[2]", list_prefix="ARGV[3]", digest="ARGV[4]")
    + "return {admitted, wait, full_in, generation, stored}"
)
# Validity header of a stored answer: valid_from, valid_until (epoch seconds, float64).
_HEADER = struct.Struct("!dd")
_FOREVER = float("inf")
# Looked up once: ``labels()`` takes a lock and builds a tuple on every call.
_LOOKUPS_HIT = metrics.CACHE_LOOKUPS.labels("hit")
_LOOKUPS_MISS = metrics.CACHE_LOOKUPS.labels("miss")
_LOOKUPS_OFF = metrics.CACHE_LOOKUPS.labels("off")


@dataclass(frozen=True)
class Lookup:
    """What a read found: the generation to store a fresh answer under, and the answer."""

    scope: str
    key: str
    generation: bytes | None  # None: the cache is off, don't store
    body: bytes | None


@dataclass(frozen=True)
class Computed:
    """A freshly computed answer and the instant it stops being true (None: a write)."""

    body: bytes
    valid_until: datetime | None


@dataclass(frozen=True)
class ListingSlot:
    """Where a listing request's answer lives in the cache."""

    key: str  # the path and its normalised raw query
    branch: str | None  # the branch scope as written in the query string (None: all)
    lookup: Lookup | None = None  # a lookup already made for this request (the fast path's)


def listing_slot(path: str, query_string: bytes, lookup: Lookup | None = None) -> ListingSlot:
    """The slot of a listing request, from its raw (not yet validated) query.

    Parameters are sorted so that their order does not matter; repeated ones keep their
    order (FastAPI reads the last), so the key still tells them apart."""
    return ListingSlot(*_normalised(path, query_string), lookup)


# Remembered: everyone asks the same few queries, and parsing and re-encoding one cost
# more than the rest of a cache hit's own code. Bounded; any query string may arrive.
@functools.lru_cache(maxsize=4096)
def _normalised(path: str, query_string: bytes) -> tuple[str, str | None]:
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    branch = next((v for k, v in reversed(pairs) if k == "branch"), None)
    return f"{path}?{urlencode(sorted(pairs, key=lambda kv: kv[0]))}", branch


class SeatCache:
    def __init__(self, redis: Redis | None, ttl_seconds: float) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._pause_seconds = ttl_seconds + 5.0
        self._paused_until = 0.0
        self._get = redis.register_script(_GET_SCRIPT) if redis is not None else None
        self._admit_and_get = (
            redis.register_script(_ADMIT_AND_GET_SCRIPT) if redis is not None else None
        )
        # Answers being computed in this process, by where they will be stored.
        self._computing: dict[tuple[str, bytes, str], asyncio.Future[Computed]] = {}

    @property
    def enabled(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._paused_until

    async def lookup(self, *, branch: str | None, query: str, now: datetime) -> Lookup:
        """The answer to ``query`` about ``branch`` (None: all) if one valid at ``now`` is kept."""
        scope = _scope(branch)
        key = _digest(query)
        if self._get is None or not self.enabled:
            _LOOKUPS_OFF.inc()
            return Lookup(scope, key, None, None)
        try:
            generation, stored = await self._run(
                self._get, [f"{_PREFIX}:gen:{scope}"], [f"{_PREFIX}:list:{scope}:", key]
            )
        except RedisError as exc:
            self._pause(exc)
            _LOOKUPS_OFF.inc()
            return Lookup(scope, key, None, None)
        return self._found(scope, key, generation, stored, now)

    async def admit_and_lookup(
        self, policy: tokenbucket.Policy, client: str, slot: ListingSlot, now: datetime
    ) -> tuple[tokenbucket.Decision, Lookup | None]:
        """The rate limiter's decision for ``client`` and, when admitted, the slot's
        lookup: one round trip for the listing fast path (app/apilimit.py).

        Only while the cache is enabled (``enabled``); a Redis error pauses the cache and
        propagates, so that the limiter falls back to its own buckets."""
        assert self._admit_and_get is not None
        scope, key = _scope(slot.branch), _digest(slot.key)
        try:
            found = await self._run(
                self._admit_and_get,
                [tokenbucket.redis_key(policy, client), f"{_PREFIX}:gen:{scope}"],
                [*policy.micros, f"{_PREFIX}:list:{scope}:", key],
            )
        except RedisError as exc:
            self._pause(exc)
            raise
        decision = tokenbucket.decide(policy, bool(found[0]), found[1], found[2])
        if not decision.admitted:
            return decision, None
        return decision, self._found(scope, key, found[3], found[4], now)

    async def _run(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """One of the lookup scripts, run straight on a pooled connection.

        redis-py's client layers around a command (retries, observability hooks,
        events, the script object's own) cost a cache hit more CPU than all the rest of
        its Python: ~25 % of it, measured in-process. The connection's own methods still
        time out (socket_timeout), disconnect on any error or cancellation and raise
        RedisError; without the client's retries, a failed lookup pauses the cache (and
        the limiter counts in memory) at once. A server that lacks the script (restarted,
        flushed) gets it through the script object, which loads it. With tracing on, the
        client's way: its instrumentation records the Redis span (app/tracing.py)."""
        if tracing.provider() is not None:
            return await script(keys=keys, args=args)
        assert self._redis is not None
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return await connection.read_response()
        except NoScriptError:
            pass  # the connection is fine: the error was the server's answer
        finally:
            await pool.release(connection)
        return await script(keys=keys, args=args)

    @staticmethod
    def _found(
        scope: str, key: str, generation: bytes, stored: bytes | None, now: datetime
    ) -> Lookup:
        body = None
        if stored is not None:
            valid_from, valid_until = _HEADER.unpack_from(stored)
            if valid_from <= now.timestamp() < valid_until:
                body = stored[_HEADER.size :]
        (_LOOKUPS_MISS if body is None else _LOOKUPS_HIT).inc()
        return Lookup(scope, key, generation, body)

    async def read(self, slot: ListingSlot, now: datetime) -> Lookup:
        """The slot's lookup: the one already made for this request, else a new one."""
        if slot.lookup is not None:
            return slot.lookup
        return await self.lookup(branch=slot.branch, query=slot.key, now=now)

    async def keep(
        self,
        slot: ListingSlot,
        lookup: Lookup,
        body: bytes,
        *,
        answer_branch: str | None,
        now: datetime,
        valid_until: datetime | None,
    ) -> None:
        """Keep ``body``, the validated answer about ``answer_branch`` (None: all), for
        the slot, from ``now`` until ``valid_until``.

        Only when the slot's scope is that very branch: "Main " and "Main" may be one
        branch to the route but are two scopes here, and only the branch's own scope is
        invalidated when it changes."""
        if slot.branch != answer_branch:
            return
        await self.store(lookup, body, now=now, valid_until=valid_until)

    async def store(
        self, lookup: Lookup, body: bytes, *, now: datetime, valid_until: datetime | None
    ) -> None:
        """Keep ``body`` as the answer for ``lookup`` from ``now`` until ``valid_until``."""
        if self._redis is None or lookup.generation is None or not self.enabled:
            return
        until = valid_until.timestamp() if valid_until is not None else _FOREVER
        ttl = min(self._ttl, until - now.timestamp())
        if ttl <= 0:
            return
        key = f"{_PREFIX}:list:{lookup.scope}:{lookup.generation.decode()}:{lookup.key}"
        try:
            await self._redis.set(
                key, _HEADER.pack(now.timestamp(), until) + body, px=max(1, int(ttl * 1000))
            )
        except RedisError as exc:
            self._pause(exc)

    async def computed_once(
        self, lookup: Lookup, now: datetime, compute: Callable[[], Awaitable["Computed"]]
    ) -> "Computed":
        """The answer ``lookup`` found missing, computed once in this process for all the
        requests that miss it at the same time (without, every change to a branch sent
        every reader then in flight to PostgreSQL with the same query: a stampede).

        Sharing is sound where storing is: requests that read the same generation may be
        given any answer computed after that read, as the first one's stored answer
        would have been given to the others a moment later. One about the present
        moment is shared only while it is still true; if the computing request fails,
        each waiting one computes its own."""
        if lookup.generation is None:
            return await compute()
        where = (lookup.scope, lookup.generation, lookup.key)
        running = self._computing.get(where)
        if running is not None:
            try:
                shared = await asyncio.shield(running)
            except Exception:  # its request's failure is not this one's
                shared = None
            if shared is not None and (shared.valid_until is None or now < shared.valid_until):
                return shared
            return await compute()
        future: asyncio.Future[Computed] = asyncio.get_running_loop().create_future()
        self._computing[where] = future
        try:
            computed = await compute()
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            future.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            del self._computing[where]
        future.set_result(computed)
        return computed

    def storable(self, lookup: Lookup) -> bool:
        """Whether an answer found missing by ``lookup`` would be stored."""
        return self._redis is not None and lookup.generation is not None and self.enabled

    async def seats_changed(self, branches: set[str]) -> None:
        """Invalidate every answer about these branches (and about all branches).

        Call after the change committed and before answering the client."""
        if self._redis is None or not branches:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for scope in {_ALL, *(_scope(b) for b in branches)}:
                    pipe.set(f"{_PREFIX}:gen:{scope}", uuid.uuid4().hex)
                await pipe.execute()
        except RedisError as exc:
            self._pause(exc)

    def _pause(self, exc: RedisError) -> None:
        if self.enabled:
            log.warning(
                "Redis cache error (%s: %s); reading PostgreSQL for the next %.0f s",
                type(exc).__name__,
                exc,
                self._pause_seconds,
            )
        self._paused_until = time.monotonic() + self._pause_seconds


def _scope(branch: str | None) -> str:
    return _ALL if branch is None else "branch:" + _digest(branch)


@functools.lru_cache(maxsize=4096)  # the same few queries and branches, over and over
def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
