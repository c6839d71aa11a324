"""The reservations table's indexes (issue 17): each is read by a query (listed in
alembic/versions/..._0009_merge_sweep_indexes.py and below), the rest are gone; 0009
goes down and up again."""

import asyncio
from collections.abc import Callable

import asyncpg

from alembic import command
from app.db.migrations import alembic_config, upgrade_to_head

# Index -> what needs it.
NEEDED = {
    "reservations_pkey": "look-ups by id",
    "reservations_seat_no_overlap": "the invariant; a seat's reservations over a time",
    "reservations_user_no_overlap": "the invariant; a user's reservations over a time",
    "reservations_active_range_idx": "the seat listing's busy seats (range only)",
    "reservations_active_start_idx": "next availability change, clock ticks, no-show and "
    "reminder sweeps",
    "reservations_active_end_idx": "next availability change, clock ticks, completion sweep",
    "reservations_start_idx": "staff statistics and reservation listing by start time",
    "reservations_user_start_idx": "a user's reservations, quotas, suggestions",
    "reservations_user_no_show_idx": "fair use: a user's recent no-shows",
    "reservations_held_expiry_idx": "the offer expiry sweep",
}
MERGED = {
    "reservations_confirmed_start_idx",
    "reservations_unreminded_start_idx",
    "reservations_checked_in_end_idx",
}


def _indexes(url: str) -> set[str]:
    async def run() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'reservations'"
            )
            return {row["indexname"] for row in rows}
        finally:
            await conn.close()

    return asyncio.run(run())


def test_reservations_have_exactly_the_needed_indexes_and_0009_reverts(
    fresh_database: Callable[[str], str],
) -> None:
    url = fresh_database("res_idx")
    upgrade_to_head(url)
    assert _indexes(url) == set(NEEDED)

    command.downgrade(alembic_config(url), "0008")
    assert _indexes(url) == set(NEEDED) | MERGED

    upgrade_to_head(url)
    assert _indexes(url) == set(NEEDED)
