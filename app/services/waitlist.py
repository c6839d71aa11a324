"""Waitlist: join, list, leave, claim, and offering released time to the queue.

``release`` and ``offer_released`` run inside the unit of work that releases time on
a seat (cancel, no-show, check-out, expired or withdrawn offer, a seat reopened), so
the release and the offers it makes commit together or not at all.
"""

from datetime import datetime

from app.db import admin as admin_db
from app.db import reservations as reservations_db
from app.db import seats as seats_db
from app.db import waitlist as waitlist_db
from app.db.pool import Connection
from app.errors import (
    InvalidInterval,
    InvalidState,
    NotFound,
    OfferExpired,
    SeatUnavailable,
    SlotAvailable,
    Suspended,
)
from app.models import (
    NotificationType,
    Reservation,
    SeatStatus,
    TokenUser,
    WaitlistEntry,
    WaitlistStatus,
)
from app.realtime.publisher import Publisher
from app.schemas.waitlist import WaitlistJoin
from app.services import fair_use, quotas, rules
from app.services.access import check_may_read_user
from app.services.mail import MailKind
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings

# One release can fill several smaller waiting intervals; this bounds one round.
MAX_OFFERS_PER_RELEASE = 50
DECLINED_REASON = "waitlist offer declined"
EXPIRED_REASON = "waitlist offer expired"


async def join(
    conn: Connection, settings: Settings, *, user_id: int, data: WaitlistJoin, now: datetime
) -> WaitlistEntry:
    until = await fair_use.suspended_until(conn, settings, user_id=user_id, now=now)
    if until is not None:
        raise Suspended(until)
    if data.seat_id is not None:
        seat = await seats_db.seat_ref(conn, data.seat_id)
        if seat is None:
            raise NotFound("No such seat")
        branch_id = int(str(seat["branch_id"]))
    else:
        assert data.branch is not None
        found = await seats_db.branch_id(conn, data.branch)
        if found is None:
            raise NotFound("No such branch")
        branch_id = found
    branch_rules = await rules.for_branch(conn, settings, branch_id, now=now)
    if branch_rules is None:
        raise NotFound("No such branch")
    rules.check_interval(branch_rules, data.start_time, data.end_time, now)
    within = seats_db.interval(data.start_time, data.end_time)
    if await waitlist_db.free_seat_exists(
        conn, seat_id=data.seat_id, branch_id=branch_id, within=within
    ):
        raise SlotAvailable()
    return await waitlist_db.insert(
        conn,
        user_id=user_id,
        branch_id=branch_id,
        seat_id=data.seat_id,
        start=data.start_time,
        end=data.end_time,
        now=now,
    )


async def list_own(
    conn: Connection, *, user_id: int, limit: int, offset: int
) -> tuple[list[WaitlistEntry], int]:
    return await waitlist_db.list_for_user(conn, user_id, limit=limit, offset=offset)


async def list_for_user(
    conn: Connection, *, caller: TokenUser, user_id: int, limit: int, offset: int
) -> tuple[list[WaitlistEntry], int]:
    """The seed documents' route: one's own entries, or anyone's for an admin."""
    await check_may_read_user(conn, caller=caller, user_id=user_id)
    return await list_own(conn, user_id=user_id, limit=limit, offset=offset)


async def leave(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    user_id: int,
    entry_id: int,
    now: datetime,
) -> WaitlistEntry:
    """WAITING or OFFERED -> CANCELLED; a pending offer is withdrawn and passed on."""

    async def work(uow: UnitOfWork) -> WaitlistEntry:
        entry = await waitlist_db.cancel(uow.conn, entry_id, user_id=user_id, now=now)
        if entry is None:
            current = await _own(uow.conn, user_id, entry_id)
            raise InvalidState(f"Cannot leave a {current.status} waitlist entry")
        if entry.reservation_id is not None:
            held = await reservations_db.cancel_held(
                uow.conn, entry.reservation_id, now=now, reason=DECLINED_REASON
            )
            if held is not None:
                await release(uow, settings, held)
        return entry

    return await run_unit(conn, publisher, now=now, work=work)


async def claim(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    user_id: int,
    entry_id: int,
    now: datetime,
) -> tuple[WaitlistEntry, Reservation]:
    """OFFERED (deadline not passed) -> CLAIMED, its HELD reservation -> CONFIRMED."""

    async def work(uow: UnitOfWork) -> tuple[WaitlistEntry, Reservation]:
        entry = await waitlist_db.claim(uow.conn, entry_id, user_id=user_id, now=now)
        if entry is None:
            current = await _own(uow.conn, user_id, entry_id)
            if current.status == WaitlistStatus.OFFERED:
                raise OfferExpired()
            if current.status == WaitlistStatus.EXPIRED:
                raise OfferExpired("The offer expired and went to the next in line")
            raise InvalidState(f"Cannot claim a {current.status} waitlist entry")
        assert entry.reservation_id is not None  # a CHECK holds OFFERED entries to it
        reservation = await reservations_db.confirm_held(uow.conn, entry.reservation_id, now=now)
        if reservation is None:  # the HELD row was withdrawn in the same instant
            raise OfferExpired()
        uow.changes.branches.add(reservation.branch)
        uow.mail(user_id, MailKind.BOOKING_CONFIRMED, reservation_id=reservation.id)  # e-mail
        return entry, reservation

    return await run_unit(conn, publisher, now=now, work=work)


