"""Reservations: book, list, check in, check out, cancel, calendar export.

Each state change is one conditional UPDATE (app/db/reservations.py); when it changes
nothing, a second read explains why (404, invalid_state, checkin_window). The seat
listing cache is invalidated after the change committed and before the answer goes out.
"""

from datetime import datetime

from app.db import reservations as reservations_db
from app.db import waitlist as waitlist_db
from app.db.pool import Connection
from app.errors import (
    CheckinWindow,
    InvalidInterval,
    InvalidState,
    NotFound,
    OutsideOpeningHours,
    QuotaExceeded,
    SeatUnavailable,
    ServiceUnavailable,
    Suspended,
)
from app.models import Reservation, ReservationStatus, SeatStatus, TokenUser, WaitlistStatus
from app.realtime.events import Changes, SeatState
from app.realtime.publisher import Publisher
from app.schemas.reservations import (
    ReservationCreate,
    ReservationList,
    ReservationOut,
    ReservationQuery,
    SeatRef,
)
from app.services import calendar, fair_use, policy, quotas, rules
from app.services import idempotency as idempotency_service
from app.services import waitlist as waitlist_service
from app.services.access import check_may_read_user
from app.services.mail import MailKind
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings
from app.timeutil import iso_z

SELF_CANCEL_REASON = "cancelled by the user"


def to_out(r: Reservation, settings: Settings) -> ReservationOut:
    opens, deadline = policy.checkin_window(r, settings)
    return ReservationOut(
        id=r.id,
        user_id=r.user_id,
        seat_id=r.seat_id,
        seat=SeatRef(id=r.seat_id, branch=r.branch, area=r.area, label=r.label),
        start_time=r.start_time,
        end_time=r.end_time,
        status=r.status,
        created_at=r.created_at,
        checked_in_at=r.checked_in_at,
        cancelled_at=r.cancelled_at,
        cancel_reason=r.cancel_reason,
        check_in_opens_at=opens,
        check_in_deadline=deadline,
        offer_expires_at=r.offer_expires_at,
    )


async def create(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    user: TokenUser,
    data: ReservationCreate,
    now: datetime,
    rules_cache: rules.RulesCache,
    idempotency_key: str | None = None,
) -> ReservationOut | idempotency_service.Answer:
    """Book a seat; with an Idempotency-Key, once per key (the stored answer replayed).
    ``rules_cache``: the process's remembered branch rules (AppState's ``rules``)."""
    # The rules first: a request they refuse never uses up its key.
    remembered = rules_cache.get(data.seat_id, now=now)
    try:
        branch_rules = remembered or await _current_rules(
            conn, settings, rules_cache, data.seat_id, now=now
        )
        rules.check_interval(branch_rules, data.start_time, data.end_time, now)
    except (InvalidInterval, OutsideOpeningHours):
        if remembered is None:
            raise
        # Refused by remembered rules: only current ones may refuse.
        branch_rules = await _current_rules(conn, settings, rules_cache, data.seat_id, now=now)
        rules.check_interval(branch_rules, data.start_time, data.end_time, now)

    async def book_it(uow: UnitOfWork) -> ReservationOut:
        reservation = await book(
            uow.conn, settings, branch_rules, user_id=user.id, data=data, now=now, cache=rules_cache
        )
        booked(uow.changes, reservation, now=now)
        uow.mail(user.id, MailKind.BOOKING_CONFIRMED, reservation_id=reservation.id)  # e-mail
        return to_out(reservation, settings)

    if idempotency_key is None:
        # One statement, committing by itself: no BEGIN/COMMIT on the hottest path. A
        # quota needs "count, then insert" in one transaction.
        atomic = quotas.has_quotas(branch_rules)
        return await run_unit(conn, publisher, now=now, work=book_it, atomic=atomic)
    return await idempotency_service.run_once(
        conn,
        publisher,
        user_id=user.id,
        key=idempotency_key,
        request_fingerprint=idempotency_service.fingerprint(
            data.seat_id,
            idempotency_service.as_utc(data.start_time),
            idempotency_service.as_utc(data.end_time),
        ),
        now=now,
        work=book_it,
    )


async def _current_rules(
    conn: Connection,
    settings: Settings,
    cache: rules.RulesCache | None,
    seat_id: int,
    *,
    now: datetime,
) -> rules.BranchRules:
    """The seat's branch's rules as they stand (remembered in ``cache`` when given)."""
    if cache is None:
        current = await rules.for_seat(conn, settings, seat_id, now=now)
    else:
        current = await cache.fresh(conn, seat_id, now=now)
    if current is None:
        raise NotFound("No such seat")
    return current


# Staff changing a branch's rules again and again while one booking is judged: each
# change makes the booking read and judge again; it gives up after this many.
RULES_ATTEMPTS = 5


