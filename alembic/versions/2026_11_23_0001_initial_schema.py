"""Initial schema: users, branches, seats, reservations, idempotency keys, waitlist, notifications.

Invariants live here, named so the service can map a violation to a domain error
(app/errors.py). Reservation intervals are half-open: tstzrange(start, end, '[)'),
so back-to-back bookings never overlap.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# HELD (a waitlist offer), CONFIRMED and CHECKED_IN hold the seat and the user's time.
_ACTIVE = "status IN ('HELD', 'CONFIRMED', 'CHECKED_IN')"


def upgrade() -> None:
    # btree_gist lets one GiST index combine "same seat" (=) with "ranges overlap" (&&).
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.execute("""
        CREATE TABLE users (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            student_id    text NOT NULL,
            name          text NOT NULL,
            email         text,
            password_hash text NOT NULL,
            role          text NOT NULL DEFAULT 'student',
            created_at    timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT users_student_id_key UNIQUE (student_id),
            CONSTRAINT users_role_check CHECK (role IN ('student', 'admin')),
            CONSTRAINT users_student_id_length CHECK (char_length(student_id) BETWEEN 1 AND 50),
            CONSTRAINT users_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
            CONSTRAINT users_email_length CHECK (char_length(email) <= 254)
        )
    """)

    op.execute("""
        CREATE TABLE branches (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name       text NOT NULL,
            timezone   text NOT NULL DEFAULT 'UTC',
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT branches_name_key UNIQUE (name),
            CONSTRAINT branches_name_length CHECK (char_length(name) BETWEEN 1 AND 200)
        )
    """)

    op.execute("""
        CREATE TABLE seats (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            branch_id   bigint NOT NULL REFERENCES branches (id),
            area        text NOT NULL,
            label       text NOT NULL,
            has_power   boolean NOT NULL DEFAULT false,
            has_monitor boolean NOT NULL DEFAULT false,
            status      text NOT NULL DEFAULT 'ACTIVE',
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT seats_branch_label_key UNIQUE (branch_id, label),
            CONSTRAINT seats_status_check CHECK (status IN ('ACTIVE', 'MAINTENANCE', 'CLOSED')),
            CONSTRAINT seats_area_length CHECK (char_length(area) BETWEEN 1 AND 100),
            CONSTRAINT seats_label_length CHECK (char_length(label) BETWEEN 1 AND 50)
        )
    """)
    op.execute("CREATE INDEX seats_branch_area_idx ON seats (branch_id, area)")

    op.execute(f"""
        CREATE TABLE reservations (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id          bigint NOT NULL REFERENCES users (id),
            seat_id          bigint NOT NULL REFERENCES seats (id),
            start_time       timestamptz NOT NULL,
            end_time         timestamptz NOT NULL,
            status           text NOT NULL DEFAULT 'CONFIRMED',
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now(),
            checked_in_at    timestamptz,
            cancelled_at     timestamptz,
            cancel_reason    text,
            offer_expires_at timestamptz,
            CONSTRAINT reservations_time_order CHECK (end_time > start_time),
            CONSTRAINT reservations_status_check CHECK (status IN
                ('HELD', 'CONFIRMED', 'CHECKED_IN', 'COMPLETED', 'CANCELLED', 'NO_SHOW')),
            CONSTRAINT reservations_held_has_deadline
                CHECK (status <> 'HELD' OR offer_expires_at IS NOT NULL),
            -- Nobody can take a seat somebody holds: one active reservation per seat and instant.
            CONSTRAINT reservations_seat_no_overlap EXCLUDE USING gist
                (seat_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&) WHERE ({_ACTIVE}),
            -- Nobody holds two seats at once.
            CONSTRAINT reservations_user_no_overlap EXCLUDE USING gist
                (user_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&) WHERE ({_ACTIVE})
        )
    """)
    # "My reservations", newest first.
    op.execute(
        "CREATE INDEX reservations_user_start_idx ON reservations (user_id, start_time DESC)"
    )
    # Statistics and admin listings select by start time.
    op.execute("CREATE INDEX reservations_start_idx ON reservations (start_time)")
    # Each sweep scans only the rows it may change.
    op.execute(
        "CREATE INDEX reservations_confirmed_start_idx ON reservations (start_time) "
        "WHERE status = 'CONFIRMED'"
    )
    op.execute(
        "CREATE INDEX reservations_checked_in_end_idx ON reservations (end_time) "
        "WHERE status = 'CHECKED_IN'"
    )
    op.execute(
        "CREATE INDEX reservations_held_expiry_idx ON reservations (offer_expires_at) "
        "WHERE status = 'HELD'"
    )
    # Fair use counts a user's recent no-shows.
    op.execute(
        "CREATE INDEX reservations_user_no_show_idx ON reservations (user_id, start_time) "
        "WHERE status = 'NO_SHOW'"
    )

    op.execute("""
        CREATE TABLE idempotency_keys (
            user_id        bigint NOT NULL REFERENCES users (id),
            key            text NOT NULL,
            request_hash   text NOT NULL,
            status_code    integer,  -- NULL while the first request is still running
            reservation_id bigint REFERENCES reservations (id),
            response       jsonb,
            created_at     timestamptz NOT NULL,
            expires_at     timestamptz NOT NULL,
            CONSTRAINT idempotency_keys_pkey PRIMARY KEY (user_id, key),
            CONSTRAINT idempotency_keys_key_length CHECK (char_length(key) BETWEEN 1 AND 255)
        )
    """)
    op.execute("CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at)")

    op.execute("""
        CREATE TABLE waitlist_entries (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id          bigint NOT NULL REFERENCES users (id),
            branch_id        bigint NOT NULL REFERENCES branches (id),
            seat_id          bigint REFERENCES seats (id),  -- NULL: any seat of the branch
            start_time       timestamptz NOT NULL,
            end_time         timestamptz NOT NULL,
            status           text NOT NULL DEFAULT 'WAITING',
            reservation_id   bigint REFERENCES reservations (id),
            offer_expires_at timestamptz,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT waitlist_time_order CHECK (end_time > start_time),
            CONSTRAINT waitlist_status_check CHECK (status IN
                ('WAITING', 'OFFERED', 'CLAIMED', 'EXPIRED', 'CANCELLED')),
            CONSTRAINT waitlist_offer_has_reservation
                CHECK (status <> 'OFFERED' OR reservation_id IS NOT NULL),
            -- One open entry per user, target and moment (0 stands for "branch-level").
            CONSTRAINT waitlist_no_duplicate EXCLUDE USING gist (
                user_id WITH =, branch_id WITH =, (coalesce(seat_id, 0)) WITH =,
                tstzrange(start_time, end_time, '[)') WITH &&
            ) WHERE (status IN ('WAITING', 'OFFERED'))
        )
    """)
    # Queues in creation order: a seat's, and a branch's branch-level entries.
    op.execute(
        "CREATE INDEX waitlist_seat_queue_idx ON waitlist_entries (seat_id, created_at, id) "
        "WHERE status = 'WAITING' AND seat_id IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX waitlist_branch_queue_idx ON waitlist_entries "
        "(branch_id, created_at, id) WHERE status = 'WAITING' AND seat_id IS NULL"
    )
    op.execute("CREATE INDEX waitlist_user_idx ON waitlist_entries (user_id, created_at DESC)")
    op.execute(
        "CREATE INDEX waitlist_reservation_idx ON waitlist_entries (reservation_id) "
        "WHERE reservation_id IS NOT NULL"
    )

    op.execute("""
        CREATE TABLE notifications (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id    bigint NOT NULL REFERENCES users (id),
            type       text NOT NULL,
            data       jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            read_at    timestamptz,
            CONSTRAINT notifications_type_check CHECK (type IN ('waitlist.offer',
                'waitlist.expired', 'reservation.no_show', 'reservation.cancelled',
                'reservation.reminder'))
        )
    """)
    # Newest first per user; SSE replays by id after Last-Event-ID.
    op.execute("CREATE INDEX notifications_user_idx ON notifications (user_id, id DESC)")


def downgrade() -> None:
    # The btree_gist extension stays: other schemas in the database may use it.
    for table in (
        "notifications",
        "waitlist_entries",
        "idempotency_keys",
        "reservations",
        "seats",
        "branches",
        "users",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
