"""Webhooks (issue 15): endpoints, and their deliveries as outbox rows.

``webhook_endpoints`` holds a subscriber: its ``url``, the ``events`` it takes, its
signing ``secret`` (``whsec_`` + base64), whether it is ``active``, since when it has
been failing without a success in between (``failing_since``; 24 hours of that and it
is set inactive, ``disabled_at``). A delivery is an outbox row of channel ``webhook``
(one per endpoint per event, its payload holding the ``webhook-id`` and the event) with
three more columns: its ``endpoint_id`` (deleted with the endpoint), the HTTP status of
its last attempt and when that was.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE webhook_endpoints (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            url text NOT NULL CHECK (length(url) <= 2000),
            events text[] NOT NULL CHECK (cardinality(events) > 0),
            description text,
            secret text NOT NULL,
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL,
            failing_since timestamptz,
            disabled_at timestamptz
        )
    """)
    op.execute("""
        ALTER TABLE outbox
            ADD COLUMN endpoint_id bigint REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            ADD COLUMN last_status_code integer,
            ADD COLUMN last_attempt_at timestamptz
    """)
    # An endpoint's delivery log, newest first (and the cascade on its deletion).
    op.execute(
        "CREATE INDEX outbox_endpoint_idx ON outbox (endpoint_id, id) WHERE endpoint_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS outbox_endpoint_idx")
    op.execute(
        "ALTER TABLE outbox DROP COLUMN IF EXISTS endpoint_id, "
        "DROP COLUMN IF EXISTS last_status_code, DROP COLUMN IF EXISTS last_attempt_at"
    )
    op.execute("DROP TABLE IF EXISTS webhook_endpoints")
