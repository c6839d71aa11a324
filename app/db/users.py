"""SQL for users."""

import asyncpg

from app.db.pool import Connection
from app.errors import error_for_constraint
from app.models import Role, User, UserWithPassword

_COLUMNS = "id, student_id, name, email, role, created_at"

_INSERT = f"""
    INSERT INTO users (student_id, name, email, password_hash, role)
    VALUES ($1, $2, $3, $4, $5)
    RETURNING {_COLUMNS}
"""
_GET = f"SELECT {_COLUMNS} FROM users WHERE id = $1"
_GET_BY_STUDENT_ID = f"SELECT {_COLUMNS} FROM users WHERE student_id = $1"
_GET_WITH_PASSWORD = f"SELECT {_COLUMNS}, password_hash FROM users WHERE student_id = $1"


async def insert(
    conn: Connection,
    *,
    student_id: str,
    name: str,
    email: str | None,
    password_hash: str,
    role: Role = Role.STUDENT,
) -> User:
    try:
        row = await conn.fetchrow(_INSERT, student_id, name, email, password_hash, role.value)
    except asyncpg.UniqueViolationError as exc:
        raise error_for_constraint(exc) from exc
    assert row is not None
    return User.model_validate(dict(row))


async def get(conn: Connection, user_id: int) -> User | None:
    row = await conn.fetchrow(_GET, user_id)
    return None if row is None else User.model_validate(dict(row))


async def get_by_student_id(conn: Connection, student_id: str) -> User | None:
    row = await conn.fetchrow(_GET_BY_STUDENT_ID, student_id)
    return None if row is None else User.model_validate(dict(row))


async def get_with_password(conn: Connection, student_id: str) -> UserWithPassword | None:
    row = await conn.fetchrow(_GET_WITH_PASSWORD, student_id)
    return None if row is None else UserWithPassword.model_validate(dict(row))


_UPSERT_ADMIN = """
    INSERT INTO users (student_id, name, password_hash, role) VALUES ($1, $2, $3, 'admin')
    ON CONFLICT (student_id) DO UPDATE SET role = 'admin', password_hash = EXCLUDED.password_hash
    RETURNING id, (xmax = 0) AS created
"""


async def upsert_admin(
    conn: Connection, *, student_id: str, name: str, password_hash: str
) -> tuple[int, bool]:
    """An admin with this password: a new account (True) or an existing one promoted."""
    row = await conn.fetchrow(_UPSERT_ADMIN, student_id, name, password_hash)
    assert row is not None
    return row["id"], row["created"]
