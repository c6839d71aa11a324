"""Staff use cases: the seat map, the desk check-in, statistics. Every change is
audited in the same transaction as the change itself."""

from datetime import datetime
from typing import Any

from app.db import admin as admin_db
from app.db import seats as seats_db
from app.db import users as users_db
from app.db import waitlist as waitlist_db
from app.db.pool import Connection
from app.errors import NotFound
from app.models import (
    NotificationType,
    Reservation,
    ReservationStatus,
    SeatStatus,
    TokenUser,
    WaitlistStatus,
)
from app.realtime.publisher import Publisher
from app.schemas.admin import (
    AdminReservationQuery,
    AuditList,
    AuditOut,
    BranchAdminOut,
    BranchCreate,
    BranchStats,
    HourCount,
    SeatCreate,
    SeatPatch,
    StatsOut,
    StatsQuery,
    UserBriefOut,
)
from app.schemas.reservations import ReservationList, ReservationOut
from app.schemas.seats import Page, SeatOut
from app.services import branches as branches_service
from app.services import reservations as reservations_service
from app.services import waitlist as waitlist_service
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings

CLOSED_REASONS = {
    SeatStatus.MAINTENANCE: "seat under maintenance",
    SeatStatus.CLOSED: "seat closed by staff",
}


async def create_branch(
    conn: Connection,
    publisher: Publisher,
    *,
    actor: TokenUser,
    data: BranchCreate,
    now: datetime,
) -> BranchAdminOut:

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        branch = await admin_db.insert_branch(
            uow.conn, name=data.name, timezone=data.timezone, now=now
        )
        await _audit(uow.conn, actor, "branch.create", "branch", branch["id"], None, branch, now)
        uow.changes.branches.add(data.name)  # GET /branches lists it at once
        return branch

    return BranchAdminOut.model_validate(await run_unit(conn, publisher, now=now, work=work))


async def create_seat(
    conn: Connection, publisher: Publisher, *, actor: TokenUser, data: SeatCreate, now: datetime
) -> SeatOut:

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        branch_id = await seats_db.branch_id(uow.conn, data.branch)
        if branch_id is None:
            raise NotFound("No such branch")
        seat = await admin_db.insert_seat(
            uow.conn,
            branch_id=branch_id,
            area=data.area,
            label=data.label,
            has_power=data.has_power,
            has_monitor=data.has_monitor,
            now=now,
        )
        await _audit(uow.conn, actor, "seat.create", "seat", seat["id"], None, seat, now)
        uow.changes.branches.add(data.branch)
        return seat

    seat = await run_unit(conn, publisher, now=now, work=work)
    return SeatOut.model_validate({**seat, "available": True})


async def update_seat(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    actor: TokenUser,
    seat_id: int,
    patch: SeatPatch,
    now: datetime,
) -> SeatOut:
    """Edit a seat. Closing it (MAINTENANCE/CLOSED) cancels what it holds from now on and
    withdraws its offers; reopening it offers it to the waitlist. One transaction."""
    edits = patch.model_dump(exclude_unset=True, exclude_none=True)

    async def work(uow: UnitOfWork) -> SeatOut:
        seat = await admin_db.lock_seat(uow.conn, seat_id)
        if seat is None:
            raise NotFound("No such seat")
        if edits:  # else nothing to change, nothing to audit
            before = seat
            seat = await admin_db.update_seat(uow.conn, seat_id, {**before, **edits}, now=now)
            await _status_changed(uow, settings, before, seat)
            uow.changes.branches.add(seat["branch"])
            uow.changes.seats_now.add(seat_id)
            await _audit(uow.conn, actor, "seat.update", "seat", seat_id, before, seat, now)
            uow.outbox.webhook("seat.updated", **seat)  # webhooks
        closed = await branches_service.closed_branches(uow.conn, start=now, end=None, now=now)
        [state] = await seats_db.seat_states(uow.conn, [seat_id], now, closed=closed)
        return SeatOut.model_validate({**seat, "available": state.available})

    return await run_unit(conn, publisher, now=now, work=work)


async def _status_changed(
    uow: UnitOfWork, settings: Settings, before: dict[str, Any], after: dict[str, Any]
) -> None:
    old_status, new_status = SeatStatus(before["status"]), SeatStatus(after["status"])
    if old_status is SeatStatus.ACTIVE and new_status is not SeatStatus.ACTIVE:
        await _close(uow, after["id"], reason=CLOSED_REASONS[new_status])
    elif old_status is not SeatStatus.ACTIVE and new_status is SeatStatus.ACTIVE:
        # Reopened: every waiting interval from now on may fit.
        await waitlist_service.offer_released(
            uow,
            settings,
            seat_id=after["id"],
            branch_id=after["branch_id"],
            branch=after["branch"],
            start=uow.now,
            end=uow.now + settings.booking_horizon + settings.max_reservation,
        )


