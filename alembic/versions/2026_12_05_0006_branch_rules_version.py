"""A version number for each branch's booking rules (issue 13).

Staff changes to a branch's hours, closures or policy bump ``branches.rules_version``
while holding the booking locks of every seat of the branch. A booking reads the rules
(and their version) before its insert; the insert answers the version as it stands
once the insert holds its seat's lock, read by ``dlsms_rules_version``: a VOLATILE
function takes a fresh snapshot, so it sees a change that committed while the insert
waited. A different version means the rules changed under the booking, which is then
checked again (app/services/reservations.py ``book``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE branches ADD COLUMN rules_version bigint NOT NULL DEFAULT 0")
    op.execute("""
        CREATE FUNCTION dlsms_rules_version(branch bigint) RETURNS bigint
        LANGUAGE sql VOLATILE
        AS 'SELECT rules_version FROM branches WHERE id = branch'
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS dlsms_rules_version(bigint)")
    op.execute("ALTER TABLE branches DROP COLUMN IF EXISTS rules_version")
