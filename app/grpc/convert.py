"""Between protobuf messages and the service layer's models: timestamps, ids, pages,
and each response message built from the same model its HTTP twin answers with."""

import re
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from app.grpc.errors import InvalidArgument
from app.grpc.generated import dlsms_pb2 as pb
from app.models import User, WaitlistEntry
from app.schemas.notifications import NotificationOut
from app.schemas.reservations import IDEMPOTENCY_KEY_PATTERN, ReservationOut
from app.schemas.seats import AvailabilityOut, Interval, SeatDetailOut
from app.schemas.waitlist import WaitlistEntryOut

MAX_ID = 2**63 - 1
DEFAULT_LIMIT = 100  # as the HTTP `limit` (a proto int32 of 0 means "not given")


# ------------------------------------------------------------------ requests


def instant(message: Message, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime; None when unset (the schema decides
    whether that is allowed)."""
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"{field}: not a representable time") from None


def optional(message: Message, field: str) -> Any:
    """An ``optional`` scalar field's value, or None when unset."""
    return getattr(message, field) if message.HasField(field) else None


def object_id(value: int, field: str) -> int:
    """A path-style id: 1 .. 2^63-1 (HTTP answers 422 for anything else)."""
    if not 1 <= value <= MAX_ID:
        raise InvalidArgument(f"{field}: must be a positive id")
    return value


def page(limit: int, offset: int) -> dict[str, int]:
    """``limit`` / ``offset`` for a Page model: 0 means the default limit."""
    return {"limit": limit or DEFAULT_LIMIT, "offset": offset}


# ------------------------------------------------------------------ responses


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _iso(moment: str | datetime) -> datetime:
    return datetime.fromisoformat(moment) if isinstance(moment, str) else moment


def _present(**fields: Any) -> dict[str, Any]:
    # proto3 `optional` fields are left unset for None (a constructor refuses None).
    return {k: v for k, v in fields.items() if v is not None}


def _maybe_ts(moment: datetime | None) -> Timestamp | None:
    return None if moment is None else timestamp(moment)


def user(u: User, *, suspended_until: datetime | None = None) -> pb.User:
    return pb.User(
        id=u.id,
        student_id=u.student_id,
        name=u.name,
        role=str(u.role),
        created_at=timestamp(u.created_at),
        **_present(email=u.email, suspended_until=_maybe_ts(suspended_until)),
    )


def seat(row: dict[str, Any]) -> pb.Seat:
    """A seat as the listing (JSON from PostgreSQL or the cache) or SeatDetailOut has it."""
    return pb.Seat(
        id=row["id"],
        branch=row["branch"],
        area=row["area"],
        label=row["label"],
        has_power=row["has_power"],
        has_monitor=row["has_monitor"],
        status=str(row["status"]),
        available=row["available"],
    )


def interval(i: Interval) -> pb.Interval:
    return pb.Interval(start_time=timestamp(i.start_time), end_time=timestamp(i.end_time))


def seat_detail(d: SeatDetailOut) -> pb.SeatDetail:
    return pb.SeatDetail(seat=seat(d.model_dump()), busy=[interval(i) for i in d.busy])


def availability(a: AvailabilityOut) -> pb.Availability:
    return pb.Availability(
        seat_id=a.seat_id,
        start_time=timestamp(a.start_time),
        end_time=timestamp(a.end_time),
        available=a.available,
        conflicts=[interval(i) for i in a.conflicts],
    )


def branch(row: dict[str, Any]) -> pb.Branch:
    """A branch as GET /branches answers it (JSON)."""
    next_change = row.get("next_change_at")
    return pb.Branch(
        id=row["id"],
        name=row["name"],
        timezone=row["timezone"],
        total_seats=row["total_seats"],
        available_now=row["available_now"],
        reserved_now=row["reserved_now"],
        occupied_now=row["occupied_now"],
        with_power=row["with_power"],
        with_monitor=row["with_monitor"],
        areas=row["areas"],
        open_now=row["open_now"],
        **_present(next_change_at=None if next_change is None else timestamp(_iso(next_change))),
    )


def seat_event(state: dict[str, Any]) -> pb.SeatAvailabilityEvent:
    return pb.SeatAvailabilityEvent(
        seat_id=state["seat_id"],
        branch=state["branch"],
        available=state["available"],
        status=str(state["status"]),
    )


def reservation(r: ReservationOut) -> pb.Reservation:
    return pb.Reservation(
        id=r.id,
        user_id=r.user_id,
        seat_id=r.seat_id,
        seat=pb.SeatRef(id=r.seat.id, branch=r.seat.branch, area=r.seat.area, label=r.seat.label),
        start_time=timestamp(r.start_time),
        end_time=timestamp(r.end_time),
        status=str(r.status),
        created_at=timestamp(r.created_at),
        check_in_opens_at=timestamp(r.check_in_opens_at),
        check_in_deadline=timestamp(r.check_in_deadline),
        **_present(
            checked_in_at=_maybe_ts(r.checked_in_at),
            cancelled_at=_maybe_ts(r.cancelled_at),
            cancel_reason=r.cancel_reason,
            offer_expires_at=_maybe_ts(r.offer_expires_at),
        ),
    )


def replayed_reservation(body: dict[str, Any]) -> pb.Reservation:
    """A stored Idempotency-Key answer (the HTTP JSON body) as a Reservation."""
    return reservation(ReservationOut.model_validate(body))


def waitlist_entry(e: WaitlistEntry | WaitlistEntryOut) -> pb.WaitlistEntry:
    return pb.WaitlistEntry(
        id=e.id,
        user_id=e.user_id,
        branch=e.branch,
        start_time=timestamp(e.start_time),
        end_time=timestamp(e.end_time),
        status=str(e.status),
        created_at=timestamp(e.created_at),
        **_present(
            seat_id=e.seat_id,
            position=e.position,
            offer_expires_at=_maybe_ts(e.offer_expires_at),
            reservation_id=e.reservation_id,
        ),
    )


def notification(n: NotificationOut | dict[str, Any]) -> pb.Notification:
    """From the service's model, or from the stream's JSON (``notification_json``)."""
    body = n.model_dump() if isinstance(n, NotificationOut) else n
    read_at = body.get("read_at")
    return pb.Notification(
        id=body["id"],
        type=str(body["type"]),
        data_json=orjson.dumps(body["data"]).decode(),
        created_at=timestamp(_iso(body["created_at"])),
        **_present(read_at=None if read_at is None else timestamp(_iso(read_at))),
    )


_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def idempotency_key(message: Message) -> str | None:
    """The request's ``idempotency_key``: as the HTTP header, 1-255 visible ASCII."""
    key: str | None = optional(message, "idempotency_key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidArgument("idempotency_key: 1 to 255 visible ASCII characters")
    return key
