"""Reservations (token required; a user sees only their own)."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from app.db.pool import connection
from app.deps import Conn, CurrentUser, Now, PathId, PublisherDep, SettingsDep, app_state
from app.errors import (
    CheckinWindow,
    IdempotencyInProgress,
    IdempotencyMismatch,
    InvalidInterval,
    InvalidState,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    OutsideOpeningHours,
    QuotaExceeded,
    SeatConflict,
    SeatUnavailable,
    Suspended,
    UserOverlap,
    error_responses,
)
from app.schemas.reservations import (
    IDEMPOTENCY_KEY_PATTERN,
    ReservationCreate,
    ReservationExtend,
    ReservationList,
    ReservationOut,
    ReservationQuery,
)
from app.services import extension as extension_service
from app.services import reservations as reservations_service

router = APIRouter(tags=["reservations"], responses=error_responses(NotAuthenticated, InvalidToken))

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Optional, 1-255 visible ASCII characters (a UUID is ideal). A repeat with "
        "the same key and body within 24 h answers the original status and body (header "
        "`Idempotent-Replayed: true`); with another body, 422 `idempotency_mismatch`.",
    ),
]


@router.post(
    "/reservations",
    status_code=201,
    response_model=ReservationOut,
    responses=error_responses(
        NotFound,
        Suspended,
        SeatConflict,
        UserOverlap,
        SeatUnavailable,
        IdempotencyInProgress,
        InvalidInterval,
        IdempotencyMismatch,
    ),
)
async def create_reservation(
    request: Request,
    body: ReservationCreate,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
) -> ReservationOut | Response:
    """Book a seat for the half-open interval [start_time, end_time)."""
    # The hottest write takes its connection, settings, publisher and clock from the app
    # state itself: as dependencies they cost FastAPI ~30 us each per request (the
    # connection, a generator, ~70 us), a tenth of a booking's Python (issue 17).
    state = app_state(request)
    async with connection(state["pool"]) as conn:
        created = await reservations_service.create(
            conn,
            state["publisher"],
            state["settings"],
            user=user,
            data=body,
            now=state["clock"].now(),
            idempotency_key=idempotency_key,
            rules_cache=state["rules"],
        )
    if isinstance(created, ReservationOut):
        return created
    headers = {"Idempotent-Replayed": "true"} if created.replayed else None
    return JSONResponse(created.body, status_code=created.status_code, headers=headers)


@router.get("/reservations", response_model=ReservationList)
async def list_reservations(
    query: Annotated[ReservationQuery, Query()],
    user: CurrentUser,
    conn: Conn,
    settings: SettingsDep,
    now: Now,
) -> ReservationList:
    """Your reservations: `upcoming` (default), `history` (last 30 days) or `all`."""
    return await reservations_service.list_own(
        conn, settings, user_id=user.id, query=query, now=now
    )


@router.get(
    "/reservations/user/{user_id}",
    response_model=ReservationList,
    responses=error_responses(NotFound),
)
async def list_user_reservations(
    user_id: PathId,
    query: Annotated[ReservationQuery, Query()],
    user: CurrentUser,
    conn: Conn,
    settings: SettingsDep,
    now: Now,
) -> ReservationList:
    """Seed-compatible alias: your own id, or any user's for an admin (else 404)."""
    return await reservations_service.list_for_user(
        conn, settings, caller=user, user_id=user_id, query=query, now=now
    )


@router.get(
    "/reservations/{reservation_id}",
    response_model=ReservationOut,
    responses=error_responses(NotFound),
)
async def get_reservation(
    reservation_id: PathId, user: CurrentUser, conn: Conn, settings: SettingsDep
) -> ReservationOut:
    """One of your reservations."""
    return await reservations_service.get(conn, settings, user=user, reservation_id=reservation_id)


@router.post(
    "/reservations/{reservation_id}/checkin",
    response_model=ReservationOut,
    responses=error_responses(NotFound, InvalidState, CheckinWindow),
)
async def check_in_reservation(
    reservation_id: PathId,
    user: CurrentUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
) -> ReservationOut:
    """Check in between start - CHECKIN_EARLY_MINUTES and start + GRACE_MINUTES."""
    return await reservations_service.check_in(
        conn, publisher, settings, user=user, reservation_id=reservation_id, now=now
    )


@router.post(
    "/reservations/{reservation_id}/checkout",
    response_model=ReservationOut,
    responses=error_responses(NotFound, InvalidState),
)
async def check_out_reservation(
    reservation_id: PathId,
    user: CurrentUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
) -> ReservationOut:
    """Leave early: COMPLETED, end_time cut to now, the rest of the slot released."""
    return await reservations_service.check_out(
        conn, publisher, settings, user=user, reservation_id=reservation_id, now=now
    )


@router.delete(
    "/reservations/{reservation_id}",
    response_model=ReservationOut,
    responses=error_responses(NotFound, InvalidState),
)
async def cancel_reservation(
    reservation_id: PathId,
    user: CurrentUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
) -> ReservationOut:
    """Cancel a HELD offer, or a CONFIRMED reservation until its check-in deadline."""
    return await reservations_service.cancel(
        conn, publisher, settings, user=user, reservation_id=reservation_id, now=now
    )


@router.get(
    "/reservations/{reservation_id}/ics",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {}}, "description": "An RFC 5545 VEVENT"},
        **error_responses(NotFound),
    },
)
async def get_reservation_ics(
    reservation_id: PathId, user: CurrentUser, conn: Conn, now: Now
) -> Response:
    """The reservation as an iCalendar file (seat, branch, start, end)."""
    body = await reservations_service.ics(conn, user=user, reservation_id=reservation_id, now=now)
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="reservation-{reservation_id}.ics"'},
    )


@router.post(
    "/reservations/{reservation_id}/extend",
    response_model=ReservationOut,
    responses=error_responses(
        NotFound,
        InvalidState,
        SeatConflict,
        UserOverlap,
        QuotaExceeded,
        IdempotencyInProgress,
        InvalidInterval,
        OutsideOpeningHours,
        IdempotencyMismatch,
    ),
)
async def extend_reservation(
    reservation_id: PathId,
    body: ReservationExtend,
    user: CurrentUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
    idempotency_key: IdempotencyKey = None,
) -> ReservationOut | Response:
    """Move the end of your CONFIRMED or CHECKED_IN reservation later (not once it has ended).

    The whole reservation, start to the new end, must fit the branch's
    `max_reservation_hours`, one opening of the branch and its quotas; time taken on the
    seat or by another of your reservations answers 409 as a booking does."""
    extended = await extension_service.extend(
        conn,
        publisher,
        settings,
        user=user,
        reservation_id=reservation_id,
        data=body,
        now=now,
        idempotency_key=idempotency_key,
    )
    if isinstance(extended, ReservationOut):
        return extended
    headers = {"Idempotent-Replayed": "true"} if extended.replayed else None
    return JSONResponse(extended.body, status_code=extended.status_code, headers=headers)
