"""A branch's open state remembered until its next change (app/services/branches.py
``_known_state``): every answer equals the one computed afresh, across a change, for
an earlier instant, and for a schedule that changed in the database; and the next
change it is remembered until is never missed after a long closure."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.services import branches, openings
from app.services.openings import Closure

DAY = [{"opens": "08:00", "closes": "22:00"}]
UTC_ZONE = ZoneInfo("UTC")


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


def test_next_change_after_a_long_closure_of_a_weekly_template_is_found() -> None:
    # Open on Wednesdays only, closed for 0..20 days from various dates: the next change
    # is the first opening edge after ``at`` (a long look at the openings), never None.
    # (It answered None when the closure ended within a week of its look's end.)
    weekly = openings.parse_weekly({"wednesday": DAY})
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    for start in range(-3, 4):
        for length in range(21):
            first = at.date() + timedelta(days=start)
            closure = Closure(first, first + timedelta(days=length), "works")
            long_look = openings.openings(
                weekly, (closure,), UTC_ZONE, at.date(), at.date() + timedelta(days=60)
            )
            expected = min(edge for o in long_look for edge in o if edge > at)
            assert openings.next_change(weekly, (closure,), UTC_ZONE, at) == expected