async def release(uow: UnitOfWork, settings: Settings, freed: Reservation) -> None:
    """``freed`` no longer holds its seat from max(start, now) to its end: record the
    change and offer that time to the waiting queue."""
    now = uow.now
    uow.changes.reservation_changed(
        seat_id=freed.seat_id,
        branch=freed.branch,
        start=freed.start_time,
        end=freed.end_time,
        now=now,
    )
    start = max(freed.start_time, now)
    if start < freed.end_time:
        await offer_released(
            uow,
            settings,
            seat_id=freed.seat_id,
            branch_id=freed.branch_id,
            branch=freed.branch,
            start=start,
            end=freed.end_time,
        )


async def offer_reopened(
    uow: UnitOfWork,
    settings: Settings,
    *,
    branch_id: int,
    branch: str,
    start: datetime,
    end: datetime,
) -> None:
    """The branch is open again in [start, end) (a closure removed): offer that time on
    each seat someone waits for, as if it had just been released."""
    within = seats_db.interval(start, end)
    for seat_id in await waitlist_db.seats_wanted(uow.conn, branch_id, within):
        await offer_released(
            uow, settings, seat_id=seat_id, branch_id=branch_id, branch=branch, start=start, end=end
        )


async def offer_released(
    uow: UnitOfWork,
    settings: Settings,
    *,
    seat_id: int,
    branch_id: int,
    branch: str,
    start: datetime,
    end: datetime,
) -> list[int]:
    """Offer [start, end) on the seat: its own queue first, then its branch's, oldest
    first, each entry only if its whole interval is free for the seat and for its owner
    and lies inside one opening of the branch as its hours stand now (never across a
    closing). Answers the ids of the entries offered."""
    conn, now = uow.conn, uow.now
    released = seats_db.interval(start, end)
    tried: list[int] = []
    offered: list[int] = []
    branch_rules = await rules.for_branch(conn, settings, branch_id, now=now)
    if branch_rules is None:
        return offered
    expires_at = now + branch_rules.policy.claim_window
    for _ in range(MAX_OFFERS_PER_RELEASE):
        candidate = await waitlist_db.next_candidate(
            conn, seat_id=seat_id, branch_id=branch_id, released=released, now=now, skip=tried
        )
        if candidate is None:
            break
        tried.append(candidate["id"])
        # An entry whose interval has begun is offered what is left of it, so that the
        # check-in window (timed from the start) is still open when it is claimed.
        held_start = max(candidate["start_time"], now)
        if branch_rules.opening(held_start, candidate["end_time"]) is None:
            continue  # the hours changed since it joined; it waits for a fitting offer
        over_quota = await quotas.locked_refusal(
            conn,
            branch_rules,
            user_id=candidate["user_id"],
            seat_id=seat_id,
            start=held_start,
            end=candidate["end_time"],
        )
        if over_quota is not None:
            continue  # skipped: the offer would put its owner over a quota
        reservation_id = await waitlist_db.insert_held(
            conn,
            user_id=candidate["user_id"],
            seat_id=seat_id,
            start=held_start,
            end=candidate["end_time"],
            expires_at=expires_at,
            now=now,
        )
        if reservation_id is None:  # its owner is busy then, or a booking took part of it
            continue
        await waitlist_db.mark_offered(
            conn, candidate["id"], reservation_id=reservation_id, expires_at=expires_at, now=now
        )
        offered.append(candidate["id"])
        uow.changes.reservation_changed(
            seat_id=seat_id,
            branch=branch,
            start=held_start,
            end=candidate["end_time"],
            now=now,
        )
        uow.notify(
            candidate["user_id"],
            NotificationType.WAITLIST_OFFER,
            entry_id=candidate["id"],
            reservation_id=reservation_id,
            seat_id=seat_id,
            start_time=held_start,
            end_time=candidate["end_time"],
            offer_expires_at=expires_at,
        )
    return offered


async def offer_now(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    actor: TokenUser,
    seat_id: int,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[WaitlistEntry]:
    """Staff: offer the seat's free time in [start, end) to its queues now (the seed's
    NotifyUsers), as if it had just been released; answers the entries offered."""
    if end <= start:
        raise InvalidInterval("end_time must be after start_time")
    if end <= now:
        raise InvalidInterval("the interval has already ended")

    async def work(uow: UnitOfWork) -> list[WaitlistEntry]:
        seat = await seats_db.seat_ref(uow.conn, seat_id)
        if seat is None:
            raise NotFound("No such seat")
        if seat["status"] != SeatStatus.ACTIVE:
            raise SeatUnavailable(f"The seat is {seat['status']}, not open for booking")
        offered = await offer_released(
            uow, settings, seat_id=seat_id, branch_id=int(str(seat["branch_id"])),
            branch=str(seat["branch"]), start=max(start, now), end=end,
        )  # fmt: skip
        entries = [await waitlist_db.get(uow.conn, entry_id) for entry_id in offered]
        await admin_db.audit(
            uow.conn, actor_id=actor.id, action="waitlist.offer", entity="seat",
            entity_id=seat_id, before=None, after={"offered": offered}, now=now,
        )  # fmt: skip
        return [entry for entry in entries if entry is not None]

    return await run_unit(conn, publisher, now=now, work=work)


async def _own(conn: Connection, user_id: int, entry_id: int) -> WaitlistEntry:
    entry = await waitlist_db.get(conn, entry_id)
    if entry is None or entry.user_id != user_id:
        raise NotFound("No such waitlist entry")
    return entry
