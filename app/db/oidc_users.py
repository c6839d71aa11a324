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

# A new account: a student, or an admin for a member of OIDC_ADMIN_GROUP. An existing
# campus account: name and e-mail from the claims, and with OIDC_ADMIN_GROUP set ($6) the
# role follows the group at every sign-in, both ways. A password account with the same
# student ID is left alone (no row): campus sign-in never enters it, else whoever
# registered a student's ID first, or an operator account named like a campus user, would
# share the account with them.
_UPSERT = """
    INSERT INTO users (student_id, name, email, password_hash, role)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (student_id) DO UPDATE SET
        name = EXCLUDED.name,
        email = COALESCE(EXCLUDED.email, users.email),
        role = CASE WHEN $6 THEN EXCLUDED.role ELSE users.role END
    WHERE users.password_hash = $4
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
) -> User | None:
    """The account of a campus sign-in: created on the first, refreshed on later ones;
    None when the student ID belongs to a password account."""
    row = await conn.fetchrow(
        _UPSERT, student_id, name, email, NO_PASSWORD, role.value, role_from_group
    )
    return None if row is None else User.model_validate(dict(row))