async def _close(uow: UnitOfWork, seat_id: int, *, reason: str) -> None:
    """Cancel the seat's active reservations that have not ended (owners told why);
    offers on it go back to WAITING at their old place in the queue."""
    held = await admin_db.active_on_seat(uow.conn, seat_id, now=uow.now)
    await cancel_for_staff(uow, held, reason=reason)


async def cancel_for_staff(uow: UnitOfWork, held: list[Reservation], *, reason: str) -> None:
    """Cancel these locked active reservations as a seat closing does: owners told why,
    offers back to WAITING at their old place in the queue."""
    conn, now = uow.conn, uow.now
    await admin_db.cancel_for_staff(conn, [r.id for r in held], now=now, reason=reason)
    for r in held:
        if r.status is ReservationStatus.HELD:
            await waitlist_db.settle_offer(conn, r.id, status=WaitlistStatus.WAITING, now=now)
        uow.notify(
            r.user_id,
            NotificationType.RESERVATION_CANCELLED,
            reservation_id=r.id,
            seat_id=r.seat_id,
            reason=reason,
        )


async def check_in(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    actor: TokenUser,
    reservation_id: int,
    now: datetime,
) -> ReservationOut:
    """Staff check-in at the desk: the student's window rules, anyone's reservation."""

    async def work(uow: UnitOfWork) -> Reservation:
        reservation = await reservations_service.checked_in(
            uow, settings, reservation_id, owner_id=None
        )
        await _audit(
            uow.conn, actor, "reservation.checkin", "reservation", reservation.id,
            {"status": ReservationStatus.CONFIRMED.value}, _brief(reservation), now,
        )  # fmt: skip
        return reservation

    reservation = await run_unit(conn, publisher, now=now, work=work)
    return reservations_service.to_out(reservation, settings)


async def stats(conn: Connection, query: StatsQuery) -> StatsOut:
    if query.branch is not None and await seats_db.branch_id(conn, query.branch) is None:
        raise NotFound("No such branch")
    start, end, branch = query.start_time, query.end_time, query.branch
    rows = await admin_db.stats(conn, start=start, end=end, branch=branch)
    hours = await admin_db.stats_by_hour(conn, start=start, end=end, branch=branch)
    return StatsOut(
        start_time=query.start_time,
        end_time=query.end_time,
        branches=[_branch_stats(row, hours[row["branch"]]) for row in rows],
    )


async def find_user(conn: Connection, student_id: str) -> UserBriefOut:
    """The desk's look-up: who holds this student ID."""
    user = await users_db.get_by_student_id(conn, student_id)
    if user is None:
        raise NotFound("No user with that student ID")
    return UserBriefOut.model_validate(user.model_dump())


def _branch_stats(row: dict[str, Any], by_hour: list[dict[str, int]]) -> BranchStats:
    attended = row["checked_in"] + row["no_shows"]
    open_seconds = float(row["open_seconds"])
    utilization = float(row["used_seconds"]) / open_seconds if open_seconds > 0 else 0.0
    return BranchStats(
        branch=row["branch"],
        reservations=row["reservations"],
        checked_in=row["checked_in"],
        no_shows=row["no_shows"],
        no_show_rate=row["no_shows"] / attended if attended else 0.0,
        cancelled=row["cancelled"],
        # Seats closed since count as booked-but-not-open hours; never report over 100 %.
        utilization=min(1.0, utilization),
        by_hour=[HourCount.model_validate(h) for h in by_hour],
    )


def _brief(r: Reservation) -> dict[str, Any]:
    return {"status": r.status.value, "checked_in_at": r.checked_in_at, "user_id": r.user_id}


async def _audit(
    conn: Connection,
    actor: TokenUser,
    action: str,
    entity: str,
    entity_id: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
) -> None:
    await admin_db.audit(
        conn,
        actor_id=actor.id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=before,
        after=after,
        now=now,
    )


async def list_reservations(
    conn: Connection, settings: Settings, query: AdminReservationQuery
) -> ReservationList:
    rows, total = await admin_db.list_reservations(
        conn,
        seat_id=query.seat_id,
        user_id=query.user_id,
        status=query.status,
        start=query.start_time,
        end=query.end_time,
        limit=query.limit,
        offset=query.offset,
    )
    return ReservationList(
        items=[reservations_service.to_out(r, settings) for r in rows], total=total
    )


async def list_audit(conn: Connection, page: Page) -> AuditList:
    rows, total = await admin_db.list_audit(conn, limit=page.limit, offset=page.offset)
    return AuditList(items=[AuditOut.model_validate(row) for row in rows], total=total)
