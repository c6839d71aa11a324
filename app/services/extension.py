"""Extending a reservation: the owner moves the end of an active reservation later.

One transaction: lock the reservation (after its seat's and owner's booking locks, in
the booking's order), check its state and the rules of its branch for the whole
lengthened interval (app/services/rules.py: policy length, opening hours;
app/services/quotas.py), then one conditional UPDATE of end_time. Taken time is the
exclusion constraints' answer (409 seat_conflict / user_overlap), as for a booking.
The time added, [old end, new end), is published as the seat's change after COMMIT.
Nothing is notified (the owner did it) and nothing audited (student actions are not).
"""

from datetime import datetime

from app.db import extension as extension_db
from app.db.pool import Connection
from app.errors import InvalidInterval, InvalidState, NotFound
from app.models import Reservation, ReservationStatus, TokenUser
from app.realtime.publisher import Publisher
from app.schemas.reservations import ReservationExtend, ReservationOut
from app.services import idempotency as idempotency_service
from app.services import policy, quotas, rules
from app.services.reservations import to_out
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings
from app.timeutil import iso_z

EXTENDABLE = (ReservationStatus.CONFIRMED, ReservationStatus.CHECKED_IN)


async def extend(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    user: TokenUser,
    reservation_id: int,
    data: ReservationExtend,
    now: datetime,
    idempotency_key: str | None = None,
) -> ReservationOut | idempotency_service.Answer:
    """Move the end of the user's reservation to ``data.end_time``; with an
    Idempotency-Key, once per key (the stored answer replayed)."""

    async def extend_it(uow: UnitOfWork) -> ReservationOut:
        reservation = await extended(
            uow, settings, reservation_id, owner_id=user.id, end=data.end_time
        )
        return to_out(reservation, settings)

    if idempotency_key is None:
        return await run_unit(conn, publisher, now=now, work=extend_it)
    return await idempotency_service.run_once(
        conn,
        publisher,
        user_id=user.id,
        key=idempotency_key,
        request_fingerprint=idempotency_service.fingerprint(
            "extend", reservation_id, idempotency_service.as_utc(data.end_time)
        ),
        now=now,
        work=extend_it,
        status_code=200,
    )


async def extended(
    uow: UnitOfWork, settings: Settings, reservation_id: int, *, owner_id: int, end: datetime
) -> Reservation:
    """Inside a unit of work: the owner's reservation, lengthened to ``end``."""
    current = await extension_db.lock_own(uow.conn, reservation_id, user_id=owner_id)
    if current is None:
        raise NotFound("No such reservation")  # someone else's looks like a missing one
    if current.status not in EXTENDABLE:
        raise InvalidState(f"Cannot extend a {current.status} reservation")
    if current.end_time <= uow.now:
        raise InvalidState(f"The reservation ended at {iso_z(current.end_time)}")
    _, deadline = policy.checkin_window(current, settings)
    if current.status == ReservationStatus.CONFIRMED and uow.now > deadline:
        # Not checked in by the deadline: a no-show waiting for the sweep, as cancel says.
        raise InvalidState("The check-in deadline has passed: it counts as a no-show")
    if end <= current.end_time:
        raise InvalidInterval(
            f"end_time must be later than the current end, {iso_z(current.end_time)}"
        )
    await check_rules(uow.conn, settings, current, end=end, now=uow.now)
    reservation = await extension_db.extend(uow.conn, current.id, end=end, now=uow.now)
    if reservation is None:  # the row is locked and was checked: cannot happen
        raise InvalidState("The reservation changed meanwhile; try again")
    # The seat is now busy in [old end, new end) too: listings and streams must hear.
    uow.changes.reservation_changed(
        seat_id=reservation.seat_id,
        branch=reservation.branch,
        start=current.end_time,
        end=reservation.end_time,
        now=uow.now,
    )
    return reservation


async def check_rules(
    conn: Connection, settings: Settings, current: Reservation, *, end: datetime, now: datetime
) -> None:
    """The rules of the reservation's branch for the whole lengthened reservation,
    [start, ``end``): its length (422 invalid_interval), one opening holding all of it
    (422 outside_opening_hours) and the quotas, counting it as [start, ``end``) in place
    of what it was (409 quota_exceeded). The one place an extension asks for them. The
    start may lie in the past (a running reservation), so the booking's "not in the past"
    and horizon rules do not apply. The caller holds the seat's and the owner's booking
    locks (the quotas take them again: they are re-entrant)."""
    branch_rules = await rules.for_seat(conn, settings, current.seat_id, now=now)
    if branch_rules is None:  # a seat with a reservation is never deleted
        raise NotFound("No such seat")
    rules.check_length(branch_rules, current.start_time, end)
    rules.check_within_hours(branch_rules, current.start_time, end)
    await quotas.check(
        conn,
        branch_rules,
        user_id=current.user_id,
        seat_id=current.seat_id,
        start=current.start_time,
        end=end,
        replacing=current.id,
    )
