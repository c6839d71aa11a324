"""Staff changes to branch hours and closures. A change never cancels silently: new
weekly hours list the reservations they no longer hold (cancelled on request); a
closure cancels what it covers. Cancellations go as a seat closing's do
(app/services/admin.py ``cancel_for_staff``); every change is audited in its transaction."""

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.db import admin as admin_db
from app.db import branches as branches_db
from app.db.pool import Connection
from app.errors import NotFound
from app.models import Reservation, TokenUser
from app.realtime.publisher import Publisher
from app.schemas.branches import (
    ClosureCreate,
    ClosureOut,
    HoursChangeOut,
    HoursPut,
    PolicyOut,
    PolicyPut,
)
from app.services import admin as admin_service
from app.services import branches as branches_service
from app.services import openings
from app.services import waitlist as waitlist_service
from app.services.branches import Schedule
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings

HOURS_CHANGED = "opening hours changed"


def _fits(schedule: Schedule, r: Reservation, now: datetime) -> bool:
    # What is left of it: a reservation under way is judged from now on.
    start = max(r.start_time, now)
    return (
        openings.covering_opening(
            schedule.weekly, schedule.closures, schedule.zone, start, r.end_time
        )
        is not None
    )


async def _misfits(uow: UnitOfWork, branch_id: int) -> list[Reservation]:
    """The branch's active reservations that have not ended and no longer fit its hours,
    as they stand in this transaction (locked)."""
    schedule = (await branches_service.schedules(uow.conn, now=uow.now, branch_id=branch_id))[
        branch_id
    ]
    held = await branches_db.active_in_branch(uow.conn, branch_id, now=uow.now)
    return [r for r in held if not _fits(schedule, r, uow.now)]


async def _locked_branch(uow: UnitOfWork, branch_id: int) -> dict[str, Any]:
    # The branch row lock orders hours and closure changes of one branch; the new rules
    # version waits for the bookings under way, so what no longer fits is seen whole, and
    # a booking that read the old rules is judged again by the new ones.
    branch = await branches_db.lock_branch(uow.conn, branch_id)
    if branch is None:
        raise NotFound("No such branch")
    await branches_db.new_rules_version(uow.conn, branch_id)
    return branch


async def set_hours(
    conn: Connection,
    publisher: Publisher,
    *,
    actor: TokenUser,
    branch_id: int,
    data: HoursPut,
    now: datetime,
) -> HoursChangeOut:
    """Replace the weekly template; list (or cancel) what no longer fits."""
    hours = data.weekly.model_dump()

    async def work(uow: UnitOfWork) -> HoursChangeOut:
        branch = await _locked_branch(uow, branch_id)
        await branches_db.set_hours(uow.conn, branch_id, hours)
        conflicts = await _misfits(uow, branch_id)
        if data.cancel_conflicting:
            await admin_service.cancel_for_staff(uow, conflicts, reason=HOURS_CHANGED)
        await admin_db.audit(
            uow.conn, actor_id=actor.id, action="branch.hours", entity="branch",
            entity_id=branch_id, before={"hours": branch["hours"]},
            after={"hours": hours, "cancelled": [r.id for r in conflicts] if
                   data.cancel_conflicting else []},
            now=now,
        )  # fmt: skip
        uow.changes.branches.add(branch["name"])  # open_now and next_change_at move
        return HoursChangeOut.model_validate(
            {
                "branch_id": branch_id,
                "hours": hours,
                "conflicts": [r.id for r in conflicts],
                "conflicting": [_conflict(r) for r in conflicts],
            }
        )

    return await run_unit(conn, publisher, now=now, work=work)


def _conflict(r: Reservation) -> dict[str, Any]:
    seat = {"id": r.seat_id, "branch": r.branch, "area": r.area, "label": r.label}
    return {
        "id": r.id,
        "user_id": r.user_id,
        "seat": seat,
        "start_time": r.start_time,
        "end_time": r.end_time,
        "status": r.status.value,
    }


