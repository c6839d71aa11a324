"""Reservation statuses in SQL, written once.

``ACTIVE`` is the predicate of the two exclusion constraints (a reservation that holds
its seat and its owner's time); tests/db/test_constraints.py checks it against the
constraints' definitions in the database. It is spelled exactly like the partial
indexes' predicate, so the planner can match them.
"""

from app.models import ACTIVE_RESERVATION_STATUSES

_ACTIVE_LIST = ", ".join(f"'{status.value}'" for status in ACTIVE_RESERVATION_STATUSES)

# status IN ('HELD', 'CONFIRMED', 'CHECKED_IN')
ACTIVE = f"status IN ({_ACTIVE_LIST})"


def active(alias: str) -> str:
    """``ACTIVE`` for the reservations row named ``alias`` in the query."""
    return f"{alias}.{ACTIVE}"
