"""Indexes for "when does present availability next change?".

The seat-listing cache keeps an answer about *now* only until the next moment a
held, confirmed or checked-in reservation starts or ends. These two partial indexes
make that question two index probes instead of a scan of the whole history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "status IN ('HELD', 'CONFIRMED', 'CHECKED_IN')"


def upgrade() -> None:
    op.execute(
        f"CREATE INDEX reservations_active_start_idx ON reservations (start_time) WHERE {_ACTIVE}"
    )
    op.execute(
        f"CREATE INDEX reservations_active_end_idx ON reservations (end_time) WHERE {_ACTIVE}"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS reservations_active_end_idx")
    op.execute("DROP INDEX IF EXISTS reservations_active_start_idx")
