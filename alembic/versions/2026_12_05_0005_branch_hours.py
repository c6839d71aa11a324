"""Branch hours, closures and policy (issue 13): the weekly template, closures by local
date, and per-branch policy columns (null: the global setting).

``hours`` holds the template as api.md writes it (``{"monday": [{"opens", "closes"}],
...}``); the database only keeps it an object, app/services/openings.py validates the
rest (times, order, overlaps) on the way in. The default is open around the clock, so
existing and new branches keep v1 behaviour until staff set hours.

Closures of one branch never overlap: each local date has at most one, which decides it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ALWAYS_OPEN = (
    "{" + ", ".join(f'"{day}": [{{"opens": "00:00", "closes": "24:00"}}]' for day in _DAYS) + "}"
)


def upgrade() -> None:
    op.execute(f"""
        ALTER TABLE branches
            ADD COLUMN hours jsonb NOT NULL DEFAULT '{_ALWAYS_OPEN}'::jsonb,
            ADD COLUMN max_reservation_hours double precision,
            ADD COLUMN booking_horizon_days double precision,
            ADD COLUMN checkin_early_minutes double precision,
            ADD COLUMN grace_minutes double precision,
            ADD COLUMN claim_minutes double precision,
            ADD COLUMN max_bookings_per_day integer,
            ADD COLUMN max_hours_per_week double precision,
            ADD CONSTRAINT branches_hours_object CHECK (jsonb_typeof(hours) = 'object'),
            ADD CONSTRAINT branches_policy_range CHECK (
                max_reservation_hours > 0 AND booking_horizon_days > 0
                AND checkin_early_minutes >= 0 AND grace_minutes >= 0 AND claim_minutes > 0
                AND max_bookings_per_day >= 0 AND max_hours_per_week >= 0
            )
    """)
    # CHECK passes on NULL: each null policy field simply means "the global setting".
    op.execute("""
        CREATE TABLE branch_closures (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            branch_id  bigint NOT NULL REFERENCES branches (id),
            date_from  date NOT NULL,
            date_to    date NOT NULL,
            reason     text NOT NULL,
            open       jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT branch_closures_dates CHECK (date_to >= date_from),
            CONSTRAINT branch_closures_reason_length CHECK (char_length(reason) BETWEEN 1 AND 200),
            CONSTRAINT branch_closures_open_array CHECK (open IS NULL OR jsonb_typeof(open) = 'array'),
            CONSTRAINT branch_closures_no_overlap EXCLUDE USING gist (
                branch_id WITH =, daterange(date_from, date_to, '[]') WITH &&
            )
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS branch_closures")
    op.execute("""
        ALTER TABLE branches
            DROP CONSTRAINT IF EXISTS branches_policy_range,
            DROP CONSTRAINT IF EXISTS branches_hours_object,
            DROP COLUMN IF EXISTS max_hours_per_week,
            DROP COLUMN IF EXISTS max_bookings_per_day,
            DROP COLUMN IF EXISTS claim_minutes,
            DROP COLUMN IF EXISTS grace_minutes,
            DROP COLUMN IF EXISTS checkin_early_minutes,
            DROP COLUMN IF EXISTS booking_horizon_days,
            DROP COLUMN IF EXISTS max_reservation_hours,
            DROP COLUMN IF EXISTS hours
    """)
