"""Who may read whose data: the one rule, used by every service that needs it."""

from app.db import users as users_db
from app.db.pool import Connection
from app.errors import NotFound
from app.models import TokenUser


async def check_may_read_user(conn: Connection, *, caller: TokenUser, user_id: int) -> None:
    """Own data, or an admin reading an existing user's; anything else looks missing (404)."""
    if user_id == caller.id:
        return
    if not caller.is_admin or await users_db.get(conn, user_id) is None:
        raise NotFound("No such user")