async def book(
    conn: Connection,
    settings: Settings,
    branch_rules: rules.BranchRules,
    *,
    user_id: int,
    data: ReservationCreate,
    now: datetime,
    cache: rules.RulesCache | None = None,
) -> Reservation:
    """Insert a CONFIRMED reservation; the exclusion constraints decide every race. The
    caller checked the interval against ``branch_rules``; the quotas are checked here
    (in a transaction: the caller's, else one of its own).

    The insert checks that the rules are still those (the seat's branch and its rules
    version); if they changed, the booking is judged again by the current ones (read
    through ``cache`` when given, which they refresh) and inserted again. A quota
    refusal is judged again likewise: ``branch_rules`` may be remembered ones."""
    for _ in range(RULES_ATTEMPTS):
        try:
            reservation = await _book_by(
                conn, settings, branch_rules, user_id=user_id, data=data, now=now
            )
        except QuotaExceeded:
            current = await _current_rules(conn, settings, cache, data.seat_id, now=now)
            if (current.branch_id, current.version) == (
                branch_rules.branch_id,
                branch_rules.version,
            ):
                raise
            reservation = None
        else:
            if reservation is not None:
                return reservation
            current = await _current_rules(conn, settings, cache, data.seat_id, now=now)
        rules.check_interval(current, data.start_time, data.end_time, now)
        branch_rules = current
    raise ServiceUnavailable("The branch's booking rules keep changing; try again")


async def _book_by(
    conn: Connection,
    settings: Settings,
    branch_rules: rules.BranchRules,
    *,
    user_id: int,
    data: ReservationCreate,
    now: datetime,
) -> Reservation | None:
    """The booking judged by ``branch_rules``; None: they are no longer the seat's
    branch's current rules (nothing inserted).

    One round trip in the common case: the insert itself checks that the seat is ACTIVE
    and that the user has fewer recent no-shows than a suspension takes. Only when it
    inserts nothing do we look closer (missing seat, closed seat, fair use) and, if the
    no-shows don't amount to a suspension, insert without that guard."""
    if quotas.has_quotas(branch_rules) and not conn.is_in_transaction():
        # Rules that gained quotas since the booking began without a transaction.
        async with conn.transaction():
            return await _book_by(conn, settings, branch_rules, user_id=user_id, data=data, now=now)
    await quotas.check(
        conn,
        branch_rules,
        user_id=user_id,
        seat_id=data.seat_id,
        start=data.start_time,
        end=data.end_time,
    )
    no_shows_after = now - fair_use.lookback(settings)

    async def insert(
        unless_no_shows_since: datetime | None,
    ) -> Reservation | reservations_db.RulesChanged | None:
        return await reservations_db.insert(
            conn,
            user_id=user_id,
            seat_id=data.seat_id,
            start=data.start_time,
            end=data.end_time,
            now=now,
            unless_no_shows_since=unless_no_shows_since,
            # Fewer no-shows than the limit can't amount to a suspension.
            no_show_limit=settings.NO_SHOW_LIMIT,
            judged_by=(branch_rules.branch_id, branch_rules.version),
        )

    inserted = await insert(no_shows_after)
    if isinstance(inserted, reservations_db.RulesChanged):
        return None
    if inserted is not None:
        return inserted
    context = await reservations_db.booking_context(
        conn, data.seat_id, user_id, no_shows_after=no_shows_after, now=now
    )
    if context is None:
        raise NotFound("No such seat")
    suspended_until = fair_use.suspension_end(context.no_show_starts, settings, now)
    if suspended_until is not None:
        raise Suspended(suspended_until)
    if context.seat_status != SeatStatus.ACTIVE:
        raise SeatUnavailable(f"The seat is {context.seat_status}, not open for booking")
    inserted = await insert(None)
    if isinstance(inserted, reservations_db.RulesChanged):
        return None
    if inserted is None:  # staff closed the seat a moment ago
        raise SeatUnavailable("The seat is not open for booking")
    return inserted


def booked(changes: Changes, reservation: Reservation, *, now: datetime) -> None:
    """What a new booking changed (no query: a booked seat is ACTIVE and, if the booking
    covers ``now``, taken)."""
    changes.branches.add(reservation.branch)
    changes.boundaries(reservation.start_time, reservation.end_time, now=now)
    if reservation.start_time <= now < reservation.end_time:
        changes.seat_states.append(
            SeatState(reservation.seat_id, reservation.branch, available=False, status="ACTIVE")
        )


async def get(
    conn: Connection, settings: Settings, *, user: TokenUser, reservation_id: int
) -> ReservationOut:
    return to_out(await _own(conn, user.id, reservation_id), settings)


async def list_own(
    conn: Connection, settings: Settings, *, user_id: int, query: ReservationQuery, now: datetime
) -> ReservationList:
    rows, total = await reservations_db.list_for_user(
        conn,
        user_id,
        scope=query.scope,
        status=query.status,
        now=now,
        limit=query.limit,
        offset=query.offset,
    )
    return ReservationList(items=[to_out(r, settings) for r in rows], total=total)


