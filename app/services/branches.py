"""Branches: their schedules (hours, closures, zone), effective policy and day-by-day
hours. Reads only; every rule about hours asks app/services/openings.py."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.db import branches as branches_db
from app.db import seats as seats_db
from app.db.pool import Connection
from app.errors import InvalidInterval, NotFound
from app.schemas.branches import (
    BranchDetailOut,
    BranchHoursOut,
    ClosureNote,
    DayHoursOut,
    PolicyOut,
)
from app.schemas.seats import Interval
from app.services import openings, policy
from app.services.openings import Closure, Weekly
from app.services.policy import Policy
from app.settings import Settings

MAX_HOURS_DAYS = 62
DEFAULT_HOURS_DAYS = 7


@dataclass(frozen=True)
class Schedule:
    """What decides when a branch is open."""

    branch_id: int
    zone: ZoneInfo
    weekly: Weekly
    closures: tuple[Closure, ...]

    def is_open(self, at: datetime) -> bool:
        return openings.is_open(self.weekly, self.closures, self.zone, at)

    def next_change(self, after: datetime) -> datetime | None:
        return openings.next_change(self.weekly, self.closures, self.zone, after)

    def opening(self, start: datetime, end: datetime) -> openings.Interval | None:
        """The one opening holding all of [start, end), or None."""
        return openings.covering_opening(self.weekly, self.closures, self.zone, start, end)

    def today(self, now: datetime) -> date:
        return openings.local_date(now, self.zone)


def schedule_from_row(row: dict[str, Any]) -> Schedule:
    closures = tuple(
        Closure(
            date_from=date.fromisoformat(c["date_from"]),
            date_to=date.fromisoformat(c["date_to"]),
            reason=c["reason"],
            open=None if c["open"] is None else openings.parse_spans(c["open"]),
            id=c["id"],
        )
        for c in row["closures"]
    )
    return Schedule(
        branch_id=row["id"],
        zone=ZoneInfo(row["timezone"]),
        weekly=openings.parse_weekly(row["hours"]),
        closures=closures,
    )


def _since(day: date) -> date:
    # Closures that end before this local date cannot touch ``day`` in any zone
    # (UTC-12 to UTC+14 are less than two days apart).
    return day - timedelta(days=2)


async def schedules(
    conn: Connection, *, now: datetime, branch_id: int | None = None
) -> dict[int, Schedule]:
    """Schedules of every branch (or one), with the closures from about today on."""
    rows = await branches_db.schedules(conn, since=_since(now.date()), branch_id=branch_id)
    return {row["id"]: schedule_from_row(row) for row in rows}


@dataclass(frozen=True)
class Closed:
    """The branches not open for an asked time, and until when that answer holds (for an
    answer about now: the next opening or closing of any branch; None: for good)."""

    branch_ids: list[int]
    valid_until: datetime | None


async def closed_branches(
    conn: Connection, *, start: datetime, end: datetime | None, now: datetime
) -> Closed:
    """Branches not open for [start, end) (``end`` None: at the instant ``start``)."""
    found = await schedules(conn, now=now)
    closed = []
    earliest: datetime | None = None
    for branch_id, schedule in found.items():
        if end is None:
            if not schedule.is_open(start):
                closed.append(branch_id)
            change = schedule.next_change(start)
            if change is not None and (earliest is None or change < earliest):
                earliest = change
        elif schedule.opening(start, end) is None:
            closed.append(branch_id)
    return Closed(closed, earliest)


async def schedule_of_seat(conn: Connection, seat_id: int, *, now: datetime) -> Schedule | None:
    """The schedule of the seat's branch; None: no such seat."""
    row = await branches_db.rules(conn, since=_since(now.date()), seat_id=seat_id)
    return None if row is None else schedule_from_row(row)


async def with_opening_state(
    conn: Connection, summaries: list[dict[str, Any]], *, now: datetime
) -> datetime | None:
    """Add ``open_now`` and ``next_change_at`` to branch summaries; answer the earliest
    change (a listing about now stops being true then)."""
    found = await schedules(
        conn, now=now, branch_id=summaries[0]["id"] if len(summaries) == 1 else None
    )
    earliest: datetime | None = None
    for summary in summaries:
        schedule = found[summary["id"]]
        change = schedule.next_change(now)
        summary["open_now"] = schedule.is_open(now)
        summary["next_change_at"] = change
        if change is not None and (earliest is None or change < earliest):
            earliest = change
    return earliest


async def get_branch(
    conn: Connection, settings: Settings, branch_id: int, *, now: datetime
) -> BranchDetailOut:
    """One branch: live counts, hours state, weekly template and effective policy."""
    closed = await closed_branches(conn, start=now, end=None, now=now)
    summaries = await seats_db.branch_summaries(conn, now, branch_id, closed=closed.branch_ids)
    own_policy = await branches_db.policy(conn, branch_id)
    if not summaries or own_policy is None:
        raise NotFound("No such branch")
    await with_opening_state(conn, summaries, now=now)
    schedule = (await schedules(conn, now=now, branch_id=branch_id))[branch_id]
    return BranchDetailOut.model_validate(
        {
            **summaries[0],
            "hours": openings.weekly_json(schedule.weekly),
            "policy": effective_policy(settings, own_policy),
        }
    )


def effective_policy(settings: Settings, own: dict[str, Any]) -> PolicyOut:
    """The branch's values where set, else the global settings (quotas: none)."""
    return PolicyOut.model_validate(policy.effective(settings, own).as_dict())


async def policy_of(conn: Connection, settings: Settings, branch_id: int) -> Policy:
    """The rules in force at a branch (the global ones for an unknown branch)."""
    return policy.effective(settings, await branches_db.policy(conn, branch_id) or {})


async def day_hours(
    conn: Connection,
    branch_id: int,
    from_date: date | None,
    to_date: date | None,
    *,
    now: datetime,
) -> BranchHoursOut:
    """Each local date's openings (UTC instants) and closure, ``from`` to ``to`` inclusive."""
    rows = await branches_db.schedules(
        conn, since=_since(from_date or now.date()), branch_id=branch_id
    )
    if not rows:
        raise NotFound("No such branch")
    schedule = schedule_from_row(rows[0])
    first = from_date or schedule.today(now)
    last = to_date or first + timedelta(days=DEFAULT_HOURS_DAYS - 1)
    if last < first:
        raise InvalidInterval("`to` must not be before `from`")
    if (last - first).days + 1 > MAX_HOURS_DAYS:
        raise InvalidInterval(f"at most {MAX_HOURS_DAYS} days at once")
    days = openings.days(schedule.weekly, schedule.closures, schedule.zone, first, last)
    return BranchHoursOut(
        branch_id=branch_id,
        timezone=schedule.zone.key,
        days=[
            DayHoursOut(
                date=day.date,
                open=[Interval(start_time=i.start, end_time=i.end) for i in day.open],
                closure=None if day.closure is None else ClosureNote(reason=day.closure.reason),
            )
            for day in days
        ],
    )
