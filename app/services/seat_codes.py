"""Seat codes: the printed proof of presence at a seat, and what scanning one does.

``k = base32(HMAC-SHA256(secret, "seat:{id}"))[:10]``: 50 bits, enough that guessing a
code online is hopeless, short enough to type from a damaged sticker. A scan checks the
caller in to their reservation of the seat, or books the free seat from now and checks
it in (a walk-in), or says when the seat frees up.
"""

import base64
import hashlib
import hmac
import io
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import segno

from app.db import reservations as reservations_db
from app.db import seat_codes as seat_codes_db
from app.db import seats as seats_db
from app.db.pool import Connection
from app.errors import NotFound, SeatConflict, SeatUnavailable, UserOverlap
from app.models import Reservation, SeatStatus, TokenUser
from app.realtime.publisher import Publisher
from app.schemas.reservations import ReservationCreate, ReservationOut
from app.schemas.seat_codes import SeatCodeLine, SeatCodeList, SeatCodeOut
from app.schemas.seats import Page
from app.services import reservations as reservations_service
from app.services import rules
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings
from app.timeutil import iso_z

CODE_LENGTH = 10
_NO_SUCH_SEAT = "No such seat"  # a wrong code answers exactly like an unknown seat


def code(secret: bytes, seat_id: int) -> str:
    """The seat's code ``k`` (upper case)."""
    digest = hmac.new(secret, f"seat:{seat_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:CODE_LENGTH]


def matches(secret: bytes, seat_id: int, k: str | None) -> bool:
    """Whether ``k`` is the seat's code, in any case, compared in constant time."""
    if not k:
        return False
    return hmac.compare_digest(code(secret, seat_id).encode(), k.upper().encode())


def public_base(settings: Settings, request_base: str) -> str:
    """Where the QR codes point: PUBLIC_URL, else the address the request came in on."""
    return settings.PUBLIC_URL or request_base.rstrip("/")


def seat_url(base: str, seat_id: int, k: str) -> str:
    return f"{base}/s/{seat_id}?k={k}"


# Staff: the codes to print.


async def seat_code(
    conn: Connection, settings: Settings, *, seat_id: int, base: str
) -> SeatCodeOut:
    if await seats_db.seat_ref(conn, seat_id) is None:
        raise NotFound(_NO_SUCH_SEAT)
    k = code(settings.seat_code_secret, seat_id)
    return SeatCodeOut(seat_id=seat_id, k=k, url=seat_url(base, seat_id, k))


async def seat_qr_svg(conn: Connection, settings: Settings, *, seat_id: int, base: str) -> bytes:
    """The QR code of the seat's URL as an SVG document (a viewBox, no fixed size: the
    page sizes it)."""
    found = await seat_code(conn, settings, seat_id=seat_id, base=base)
    # Level M: a sticker survives some wear and still scans.
    qr = segno.make(found.url, error="m", micro=False)
    out = io.BytesIO()
    qr.save(out, kind="svg", xmldecl=False, omitsize=True, title=f"Seat {seat_id}")
    return out.getvalue()


async def branch_codes(
    conn: Connection, settings: Settings, *, branch: str, page: Page, base: str
) -> SeatCodeList:
    if await seats_db.branch_id(conn, branch) is None:
        raise NotFound("No such branch")
    lines, total = await seat_codes_db.branch_seats(
        conn, branch, limit=page.limit, offset=page.offset
    )
    items = []
    for line in lines:
        k = code(settings.seat_code_secret, line.seat_id)
        url = seat_url(base, line.seat_id, k)
        items.append(
            SeatCodeLine(seat_id=line.seat_id, label=line.label, area=line.area, k=k, url=url)
        )
    return SeatCodeList(items=items, total=total)


# Students: the scan.


@dataclass(frozen=True)
class Scanned:
    action: Literal["checked_in", "walk_in"]
    reservation: ReservationOut


async def scan(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    user: TokenUser,
    seat_id: int,
    k: str | None,
    now: datetime,
) -> Scanned:
    if not matches(settings.seat_code_secret, seat_id, k):
        raise NotFound(_NO_SUCH_SEAT)
    # "Free now" means free for the next CLOCK_SKEW (60 s) too. Each request reads the
    # clock once, when it arrives; without that margin, a scan whose clock read came a
    # few milliseconds before a concurrent walk-in's start would "walk in" for those
    # milliseconds. A booking starting within a minute takes the seat, as a booking
    # starting within a minute in the past is still "now" (rules.CLOCK_SKEW).
    # Two looks at most: a walk-in that loses a race to a booking made after our first
    # look (the exclusion constraints decide) looks again, and then books the time still
    # free, or answers when the seat frees up, or finds the caller's own walk-in from a
    # second tap that won the race (checked in: 200, not a conflict with oneself).
    for attempt in (1, 2):
        context = await seat_codes_db.scan_context(
            conn,
            seat_id,
            user.id,
            now=now,
            early=settings.checkin_early,
            grace=settings.grace,
            tolerance=rules.CLOCK_SKEW,
        )
        if context is None:
            raise NotFound(_NO_SUCH_SEAT)
        if context.to_check_in is not None:
            return Scanned(
                "checked_in",
                await reservations_service.check_in(
                    conn,
                    publisher,
                    settings,
                    user=user,
                    reservation_id=context.to_check_in,
                    now=now,
                ),
            )
        if context.checked_in_here is not None:
            # Scanning again (a reload, a second tap) is not a conflict with oneself.
            current = await reservations_db.get(conn, context.checked_in_here)
            if current is not None:
                return Scanned("checked_in", reservations_service.to_out(current, settings))
        if context.seat_status != SeatStatus.ACTIVE:
            raise SeatUnavailable(f"The seat is {context.seat_status}, not open for booking")
        if not context.free_now:
            raise await _taken(conn, seat_id, context.timezone, now)
        branch_rules = await rules.for_seat(conn, settings, seat_id, now=now)
        if branch_rules is None:
            raise NotFound(_NO_SUCH_SEAT)
        end = walk_in_end(branch_rules, now=now, next_start=context.next_start)
        try:
            reservation = await _walk_in(
                conn, publisher, settings, branch_rules, user, seat_id, end, now
            )
        except SeatConflict:
            if attempt == 2:
                raise await _taken(conn, seat_id, context.timezone, now) from None
            continue
        except UserOverlap:
            if attempt == 2:
                raise
            continue
        return Scanned("walk_in", reservation)
    raise AssertionError("unreachable")


def walk_in_end(
    branch_rules: rules.BranchRules, *, now: datetime, next_start: datetime | None
) -> datetime:
    """A walk-in lasts until the earliest of now + the branch's longest reservation, the
    seat's next active reservation and the branch's closing time. (While the branch is
    closed the booking rules refuse the walk-in: 422 outside_opening_hours.)"""
    candidates = [now + branch_rules.policy.max_reservation]
    if next_start is not None:
        candidates.append(next_start)
    closing = branch_rules.closing_after(now)
    if closing is not None:
        candidates.append(closing)
    return min(candidates)


async def _walk_in(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    branch_rules: rules.BranchRules,
    user: TokenUser,
    seat_id: int,
    end: datetime,
    now: datetime,
) -> ReservationOut:
    """Book [now, end) and check it in, in one transaction: nobody ever sees the walk-in
    CONFIRMED, and a refused check-in leaves no booking behind."""
    data = ReservationCreate(seat_id=seat_id, start_time=now, end_time=end)
    rules.check_interval(branch_rules, data.start_time, data.end_time, now)

    async def work(uow: UnitOfWork) -> Reservation:
        booked = await reservations_service.book(
            uow.conn, settings, branch_rules, user_id=user.id, data=data, now=now
        )
        reservations_service.booked(uow.changes, booked, now=now)
        uow.outbox.webhook("reservation.created", reservation_id=booked.id)  # webhooks
        return await reservations_service.checked_in(uow, settings, booked.id, owner_id=user.id)

    reservation = await run_unit(conn, publisher, now=now, work=work)
    return reservations_service.to_out(reservation, settings)


async def _taken(conn: Connection, seat_id: int, timezone: str, now: datetime) -> SeatConflict:
    """409 ``seat_conflict`` with ``free_at``: the end of the run of back-to-back active
    reservations covering now, if that comes before the end of the branch's day. A gap
    shorter than the clock-skew tolerance does not free the seat (see ``scan``)."""
    zone = ZoneInfo(timezone)
    day_end = datetime.combine(now.astimezone(zone).date() + timedelta(days=1), time(), tzinfo=zone)
    busy = await seats_db.busy_intervals(conn, seat_id, seats_db.interval(now, day_end))
    free_at = now
    for start, end in busy:  # by start; one seat's active reservations never overlap
        if start >= free_at + rules.CLOCK_SKEW:
            break
        free_at = max(free_at, end)
    if free_at >= day_end:
        return SeatConflict("The seat is taken for the rest of the day", extra={"free_at": None})
    return SeatConflict(
        f"The seat is taken; it frees up at {iso_z(free_at)}", extra={"free_at": free_at}
    )
