"""Seat suggestions: "find me a seat now" (GET /seats/suggest).

Hours come from app/services/branches.py (``schedules``) and app/services/openings.py;
the ranking is done by PostgreSQL (app/db/suggest.py) in the common case, so a request
costs two round trips (the schedules, then the seats). Only when no seat is free for the
whole interval does the fallback look for the earliest time today at which one frees up,
in Python over the day's reservations of the branches' ACTIVE seats.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from app.db import suggest as suggest_db
from app.db.pool import Connection
from app.errors import InvalidInterval
from app.schemas.suggest import SuggestionList, SuggestionOut, SuggestQuery
from app.services import openings, policy, rules
from app.services.branches import Schedule, schedules
from app.settings import Settings

HABITS_DAYS = 90
# How far past the interval's end ``free_until`` is looked for; beyond it, null.
LOOK_AHEAD = timedelta(hours=24)
MIN_DURATION_MINUTES = 15


@dataclass(frozen=True)
class _Pick:
    row: dict[str, Any]
    start: datetime
    end: datetime
    free_until: datetime | None
    at_closing: bool
    score: float
    frees_up: bool  # a fallback time, later than asked


async def suggest(
    conn: Connection,
    settings: Settings,
    query: SuggestQuery,
    *,
    user_id: int | None,
    now: datetime,
) -> SuggestionList:
    """The best free seats for [start, start + duration); when none is free for all of
    it, the earliest times today (the branch's local day of ``start``) at which one is."""
    max_minutes = settings.MAX_RESERVATION_HOURS * 60
    if not MIN_DURATION_MINUTES <= query.duration_minutes <= max_minutes:
        raise InvalidInterval(
            f"duration_minutes must be {MIN_DURATION_MINUTES} to {max_minutes:g} "
            f"(MAX_RESERVATION_HOURS is {settings.MAX_RESERVATION_HOURS:g})"
        )
    start = query.start_time or now
    duration = timedelta(minutes=query.duration_minutes)
    end = start + duration
    # The global rules here; a branch's own policy (shorter maximum, nearer horizon)
    # leaves its seats out in app/db/suggest.py.
    rules.check_start(policy.global_policy(settings), start, now)

    found = await schedules(conn, now=now)
    ask = _ask(query, user_id=user_id, now=now, start=start, end=end, look_ahead=end + LOOK_AHEAD)
    opened: dict[int, datetime | None] = {}
    for branch_id, schedule in found.items():
        if schedule.opening(start, end):
            opened[branch_id] = _closing(schedule, start, ask.look_ahead)
    picks: list[_Pick] = []
    if opened:
        rows = await suggest_db.free_seats(
            conn,
            _with_branches(ask, opened),
            limit=query.limit,
        )
        picks = [
            _Pick(
                row,
                start,
                end,
                row["free_until"],
                bool(row["at_closing"]),
                float(row["score"]),
                frees_up=False,
            )
            for row in rows
        ]
    if not picks:
        picks = await _later_today(conn, query, ask, found, duration)
    return SuggestionList(items=[_out(p, query, found[p.row["branch_id"]]) for p in picks])


def _ask(
    query: SuggestQuery,
    *,
    user_id: int | None,
    now: datetime,
    start: datetime,
    end: datetime,
    look_ahead: datetime,
) -> suggest_db.Ask:
    return suggest_db.Ask(
        user_id=user_id,
        habits_since=now - timedelta(days=HABITS_DAYS),
        now=now,
        branch_ids=[],
        closes_at=[],
        branch=query.branch,
        duration_hours=query.duration_minutes / 60,
        start=start,
        end=end,
        area=query.area,
        has_power=query.has_power,
        has_monitor=query.has_monitor,
        look_ahead=look_ahead,
    )


def _with_branches(ask: suggest_db.Ask, closing: dict[int, datetime | None]) -> suggest_db.Ask:
    return replace(ask, branch_ids=list(closing), closes_at=list(closing.values()))


def _closing(schedule: Schedule, at: datetime, look_ahead: datetime) -> datetime | None:
    """When the opening holding ``at`` ends (None: not before ``look_ahead``)."""
    # One opening holding the whole look-ahead is the common case (open around the
    # clock) and a cheap question; next_change scans two weeks of hours.
    if schedule.opening(at, look_ahead):
        return None
    change = schedule.next_change(at)
    return change if change is not None and change < look_ahead else None


# --- the fallback: nothing free for the whole interval


async def _later_today(
    conn: Connection,
    query: SuggestQuery,
    ask: suggest_db.Ask,
    found: dict[int, Schedule],
    duration: timedelta,
) -> list[_Pick]:
    start = ask.start
    days: dict[int, date] = {}
    windows: dict[int, list[openings.Interval]] = {}
    for branch_id, schedule in found.items():
        day = schedule.today(start)
        # A day and a night around it: openings running over midnight are seen whole
        # enough to hold any booking (at most MAX_RESERVATION_HOURS) starting today.
        window = openings.openings(
            schedule.weekly,
            schedule.closures,
            schedule.zone,
            day - timedelta(days=1),
            day + timedelta(days=2),
        )
        if any(
            o.end > start and openings.local_date(o.start, schedule.zone) <= day for o in window
        ):
            days[branch_id], windows[branch_id] = day, window
    if not days:
        return []
    day_end = max(
        openings.local_instant(day + timedelta(days=1), 0, found[b].zone) for b, day in days.items()
    )
    look_ahead = day_end + duration + LOOK_AHEAD
    wide = replace(ask, branch_ids=list(days), closes_at=[None] * len(days), look_ahead=look_ahead)
    day_ends = {
        b: openings.local_instant(day + timedelta(days=1), 0, found[b].zone)
        for b, day in days.items()
    }
    found_at: list[tuple[datetime, dict[str, Any], list[tuple[datetime, datetime]]]] = []
    for row in await suggest_db.seats_with_busy(conn, wide):
        branch_id = row["branch_id"]
        busy = list(zip(row["starts"], row["ends"], strict=True))
        at = _earliest_free(start, duration, busy, windows[branch_id], day_ends[branch_id])
        if at is not None:
            found_at.append((at, row, busy))
    # Only the earliest times can make the answer: rank the seats of those (all of the
    # seats at the last time taken, since the rank decides among them).
    found_at.sort(key=lambda item: item[0])
    kept = found_at[: query.limit]
    if kept:
        last = kept[-1][0]
        kept += [item for item in found_at[query.limit :] if item[0] == last]
    picks: list[_Pick] = []
    closings: dict[tuple[int, datetime], datetime | None] = {}
    for at, row, busy in kept:
        key = (row["branch_id"], at)
        if key not in closings:
            closings[key] = _closing(found[key[0]], at, at + duration + LOOK_AHEAD)
        picks.append(_later_pick(row, at, duration, busy, closings[key]))
    picks.sort(key=lambda p: (p.start, -p.score, p.row["id"]))
    return picks[: query.limit]


def _earliest_free(
    start: datetime,
    duration: timedelta,
    busy: Sequence[tuple[datetime, datetime]],
    window: Sequence[openings.Interval],
    day_end: datetime,
) -> datetime | None:
    """The first instant in [start, day_end) (the rest of the branch's local day) at which
    the seat is free and its branch open for ``duration``: the asked start, an opening or
    a reservation's end (a free stretch can begin nowhere else)."""
    candidates = {start}
    candidates.update(o.start for o in window if start < o.start < day_end)
    candidates.update(e for _, e in busy if start < e < day_end)
    for at in sorted(candidates):
        until = at + duration
        inside = any(o.start <= at and until <= o.end for o in window)
        if inside and not any(s < until and at < e for s, e in busy):
            return at
    return None


def _later_pick(
    row: dict[str, Any],
    at: datetime,
    duration: timedelta,
    busy: Sequence[tuple[datetime, datetime]],
    closes_at: datetime | None,
) -> _Pick:
    end = at + duration
    look_ahead = end + LOOK_AHEAD
    next_start = min((s for s, _ in busy if s >= end), default=None)
    ends = [t for t in (next_start, closes_at) if t is not None and t < look_ahead]
    free_until = min(ends, default=None)
    # The same rank as app/db/suggest.py's _SCORE, for the rows the fallback finds.
    free_after = (free_until or look_ahead) - end
    score = (
        1000 * row["matches"]
        + 10 * (free_after // timedelta(minutes=30))
        + 2 * row["usual_branch"]
        + row["usual_area"]
    )
    at_closing = free_until is not None and free_until == closes_at
    return _Pick(row, at, end, free_until, at_closing, float(score), frees_up=True)


# --- the answer


def _out(pick: _Pick, query: SuggestQuery, schedule: Schedule) -> SuggestionOut:
    row = pick.row
    seat = {key: row[key] for key in ("id", "branch", "area", "label", "has_power", "has_monitor")}
    return SuggestionOut.model_validate(
        {
            "seat": {**seat, "status": row["status"], "available": True, "state": "free"},
            "start_time": pick.start,
            "end_time": pick.end,
            "free_until": pick.free_until,
            "score": pick.score,
            "reasons": _reasons(pick, query, schedule),
        }
    )


def _clock(at: datetime, schedule: Schedule, day: date) -> str:
    """``18:00`` on the branch's clock, with the weekday when not on ``day``."""
    local = at.astimezone(schedule.zone)
    return local.strftime("%H:%M" if local.date() == day else "%a %H:%M")


def _reasons(pick: _Pick, query: SuggestQuery, schedule: Schedule) -> list[str]:
    row = pick.row
    day = schedule.today(pick.start)
    reasons: list[str] = []
    if pick.frees_up:
        reasons.append(
            f"Nothing is free sooner: this seat is free from {_clock(pick.start, schedule, day)}"
        )
    if query.has_power is not None and row["has_power"] == query.has_power:
        reasons.append("Has a power socket" if query.has_power else "No power socket, as asked")
    if query.has_monitor is not None and row["has_monitor"] == query.has_monitor:
        reasons.append("Has a monitor" if query.has_monitor else "No monitor, as asked")
    if row["usual_area"]:
        reasons.append(f"In {row['area']}, where you usually sit")
    elif query.area is not None and row["area"] == query.area:
        reasons.append(f"In {row['area']}, as asked")
    if row["usual_branch"]:
        reasons.append(f"At {row['branch']}, where you book most often")
    if pick.free_until is None:
        reasons.append(f"Free for at least {LOOK_AHEAD // timedelta(hours=1)} hours after")
    elif pick.at_closing:
        reasons.append(
            f"Free until {_clock(pick.free_until, schedule, day)}, when the branch closes"
        )
    else:
        reasons.append(f"Free until {_clock(pick.free_until, schedule, day)}")
    return reasons
