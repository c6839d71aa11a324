"""The outbox (issue 15): messages to send, written in the transaction of their event.

``outbox`` holds one row per message for a channel (``email`` now; ``webhook`` later):
its ``payload`` (jsonb: for e-mail the rendered message), a ``status`` (pending, sent,
dead), the number of ``attempts``, when the next is due (``next_attempt_at``) and the
last error. The delivery job (app/jobs/outbox.py) scans the due pending rows through a
partial index. ``users.email_notifications`` is a student's opt-out of e-mail;
``reservations.reminded_at`` marks a reservation whose reminder was made (so each is
made once), with a partial index for the reminder sweep's scan.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE outbox (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            channel text NOT NULL CHECK (channel IN ('email', 'webhook')),
            payload jsonb NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'dead')),
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at timestamptz NOT NULL,
            created_at timestamptz NOT NULL,
            sent_at timestamptz,
            last_error text
        )
    """)
    # The delivery job's scan: due pending messages of a channel, oldest due first.
    op.execute(
        "CREATE INDEX outbox_due_idx ON outbox (channel, next_attempt_at) WHERE status = 'pending'"
    )
    # Staff's list of dead messages, and the retention sweep of sent ones.
    op.execute("CREATE INDEX outbox_status_created_idx ON outbox (status, created_at)")
    op.execute("ALTER TABLE users ADD COLUMN email_notifications boolean NOT NULL DEFAULT true")
    op.execute("ALTER TABLE reservations ADD COLUMN reminded_at timestamptz")
    op.execute(
        "CREATE INDEX reservations_unreminded_start_idx ON reservations (start_time) "
        "WHERE status = 'CONFIRMED' AND reminded_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS reservations_unreminded_start_idx")
    op.execute("ALTER TABLE reservations DROP COLUMN IF EXISTS reminded_at")
    op.execute("ALTER TABLE users DROP COLUMN IF EXISTS email_notifications")
    op.execute("DROP TABLE IF EXISTS outbox")
