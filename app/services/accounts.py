"""Operator tasks on accounts (the `dlsms create-admin` command)."""

from dataclasses import dataclass

from app.db import users as users_db
from app.db.pool import Connection
from app.security import PasswordHasher


@dataclass(frozen=True)
class AdminAccount:
    id: int
    created: bool  # False: an existing account was promoted and given the new password


async def create_admin(
    conn: Connection, hasher: PasswordHasher, *, student_id: str, name: str, password: str
) -> AdminAccount:
    """Create an admin account, or make an existing account admin with this password."""
    password_hash = await hasher.hash(password)
    user_id, created = await users_db.upsert_admin(
        conn, student_id=student_id, name=name, password_hash=password_hash
    )
    return AdminAccount(id=user_id, created=created)
