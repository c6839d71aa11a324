"""SQL for Idempotency-Key records (scoped to the user, kept for a while).

The first request with a key inserts its row and keeps it locked until it commits
together with the response it stored. A repeat inserting the same key blocks on that
row, so it can only ever read a finished response, never a half-done one."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.db.pool import Connection
from app.errors import error_for_constraint

# A key whose record expired is taken over as new.
_CLAIM = """
    INSERT INTO idempotency_keys AS k (user_id, key, request_hash, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (user_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, status_code = NULL, reservation_id = NULL,
        response = NULL, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
    WHERE k.expires_at <= EXCLUDED.created_at
    RETURNING true
"""
_GET = """
    SELECT request_hash, status_code, response FROM idempotency_keys
    WHERE user_id = $1 AND key = $2
"""
_RECORD = """
    UPDATE idempotency_keys SET status_code = $3, reservation_id = $4, response = $5
    WHERE user_id = $1 AND key = $2
"""
_DELETE_EXPIRED = "DELETE FROM idempotency_keys WHERE expires_at <= $1"


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: dict[str, Any]


async def claim(
    conn: Connection,
    *,
    user_id: int,
    key: str,
    request_hash: str,
    now: datetime,
    expires_at: datetime,
    wait: str,
) -> bool:
    """True when this request owns the key now (new, or the old record had expired).
    Waits up to ``wait`` (a PostgreSQL interval) while another transaction holds the
    same key, then raises ``asyncpg.LockNotAvailableError``. Call in a transaction."""
    await conn.execute(f"SET LOCAL lock_timeout = '{wait}'")
    try:
        owned = bool(await conn.fetchval(_CLAIM, user_id, key, request_hash, now, expires_at))
    except asyncpg.ForeignKeyViolationError as exc:
        raise error_for_constraint(exc) from exc
    await conn.execute("SET LOCAL lock_timeout = 0")  # the work that follows may wait
    return owned


async def get(conn: Connection, *, user_id: int, key: str) -> StoredResponse | None:
    row = await conn.fetchrow(_GET, user_id, key)
    if row is None or row["status_code"] is None:
        return None
    return StoredResponse(row["request_hash"], row["status_code"], row["response"])


async def record(
    conn: Connection,
    *,
    user_id: int,
    key: str,
    status_code: int,
    reservation_id: int | None,
    body: dict[str, Any],
) -> None:
    await conn.execute(_RECORD, user_id, key, status_code, reservation_id, body)


async def delete_expired(conn: Connection, *, now: datetime) -> int:
    """Forget records past their expiry; the number removed."""
    result = await conn.execute(_DELETE_EXPIRED, now)
    return int(result.split()[-1])
