"""SQL for a user's own settings (PATCH /auth/me): e-mail address, name, e-mail opt-out."""

from app.db.pool import Connection
from app.models import User

# $2: whether to set the e-mail ($3, NULL clears it); $4, $5: NULL keeps the value.
_UPDATE = """
    UPDATE users SET
        email = CASE WHEN $2::boolean THEN $3::text ELSE email END,
        name = coalesce($4::text, name),
        email_notifications = coalesce($5::boolean, email_notifications)
    WHERE id = $1
    RETURNING id, student_id, name, email, role, created_at, email_notifications
"""


async def update(
    conn: Connection,
    user_id: int,
    *,
    set_email: bool,
    email: str | None,
    name: str | None,
    email_notifications: bool | None,
) -> tuple[User, bool] | None:
    """The user after the change, with their ``email_notifications``; None if no such user."""
    row = await conn.fetchrow(_UPDATE, user_id, set_email, email, name, email_notifications)
    if row is None:
        return None
    data = dict(row)
    notifications = data.pop("email_notifications")
    return User.model_validate(data), notifications


_EMAIL_NOTIFICATIONS = "SELECT email_notifications FROM users WHERE id = $1"


async def email_notifications(conn: Connection, user_id: int) -> bool:
    """Whether the user gets e-mail (False for a user that no longer exists)."""
    return bool(await conn.fetchval(_EMAIL_NOTIFICATIONS, user_id))
