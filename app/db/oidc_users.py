"""SQL for accounts signed in through OpenID Connect (campus sign-in).

``users.password_hash`` is NOT NULL, so an account created by campus sign-in stores
``NO_PASSWORD``: a bcrypt-shaped string whose checksum ends in "/", which bcrypt never
writes (the last of its 31 checksum characters carries 2 padding bits, always zero). The
password check computes the canonical hash of whatever is typed and compares it with this
one: they can never be equal, so POST /auth/login and /auth/session answer 401
``invalid_credentials`` for every password, in about the usual time, without a special case.
The marker also tells campus accounts from password accounts in the upsert below.
"""

from app.db.pool import Connection
from app.models import Role, User

NO_PASSWORD = "$2b$04$" + "." * 52 + "/"

# A new account: a student, or an admin for a member of OIDC_ADMIN_GROUP.
# An existing campus account ($4 = NO_PASSWORD): name and e-mail from the claims, and with
# OIDC_ADMIN_GROUP set ($6) the role follows the group at every sign-in, both ways.
# An existing password account with the same student ID (the university vouches for it):
# signed in, its name, e-mail and password kept; group membership only ever promotes it
# (its role may have been given by other means, such as ADMIN_PASSWORD).
_UPSERT = """
    INSERT INTO users (student_id, name, email, password_hash, role)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (student_id) DO UPDATE SET
        name = CASE WHEN users.password_hash = $4 THEN EXCLUDED.name ELSE users.name END,
        email = CASE WHEN users.password_hash = $4 THEN COALESCE(EXCLUDED.email, users.email)
                     ELSE users.email END,
        role = CASE
            WHEN NOT $6 THEN users.role
            WHEN EXCLUDED.role = 'admin' THEN 'admin'
            WHEN users.password_hash = $4 THEN EXCLUDED.role
            ELSE users.role
        END
    RETURNING id, student_id, name, email, role, created_at
"""


async def upsert(
    conn: Connection,
    *,
    student_id: str,
    name: str,
    email: str | None,
    role: Role,
    role_from_group: bool,
) -> User:
    """The account of a campus sign-in: created on the first, refreshed on later ones."""
    row = await conn.fetchrow(
        _UPSERT, student_id, name, email, NO_PASSWORD, role.value, role_from_group
    )
    assert row is not None
    return User.model_validate(dict(row))
