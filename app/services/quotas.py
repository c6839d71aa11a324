"""Branch quotas (api.md, "Policy per branch"): ``max_bookings_per_day`` counts a
student's reservations of the branch starting on one local day, ``max_hours_per_week``
their booked hours of the branch in one ISO week of local time. Checked under the
student's booking lock, so simultaneous bookings never add up past a quota."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.db import quotas as quotas_db
from app.db.pool import Connection
from app.errors import NotFound, QuotaExceeded
from app.schemas.branches import QuotaUse, QuotaUseOut
from app.services import openings
from app.services import rules as rules_service
from app.services.rules import BranchRules
from app.settings import Settings


@dataclass(frozen=True)
class Use:
    """What a student used at a branch on one local day and in its ISO week."""

    day: date
    iso_week: str  # e.g. "2026-W49"
    bookings: int
    hours: float


def has_quotas(rules: BranchRules) -> bool:
    p = rules.policy
    return p.max_bookings_per_day is not None or p.max_hours_per_week is not None


def _day_bounds(rules: BranchRules, day: date) -> tuple[datetime, datetime]:
    zone = rules.schedule.zone
    return (
        openings.local_instant(day, 0, zone),
        openings.local_instant(day, openings.MINUTES_PER_DAY, zone),
    )


def _week_bounds(rules: BranchRules, day: date) -> tuple[datetime, datetime]:
    monday = day - timedelta(days=day.weekday())
    zone = rules.schedule.zone
    return (
        openings.local_instant(monday, 0, zone),
        openings.local_instant(monday + timedelta(days=7), 0, zone),
    )


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


async def use_on(
    conn: Connection,
    rules: BranchRules,
    *,
    user_id: int,
    day: date,
    leave_out: int | None = None,
) -> Use:
    """The student's use on the local ``day`` and in its ISO week (``leave_out``: a
    reservation being changed, counted as the request instead)."""
    bookings, hours = await quotas_db.used(
        conn,
        user_id=user_id,
        branch_id=rules.branch_id,
        day=_day_bounds(rules, day),
        week=_week_bounds(rules, day),
        leave_out=leave_out,
    )
    return Use(day, iso_week(day), bookings, hours)


async def check(
    conn: Connection,
    rules: BranchRules,
    *,
    user_id: int,
    seat_id: int,
    start: datetime,
    end: datetime,
    replacing: int | None = None,
) -> None:
    """409 quota_exceeded if booking [start, end) on the seat (or extending the
    reservation ``replacing`` to it) would put the student over a quota of the branch.

    Call inside the transaction that then writes the booking: it takes the seat's and
    the student's booking locks (app/db/quotas.py), held until COMMIT."""
    refusal = await locked_refusal(
        conn, rules, user_id=user_id, seat_id=seat_id, start=start, end=end, replacing=replacing
    )
    if refusal is not None:
        raise refusal


async def locked_refusal(
    conn: Connection,
    rules: BranchRules,
    *,
    user_id: int,
    seat_id: int,
    start: datetime,
    end: datetime,
    replacing: int | None = None,
) -> QuotaExceeded | None:
    """``check``'s answer as a value: the quota the booking would break, or None."""
    if not has_quotas(rules):
        return None
    await quotas_db.lock_for_booking(conn, seat_id=seat_id, user_id=user_id)
    return await _refusal(conn, rules, user_id=user_id, start=start, end=end, replacing=replacing)


async def _refusal(
    conn: Connection,
    rules: BranchRules,
    *,
    user_id: int,
    start: datetime,
    end: datetime,
    replacing: int | None = None,
) -> QuotaExceeded | None:
    """The quota the booking would break, or None (the caller holds the locks)."""
    p = rules.policy
    zone = rules.schedule.zone
    first_day = openings.local_date(start, zone)
    if p.max_bookings_per_day is not None:
        use = await use_on(conn, rules, user_id=user_id, day=first_day, leave_out=replacing)
        if use.bookings + 1 > p.max_bookings_per_day:
            return QuotaExceeded(
                f"You have {use.bookings} of {p.max_bookings_per_day} bookings at "
                f"{rules.branch} on {first_day.isoformat()}",
                quota="max_bookings_per_day",
                limit=p.max_bookings_per_day,
                used=use.bookings,
            )
    if p.max_hours_per_week is not None:
        # Each ISO week the interval touches (Sunday night into Monday touches two).
        day = first_day
        last_day = openings.local_date(end - timedelta(microseconds=1), zone)
        while day <= last_day:
            week_start, week_end = _week_bounds(rules, day)
            use = await use_on(conn, rules, user_id=user_id, day=day, leave_out=replacing)
            asked = (min(end, week_end) - max(start, week_start)).total_seconds() / 3600
            if use.hours + asked > p.max_hours_per_week + 1e-9:
                return QuotaExceeded(
                    f"You have booked {use.hours:g} of {p.max_hours_per_week:g} hours at "
                    f"{rules.branch} in week {use.iso_week}; this would add {asked:g}",
                    quota="max_hours_per_week",
                    limit=p.max_hours_per_week,
                    used=round(use.hours, 4),
                )
            day = openings.local_date(week_end, zone)
    return None


async def my_use(
    conn: Connection,
    settings: Settings,
    *,
    user_id: int,
    branch_id: int,
    day: date | None,
    now: datetime,
) -> QuotaUseOut:
    """The student's use of the branch's quotas on ``day`` (default: today there)."""
    rules = await rules_service.for_branch(conn, settings, branch_id, now=now)
    if rules is None:
        raise NotFound("No such branch")
    day = day or openings.local_date(now, rules.schedule.zone)
    use = await use_on(conn, rules, user_id=user_id, day=day)
    return QuotaUseOut(
        branch_id=branch_id,
        date=day,
        iso_week=use.iso_week,
        bookings_per_day=QuotaUse(limit=rules.policy.max_bookings_per_day, used=use.bookings),
        hours_per_week=QuotaUse(limit=rules.policy.max_hours_per_week, used=round(use.hours, 4)),
    )
