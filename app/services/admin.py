"""Staff use cases: the seat map, the desk check-in, statistics. Every change is
audited in the same transaction as the change itself."""

from datetime import datetime
from typing import Any

from app.db import admin as admin_db
from app.db import reservations as reservations_db
from app.db import seats as seats_db
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
from app.realtime.events import Changes
from app.realtime.publisher import Publisher
from app.schemas.admin import (
    AdminReservationQuery,
    AuditList,
    AuditOut,
    BranchAdminOut,
    BranchCreate,
    BranchStats,
    SeatCreate,
    SeatPatch,
    StatsOut,
    StatsQuery,
)
from app.schemas.reservations import ReservationList, ReservationOut
from app.schemas.seats import Page, SeatOut
from app.services import reservations as reservations_service
from app.services import waitlist as waitlist_service
from app.services.notify import Outbox
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
    async with conn.transaction():
        branch = await admin_db.insert_branch(conn, name=data.name, timezone=data.timezone, now=now)
        await _audit(conn, actor, "branch.create", "branch", branch["id"], None, branch, now)
    await publisher.publish(Changes(branches={data.name}))  # GET /branches lists it at once
    return BranchAdminOut.model_validate(branch)


async def create_seat(
    conn: Connection, publisher: Publisher, *, actor: TokenUser, data: SeatCreate, now: datetime
) -> SeatOut:
    async with conn.transaction():
        branch_id = await seats_db.branch_id(conn, data.branch)
        if branch_id is None:
            raise NotFound("No such branch")
        seat = await admin_db.insert_seat(
            conn,
            branch_id=branch_id,
            area=data.area,
            label=data.label,
            has_power=data.has_power,
            has_monitor=data.has_monitor,
            now=now,
        )
        await _audit(conn, actor, "seat.create", "seat", seat["id"], None, seat, now)
    outbox = Outbox()
    outbox.changes.branches.add(data.branch)
    await publisher.publish(outbox.changes)
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

    async def attempt() -> tuple[dict[str, Any], bool, Changes]:
        outbox = Outbox()
        async with conn.transaction():
            before = await admin_db.lock_seat(conn, seat_id)
            if before is None:
                raise NotFound("No such seat")
            if not edits:  # nothing to change, nothing to audit
                outbox.changes.seats_now.add(seat_id)
                changes = await outbox.flush(conn, now=now)
                return before, changes.seat_states[0].available, Changes()
            after = await admin_db.update_seat(conn, seat_id, {**before, **edits}, now=now)
            await _status_changed(conn, settings, outbox, before, after, now=now)
            outbox.changes.branches.add(after["branch"])
            outbox.changes.seats_now.add(seat_id)
            await _audit(conn, actor, "seat.update", "seat", seat_id, before, after, now)
            changes = await outbox.flush(conn, now=now)
            state = next(s for s in changes.seat_states if s.seat_id == seat_id)
            return after, state.available, changes

    seat, available, changes = await retry_deadlocks(attempt)
    await publisher.publish(changes)
    return SeatOut.model_validate({**seat, "available": available})


async def _status_changed(
    conn: Connection,
    settings: Settings,
    outbox: Outbox,
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    now: datetime,
) -> None:
    old_status, new_status = SeatStatus(before["status"]), SeatStatus(after["status"])
    if old_status is SeatStatus.ACTIVE and new_status is not SeatStatus.ACTIVE:
        await _close(conn, outbox, after["id"], reason=CLOSED_REASONS[new_status], now=now)
    elif old_status is not SeatStatus.ACTIVE and new_status is SeatStatus.ACTIVE:
        # Reopened: every waiting interval from now on may fit.
        await waitlist_service.offer_released(
            conn,
            settings,
            outbox,
            seat_id=after["id"],
            branch_id=after["branch_id"],
            branch=after["branch"],
            start=now,
            end=now + settings.booking_horizon + settings.max_reservation,
            now=now,
        )


async def _close(
    conn: Connection, outbox: Outbox, seat_id: int, *, reason: str, now: datetime
) -> None:
    """Cancel the seat's active reservations that have not ended (owners told why);
    offers on it go back to WAITING at their old place in the queue."""
    held = await admin_db.active_on_seat(conn, seat_id, now=now)
    await admin_db.cancel_for_staff(conn, [r.id for r in held], now=now, reason=reason)
    for r in held:
        if r.status is ReservationStatus.HELD:
            await waitlist_db.settle_offer(conn, r.id, status=WaitlistStatus.WAITING, now=now)
        outbox.notify(
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
    async with conn.transaction():
        reservation = await reservations_db.check_in(
            conn,
            reservation_id,
            user_id=None,
            now=now,
            early=settings.checkin_early,
            grace=settings.grace,
        )
        if reservation is None:
            current = await reservations_db.get(conn, reservation_id)
            if current is None:
                raise NotFound("No such reservation")
            raise reservations_service.check_in_refusal(current, settings)
        await _audit(
            conn, actor, "reservation.checkin", "reservation", reservation.id,
            {"status": ReservationStatus.CONFIRMED.value}, _brief(reservation), now,
        )  # fmt: skip
    outbox = Outbox()
    outbox.changes.branches.add(reservation.branch)
    await publisher.publish(outbox.changes)
    return reservations_service.to_out(reservation, settings)


async def stats(conn: Connection, query: StatsQuery) -> StatsOut:
    if query.branch is not None and await seats_db.branch_id(conn, query.branch) is None:
        raise NotFound("No such branch")
    rows = await admin_db.stats(
        conn, start=query.start_time, end=query.end_time, branch=query.branch
    )
    return StatsOut(
        start_time=query.start_time,
        end_time=query.end_time,
        branches=[_branch_stats(row) for row in rows],
    )


def _branch_stats(row: dict[str, Any]) -> BranchStats:
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
