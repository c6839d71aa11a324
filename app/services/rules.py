"""The booking rules of a branch, in one place: how long and how far ahead (its policy),
when (its opening hours), and the clock. Bookings, waitlist entries, offers,
extensions, walk-ins and suggestions all ask here."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.db import branches as branches_db
from app.db.pool import Connection
from app.errors import InvalidInterval, OutsideOpeningHours
from app.services import openings, policy
from app.services.branches import Schedule, schedule_from_row
from app.services.openings import Interval
from app.services.policy import Policy
from app.settings import Settings

# A start this far in the past still counts as "now" (clients' clocks drift).
CLOCK_SKEW = timedelta(seconds=60)


@dataclass(frozen=True)
class BranchRules:
    """What decides whether an interval can be booked at one branch."""

    branch_id: int
    branch: str
    schedule: Schedule
    policy: Policy
    version: int  # branches.rules_version when read (migration 0006)

    def opening(self, start: datetime, end: datetime) -> Interval | None:
        """The one opening holding all of [start, end), or None."""
        return self.schedule.opening(start, end)

    def closing_after(self, at: datetime) -> datetime | None:
        """When the opening holding the instant ``at`` ends (None: never, or closed at
        ``at``)."""
        if self.opening(at, at) is None:
            return None
        return self.schedule.next_change(at)


def _since(now: datetime) -> date:
    # Closures ending before this date cannot touch now or later in any zone.
    return now.date() - timedelta(days=2)


async def for_seat(
    conn: Connection, settings: Settings, seat_id: int, *, now: datetime
) -> BranchRules | None:
    """The rules of the seat's branch; None: no such seat."""
    row = await branches_db.rules(conn, since=_since(now), seat_id=seat_id)
    return None if row is None else _rules(settings, row)


async def for_branch(
    conn: Connection, settings: Settings, branch_id: int, *, now: datetime
) -> BranchRules | None:
    """The rules of a branch; None: no such branch."""
    row = await branches_db.rules(conn, since=_since(now), branch_id=branch_id)
    return None if row is None else _rules(settings, row)


class RulesCache:
    """The rules of the branches this process booked at lately, per seat (issue 17): a
    booking judged by them is one statement, the insert, instead of two.

    Never trusted blindly. The insert inserts only if the seat's branch and its rules
    version are still those the booking was judged by (app/db/reservations.py); if not,
    the booking is judged again by the current rules, read here afresh. Every staff
    change of hours, closures or policy bumps the version (app/services/branch_admin.py).
    A refusal by remembered rules is judged again by current ones before it is answered
    (app/services/reservations.py). An entry serves one ``_since`` day only (the
    closures it holds are those ending on or after it), and belongs to one process and
    its settings (the global policy defaults are part of the rules)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._branch_of: dict[int, int] = {}  # seat id -> branch id
        self._rules: dict[int, tuple[date, BranchRules]] = {}  # branch id -> (since, rules)

    def get(self, seat_id: int, *, now: datetime) -> BranchRules | None:
        """The remembered rules of the seat's branch, or None: read them (``fresh``)."""
        branch_id = self._branch_of.get(seat_id)
        entry = None if branch_id is None else self._rules.get(branch_id)
        if entry is None or entry[0] != _since(now):
            return None
        return entry[1]

    async def fresh(self, conn: Connection, seat_id: int, *, now: datetime) -> BranchRules | None:
        """The rules of the seat's branch as they stand, remembered; None: no such seat."""
        since = _since(now)
        row = await branches_db.rules(conn, since=since, seat_id=seat_id)
        if row is None:
            self._branch_of.pop(seat_id, None)
            return None
        current = _rules(self._settings, row)
        known = self._rules.get(current.branch_id)
        if known is None or known[0] != since:
            # Once a branch a day: its seats, so that booking any of them finds the
            # rules here (a seat added later is looked up when first booked).
            for seat in await branches_db.seat_ids(conn, current.branch_id):
                self._branch_of[seat] = current.branch_id
        self._branch_of[seat_id] = current.branch_id
        self._rules[current.branch_id] = (since, current)
        return current


def _rules(settings: Settings, row: dict[str, object]) -> BranchRules:
    return BranchRules(
        branch_id=int(str(row["id"])),
        branch=str(row["name"]),
        schedule=schedule_from_row(row),
        policy=policy.effective(settings, row),
        version=int(str(row["rules_version"])),
    )


def check_interval(rules: BranchRules, start: datetime, end: datetime, now: datetime) -> None:
    """Every rule for a new booking (or waitlist entry) of [start, end) at the branch:
    not in the past, not too long, not too far ahead (422 invalid_interval), inside one
    opening (422 outside_opening_hours). "End after start" is the schemas' rule
    (app/schemas/common.py ordered_interval), checked before a request gets here."""
    check_start(rules.policy, start, now)
    check_length(rules, start, end)
    check_within_hours(rules, start, end)


def check_start(policy: Policy, start: datetime, now: datetime) -> None:
    """Not in the past (beyond the clock skew), not beyond the booking horizon."""
    if start < now - CLOCK_SKEW:
        raise InvalidInterval("start_time is in the past")
    if start > now + policy.booking_horizon:
        raise InvalidInterval(
            f"start_time must be within {policy.booking_horizon_days:g} days from now"
        )


def check_length(rules: BranchRules, start: datetime, end: datetime) -> None:
    if end - start > rules.policy.max_reservation:
        raise InvalidInterval(
            f"a reservation lasts at most {rules.policy.max_reservation_hours:g} hours"
        )


def check_within_hours(rules: BranchRules, start: datetime, end: datetime) -> None:
    """422 outside_opening_hours unless [start, end) lies inside one opening; the detail
    names the openings of the local day of ``start``."""
    if rules.opening(start, end) is None:
        raise OutsideOpeningHours(
            hours_of_day(rules, openings.local_date(start, rules.schedule.zone))
        )


def hours_of_day(rules: BranchRules, day: date) -> str:
    """A sentence naming one local day's openings, e.g. "Main is open 08:00-22:00 on
    Tuesday 2026-12-01 (Europe/Berlin time)"."""
    s = rules.schedule
    found = openings.day_hours(s.weekly, s.closures, s.zone, day)
    when = f"on {day:%A} {day.isoformat()} ({s.zone.key} time)"
    reason = f" ({found.closure.reason})" if found.closure is not None else ""
    if not found.open:
        return f"The interval is outside opening hours: {rules.branch} is closed {when}{reason}"
    spans = ", ".join(f"{_wall(i.start, day, s)}-{_wall(i.end, day, s)}" for i in found.open)
    return f"The interval is outside opening hours: {rules.branch} is open {spans} {when}{reason}"


def _wall(at: datetime, day: date, schedule: Schedule) -> str:
    local = at.astimezone(schedule.zone)
    return "24:00" if local.date() > day else f"{local:%H:%M}"