async def add_closure(
    conn: Connection,
    publisher: Publisher,
    *,
    actor: TokenUser,
    branch_id: int,
    data: ClosureCreate,
    now: datetime,
) -> ClosureOut:
    """Close the branch on local dates (or open it on special hours): whatever no longer
    fits is cancelled, the closure's reason in each owner's notification."""
    special = None if data.open is None else [span.model_dump() for span in data.open]

    async def work(uow: UnitOfWork) -> ClosureOut:
        branch = await _locked_branch(uow, branch_id)
        closure = await branches_db.insert_closure(
            uow.conn, branch_id=branch_id, date_from=data.date_from, date_to=data.date_to,
            reason=data.reason, open_hours=special, now=now,
        )  # fmt: skip
        # Only what the closure covers: the template's own misfits are the hours' business.
        covered = [
            r
            for r in await _misfits(uow, branch_id)
            if _touches(r, branch["timezone"], data.date_from, data.date_to)
        ]
        await admin_service.cancel_for_staff(uow, covered, reason=data.reason)
        out = ClosureOut.model_validate({**closure, "cancelled": [r.id for r in covered]})
        await admin_db.audit(
            uow.conn, actor_id=actor.id, action="closure.create", entity="closure",
            entity_id=out.id, before=None, after=out.model_dump(mode="json"), now=now,
        )  # fmt: skip
        uow.changes.branches.add(branch["name"])
        return out

    return await run_unit(conn, publisher, now=now, work=work)


def _touches(r: Reservation, timezone: str, first: date, last: date) -> bool:
    """Whether the reservation overlaps the local dates [first, last]."""
    zone = ZoneInfo(timezone)
    start = openings.local_instant(first, 0, zone)
    end = openings.local_instant(last, openings.MINUTES_PER_DAY, zone)
    return r.start_time < end and start < r.end_time


async def list_closures(
    conn: Connection, branch_id: int, *, from_date: date | None, to_date: date | None
) -> list[ClosureOut]:
    if await branches_db.policy(conn, branch_id) is None:
        raise NotFound("No such branch")
    rows = await branches_db.list_closures(conn, branch_id, from_date=from_date, to_date=to_date)
    return [ClosureOut.model_validate({**row, "cancelled": []}) for row in rows]


async def delete_closure(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    actor: TokenUser,
    closure_id: int,
    now: datetime,
) -> ClosureOut:
    """Remove a closure: the template decides those dates again. Nothing cancelled is
    rebooked, but the waitlist is offered the time that opens again."""

    async def work(uow: UnitOfWork) -> ClosureOut:
        branch_id = await branches_db.closure_branch(uow.conn, closure_id)
        branch = None if branch_id is None else await _locked_branch(uow, branch_id)
        closure = await branches_db.delete_closure(uow.conn, closure_id)
        if branch is None or closure is None:
            raise NotFound("No such closure")
        out = ClosureOut.model_validate({**closure, "cancelled": []})
        await admin_db.audit(
            uow.conn, actor_id=actor.id, action="closure.delete", entity="closure",
            entity_id=closure_id, before=out.model_dump(mode="json"), after=None, now=now,
        )  # fmt: skip
        uow.changes.branches.add(branch["name"])
        zone = ZoneInfo(branch["timezone"])
        reopened_from = max(now, openings.local_instant(out.date_from, 0, zone))
        reopened_to = openings.local_instant(out.date_to, openings.MINUTES_PER_DAY, zone)
        if reopened_from < reopened_to:
            await waitlist_service.offer_reopened(
                uow, settings, branch_id=out.branch_id, branch=branch["name"],
                start=reopened_from, end=reopened_to,
            )  # fmt: skip
        return out

    return await run_unit(conn, publisher, now=now, work=work)


async def set_policy(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    actor: TokenUser,
    branch_id: int,
    data: PolicyPut,
    now: datetime,
) -> PolicyOut:
    """Change the fields the request names (null: back to the global setting); answer the
    policy now in force. Reservations already made keep their times; the check-in window,
    grace, offers and quotas follow the new values from now on."""
    changes = {name: getattr(data, name) for name in data.model_fields_set}

    async def work(uow: UnitOfWork) -> PolicyOut:
        before = await branches_db.lock_policy(uow.conn, branch_id)
        if before is None:
            raise NotFound("No such branch")
        await branches_db.new_rules_version(uow.conn, branch_id)
        await branches_db.set_policy(uow.conn, branch_id, changes)
        own = {**before, **changes}
        await admin_db.audit(
            uow.conn, actor_id=actor.id, action="branch.policy", entity="branch",
            entity_id=branch_id,
            before={name: before[name] for name in changes}, after=changes, now=now,
        )  # fmt: skip
        uow.changes.branches.add(before["name"])
        return branches_service.effective_policy(settings, own)

    return await run_unit(conn, publisher, now=now, work=work)
