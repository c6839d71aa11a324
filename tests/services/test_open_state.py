"""A branch's open state remembered until its next change (app/services/branches.py
``_known_state``): every answer equals the one computed afresh, across a change, for
an earlier instant, and for a schedule that changed in the database."""

from datetime import UTC, datetime, timedelta
from typing import Any

from app.services import branches

DAY = [{"opens": "08:00", "closes": "22:00"}]


def row(hours: dict[str, Any], closures: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": 7, "timezone": "UTC", "hours": hours, "closures": closures or []}


def fresh(r: dict[str, Any], at: datetime) -> tuple[bool, datetime | None]:
    schedule = branches.schedule_from_row(r)
    return schedule.is_open(at), schedule.next_change(at)


def remembered(r: dict[str, Any], at: datetime) -> tuple[bool, datetime | None]:
    known = branches._known_state(r, at)
    return known.is_open, known.until


def test_every_answer_is_the_fresh_one_through_changes_and_back_in_time() -> None:
    r = row(dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "friday"), DAY))
    start = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)  # a Friday, open until 22:00
    moments = [start + timedelta(minutes=37 * n) for n in range(6 * 24 * 60 // 37)]
    for at in [*moments, start - timedelta(days=3), *moments[::-7]]:
        assert remembered(r, at) == fresh(r, at), at


def test_a_changed_schedule_is_not_answered_from_the_old_one() -> None:
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a Monday noon
    open_row = row({"monday": DAY})
    assert remembered(open_row, at) == (True, datetime(2026, 12, 7, 22, 0, tzinfo=UTC))
    closure = {"id": 1, "date_from": "2026-12-07", "date_to": "2026-12-07"}
    closed_row = row({"monday": DAY}, [{**closure, "reason": "works", "open": None}])
    assert remembered(closed_row, at) == fresh(closed_row, at)
    assert remembered(closed_row, at)[0] is False
    assert remembered(row({"monday": DAY}, []), at)[0] is True
