"""SQL for the demo seed. Every statement is safe to run twice."""

from app.db.pool import Connection

_UPSERT_BRANCH = """
    INSERT INTO branches (name, timezone) VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT branches_name_key DO UPDATE SET name = EXCLUDED.name
    RETURNING id
"""
_INSERT_SEAT = """
    INSERT INTO seats (branch_id, area, label, has_power, has_monitor)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT ON CONSTRAINT seats_branch_label_key DO NOTHING
"""
_EXISTING_USERS = "SELECT student_id FROM users WHERE student_id = ANY($1::text[])"
_INSERT_USER = """
    INSERT INTO users (student_id, name, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT ON CONSTRAINT users_student_id_key DO NOTHING
"""
_SET_PASSWORD = "UPDATE users SET password_hash = $2 WHERE student_id = $1"  # noqa: S105


async def upsert_branch(conn: Connection, name: str, timezone: str) -> int:
    branch_id: int = await conn.fetchval(_UPSERT_BRANCH, name, timezone)
    return branch_id


async def insert_seats(
    conn: Connection, branch_id: int, seats: list[tuple[str, str, bool, bool]]
) -> None:
    await conn.executemany(_INSERT_SEAT, [(branch_id, *seat) for seat in seats])


async def existing_student_ids(conn: Connection, student_ids: list[str]) -> set[str]:
    return {row["student_id"] for row in await conn.fetch(_EXISTING_USERS, student_ids)}


async def insert_users(
    conn: Connection, users: list[tuple[str, str, str | None, str, str]]
) -> None:
    await conn.executemany(_INSERT_USER, users)


async def set_password(conn: Connection, student_id: str, password_hash: str) -> None:
    await conn.execute(_SET_PASSWORD, student_id, password_hash)
