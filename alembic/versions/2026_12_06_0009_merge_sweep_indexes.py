"""The sweeps read the active-boundary indexes; three partial indexes fewer (issue 17).

Every booking inserts a CONFIRMED reservation, which went into ten indexes. Three of
them served one sweep each and are covered by an index every booking writes anyway:

- ``reservations_confirmed_start_idx`` (start_time, CONFIRMED): the no-show sweep
  already read ``reservations_active_start_idx`` (active rows that started: the ones
  checked in now, and those due);
- ``reservations_unreminded_start_idx`` (start_time, CONFIRMED not reminded): the
  reminder sweep reads ``reservations_active_start_idx`` over the next lead minutes;
- ``reservations_checked_in_end_idx`` (end_time, CHECKED_IN): the completion sweep
  reads ``reservations_active_end_idx`` (active rows that have ended: the ones due).

``status = 'CONFIRMED'`` (or ``'CHECKED_IN'``) implies the active predicate, so the
planner uses the active indexes for these scans. On the load-test data (300,000
reservations) each sweep stays under 0.1 ms.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS reservations_confirmed_start_idx")
    op.execute("DROP INDEX IF EXISTS reservations_unreminded_start_idx")
    op.execute("DROP INDEX IF EXISTS reservations_checked_in_end_idx")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX reservations_confirmed_start_idx ON reservations (start_time) "
        "WHERE status = 'CONFIRMED'"
    )
    op.execute(
        "CREATE INDEX reservations_unreminded_start_idx ON reservations (start_time) "
        "WHERE status = 'CONFIRMED' AND reminded_at IS NULL"
    )
    op.execute(
        "CREATE INDEX reservations_checked_in_end_idx ON reservations (end_time) "
        "WHERE status = 'CHECKED_IN'"
    )
