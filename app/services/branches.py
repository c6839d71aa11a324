"""Branches: their schedules (hours, closures, zone), effective policy and day-by-day
hours. Reads only; every rule about hours asks app/services/openings.py."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

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


async def closed_branches(
    conn: Connection, *, start: datetime, end: datetime | None, now: datetime
) -> list[int]:
    """Branches not open for [start, end) (``end`` None: at the instant ``start``)."""
    found = await schedules(conn, now=now)
    if end is None:
        return [i for i, schedule in found.items() if not schedule.is_open(start)]
    return [i for i, schedule in found.items() if schedule.opening(start, end) is None]


@dataclass(frozen=True)
class OpenNow:
    """Every branch at one instant: open or not, and when that next changes (None: for
    good). Computed once per answer; listings, counts and branch items read it."""

    is_open: dict[int, bool]
    next_change: dict[int, datetime | None]

    @property
    def closed(self) -> list[int]:
        return [i for i, is_open in self.is_open.items() if not is_open]

    @property
    def valid_until(self) -> datetime | None:
        """The earliest change of any branch: an answer about now holds until then."""
        return min((c for c in self.next_change.values() if c is not None), default=None)

    def annotate(self, summaries: list[dict[str, Any]]) -> None:
        """Add ``open_now`` and ``next_change_at`` to branch summaries."""
        for summary in summaries:
            summary["open_now"] = self.is_open[summary["id"]]
            summary["next_change_at"] = self.next_change[summary["id"]]


@dataclass(frozen=True)
class _Known:
    """A branch's state computed at ``since``: open or not, until the next change."""

    since: datetime
    is_open: bool
    until: datetime | None  # None: for good

    def holds_at(self, at: datetime) -> bool:
        # No opening starts or ends in (since, until): the state is that of ``since``.
        return self.since <= at and (self.until is None or at < self.until)


# Open states by the schedule as stored (zone, template, closures): every uncached
# listing asks ``open_now``, and walking two weeks of openings for each branch cost
# 1.7 ms of CPU per request on five branches. A changed schedule is another key.
_KNOWN: dict[tuple[object, ...], _Known] = {}
_KNOWN_MAX = 1024


def _schedule_key(row: dict[str, Any]) -> tuple[object, ...]:
    return (row["id"], row["timezone"], orjson.dumps(row["hours"]), orjson.dumps(row["closures"]))


def _known_state(row: dict[str, Any], now: datetime) -> _Known:
    key = _schedule_key(row)
    known = _KNOWN.get(key)
    if known is None or not known.holds_at(now):
        schedule = schedule_from_row(row)
        known = _Known(now, schedule.is_open(now), schedule.next_change(now))
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.clear()
        _KNOWN[key] = known
    return known


async def open_now(conn: Connection, *, now: datetime, branch_id: int | None = None) -> OpenNow:
    rows = await branches_db.schedules(conn, since=_since(now.date()), branch_id=branch_id)
    known = {row["id"]: _known_state(row, now) for row in rows}
    return OpenNow({i: k.is_open for i, k in known.items()}, {i: k.until for i, k in known.items()})


async def schedule_of_seat(conn: Connection, seat_id: int, *, now: datetime) -> Schedule | None:
    """The schedule of the seat's branch; None: no such seat."""
    row = await branches_db.rules(conn, since=_since(now.date()), seat_id=seat_id)
    return None if row is None else schedule_from_row(row)


async def get_branch(
    conn: Connection, settings: Settings, branch_id: int, *, now: datetime
) -> BranchDetailOut:
    """One branch: live counts, hours state, weekly template and effective policy."""
    found = await schedules(conn, now=now)
    summaries = await seats_db.branch_summaries(
        conn, now, branch_id, closed=[i for i, s in found.items() if not s.is_open(now)]
    )
    own_policy = await branches_db.policy(conn, branch_id)
    if not summaries or own_policy is None:
        raise NotFound("No such branch")
    schedule = found[branch_id]
    OpenNow({branch_id: schedule.is_open(now)}, {branch_id: schedule.next_change(now)}).annotate(
        summaries
    )
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
