"""Audit log: every staff change, who made it, when, and the row before and after.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE audit_log (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            actor_id   bigint NOT NULL REFERENCES users (id),
            action     text NOT NULL,
            entity     text NOT NULL,
            entity_id  bigint NOT NULL,
            before     jsonb,
            after      jsonb,
            created_at timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC, id DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_log")