async def list_for_user(
    conn: Connection,
    settings: Settings,
    *,
    caller: TokenUser,
    user_id: int,
    query: ReservationQuery,
    now: datetime,
) -> ReservationList:
    """The seed documents' route: one's own list, or anyone's for an admin."""
    await check_may_read_user(conn, caller=caller, user_id=user_id)
    return await list_own(conn, settings, user_id=user_id, query=query, now=now)


async def check_in(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    user: TokenUser,
    reservation_id: int,
    now: datetime,
) -> ReservationOut:
    async def work(uow: UnitOfWork) -> Reservation:
        return await checked_in(uow, settings, reservation_id, owner_id=user.id)

    return to_out(await run_unit(conn, publisher, now=now, work=work, atomic=False), settings)


async def checked_in(
    uow: UnitOfWork, settings: Settings, reservation_id: int, *, owner_id: int | None
) -> Reservation:
    """Check in, inside a unit of work: the owner's reservation (any owner's for
    ``owner_id=None``: the staff desk), CONFIRMED and within its window."""
    reservation = await reservations_db.check_in(
        uow.conn,
        reservation_id,
        user_id=owner_id,
        now=uow.now,
        early=settings.checkin_early,
        grace=settings.grace,
    )
    if reservation is None:
        current = await reservations_db.get(uow.conn, reservation_id)
        if current is None or (owner_id is not None and current.user_id != owner_id):
            raise NotFound("No such reservation")  # someone else's looks like a missing one
        raise check_in_refusal(current, settings)
    # The seat stays taken; only the branch's reserved/occupied counts move.
    uow.changes.branches.add(reservation.branch)
    uow.outbox.webhook("reservation.checked_in", reservation_id=reservation.id)  # webhooks
    return reservation


def check_in_refusal(current: Reservation, settings: Settings) -> InvalidState | CheckinWindow:
    if current.status != ReservationStatus.CONFIRMED:
        return InvalidState(f"Cannot check in a {current.status} reservation")
    opens, deadline = policy.checkin_window(current, settings)
    return CheckinWindow(
        f"Check-in is open from {iso_z(opens)} to {iso_z(deadline)}",
        extra={"check_in_opens_at": opens, "check_in_deadline": deadline},
    )


async def check_out(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    user: TokenUser,
    reservation_id: int,
    now: datetime,
) -> ReservationOut:
    async def work(uow: UnitOfWork) -> Reservation:
        result = await reservations_db.check_out(uow.conn, reservation_id, user_id=user.id, now=now)
        if result is None:
            current = await _own(uow.conn, user.id, reservation_id)
            if current.status != ReservationStatus.CHECKED_IN:
                raise InvalidState(f"Cannot check out of a {current.status} reservation")
            raise InvalidState("The reservation has not started yet")
        reservation, booked_until = result
        uow.outbox.webhook("reservation.completed", reservation_id=reservation.id)  # webhooks
        # The rest of the slot, [now, booked_until), goes to the waitlist.
        freed = reservation.model_copy(update={"end_time": booked_until})
        await waitlist_service.release(uow, settings, freed)
        return reservation

    return to_out(await run_unit(conn, publisher, now=now, work=work), settings)


async def cancel(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    user: TokenUser,
    reservation_id: int,
    now: datetime,
) -> ReservationOut:
    async def work(uow: UnitOfWork) -> Reservation:
        reservation = await reservations_db.cancel(
            uow.conn,
            reservation_id,
            user_id=user.id,
            now=now,
            grace=settings.grace,
            reason=SELF_CANCEL_REASON,
        )
        if reservation is None:
            current = await _own(uow.conn, user.id, reservation_id)
            if current.status not in (ReservationStatus.HELD, ReservationStatus.CONFIRMED):
                raise InvalidState(f"Cannot cancel a {current.status} reservation")
            raise InvalidState("The check-in deadline has passed: it counts as a no-show")
        uow.outbox.webhook("reservation.cancelled", reservation_id=reservation.id)  # webhooks
        # Declining an offer closes its waitlist entry too.
        await waitlist_db.settle_offer(
            uow.conn, reservation.id, status=WaitlistStatus.CANCELLED, now=now
        )
        await waitlist_service.release(uow, settings, reservation)
        return reservation

    return to_out(await run_unit(conn, publisher, now=now, work=work), settings)


async def _own(conn: Connection, user_id: int, reservation_id: int) -> Reservation:
    reservation = await reservations_db.get(conn, reservation_id)
    if reservation is None or reservation.user_id != user_id:
        raise NotFound("No such reservation")  # someone else's looks like a missing one
    return reservation


async def ics(conn: Connection, *, user: TokenUser, reservation_id: int, now: datetime) -> bytes:
    return calendar.reservation_ics(await _own(conn, user.id, reservation_id), now=now)
