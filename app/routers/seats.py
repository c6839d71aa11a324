"""Seat discovery and branches: readable without a token."""

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from app.deps import (
    CacheDep,
    Conn,
    CurrentUser,
    Now,
    OptionalUser,
    PathId,
    PoolDep,
    PublisherDep,
    SettingsDep,
)
from app.errors import (
    InvalidInterval,
    InvalidState,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    SeatConflict,
    SeatUnavailable,
    Suspended,
    UserOverlap,
    error_responses,
)
from app.fastpath import request_slot
from app.schemas.seat_codes import ScanConflictBody, ScanIn, ScanOut
from app.schemas.seats import (
    AvailabilityOut,
    BranchOut,
    DayQuery,
    IntervalQuery,
    SeatDetailOut,
    SeatList,
    SeatQuery,
)
from app.schemas.suggest import SuggestionList, SuggestQuery
from app.services import seat_codes as seat_codes_service
from app.services import seats as seats_service
from app.services import suggest as suggest_service

router = APIRouter(tags=["seats"])


@router.get("/seats", response_model=SeatList, responses=error_responses(InvalidInterval))
async def list_seats(
    request: Request, query: Annotated[SeatQuery, Query()], pool: PoolDep, cache: CacheDep, now: Now
) -> Response:
    """Seats matching the filters, with `available` for [start_time, end_time) or for now."""
    listing = await seats_service.list_seats(
        pool, cache, query, slot=request_slot(request.scope), now=now
    )
    return Response(listing.body, media_type="application/json")  # follows SeatList


# Before /seats/{seat_id}, so that "suggest" is not read as a seat id.
@router.get(
    "/seats/suggest",
    response_model=SuggestionList,
    responses=error_responses(InvalidToken, InvalidInterval),
)
async def suggest_seats(
    query: Annotated[SuggestQuery, Query()],
    user: OptionalUser,
    conn: Conn,
    settings: SettingsDep,
    now: Now,
) -> SuggestionList:
    """Find me a seat: the best ACTIVE seats free for [start_time, start_time +
    duration_minutes) in branches open for all of it, best first.

    `branch` restricts (an unknown name answers no items, as GET /seats); `area`,
    `has_power` and `has_monitor` are preferences that rank, not filters, so a close match
    is still offered when no seat has everything. Ranked by the preferences met, then by
    how long the seat stays free after the interval (`free_until`: its next reservation or
    the branch's closing time, null when neither comes within 24 hours; compared in half
    hours), then, with a token, the student's habits over the last 90 days (the branch
    and the area of most of their reservations). Without a token there are no habits; an
    invalid or expired token is 401 `invalid_token`. When no seat is free for the whole
    interval, the items are the earliest times on the same local day (the branch's) at
    which a seat is, with `start_time` and `end_time` moved there. `reasons` say why, in
    the branch's local time."""
    return await suggest_service.suggest(
        conn, settings, query, user_id=user.id if user else None, now=now
    )


@router.get("/seats/{seat_id}", response_model=SeatDetailOut, responses=error_responses(NotFound))
async def get_seat(
    seat_id: PathId, query: Annotated[DayQuery, Query()], conn: Conn, now: Now
) -> SeatDetailOut:
    """One seat, available now or not, with the day's busy intervals (branch time zone)."""
    return await seats_service.seat_day(conn, seat_id, query.date, now=now)


@router.get(
    "/seats/{seat_id}/availability",
    response_model=AvailabilityOut,
    responses=error_responses(NotFound, InvalidInterval),
)
async def get_seat_availability(
    seat_id: PathId, query: Annotated[IntervalQuery, Query()], conn: Conn, now: Now
) -> AvailabilityOut:
    """Whether the seat is free for [start_time, end_time), and what is in the way."""
    return await seats_service.availability(
        conn, seat_id, query.start_time, query.end_time, now=now
    )


_SCAN_ERRORS = error_responses(
    NotAuthenticated,
    InvalidToken,
    Suspended,
    NotFound,
    SeatConflict,
    UserOverlap,
    SeatUnavailable,
    InvalidState,
)
_SCAN_ERRORS[409]["model"] = ScanConflictBody


@router.post(
    "/seats/{seat_id}/scan",
    response_model=ScanOut,
    responses={
        201: {"model": ScanOut, "description": "`walk_in`: booked from now and checked in"},
        **_SCAN_ERRORS,
    },
)
async def scan_seat_code(
    seat_id: PathId,
    response: Response,
    user: CurrentUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
    body: Annotated[ScanIn | None, Body()] = None,
) -> ScanOut:
    """Scan the seat's code: check in to one's reservation of it (200 `checked_in`), or book
    the free seat from now and check in at once (201 `walk_in`: until the earliest of now +
    MAX_RESERVATION_HOURS and the seat's next reservation; every booking rule applies), or
    409 `seat_conflict` with `free_at`. A wrong or missing `k` is 404, like an unknown seat."""
    scanned = await seat_codes_service.scan(
        conn,
        publisher,
        settings,
        user=user,
        seat_id=seat_id,
        k=body.k if body else None,
        now=now,
    )
    if scanned.action == "walk_in":
        response.status_code = 201
    return ScanOut(action=scanned.action, reservation=scanned.reservation)


@router.get("/branches", response_model=list[BranchOut])
async def list_branches(request: Request, pool: PoolDep, cache: CacheDep, now: Now) -> Response:
    """Every branch with live seat counts (a plain array: a few rows, never paged)."""
    listed = await seats_service.branches(pool, cache, slot=request_slot(request.scope), now=now)
    return Response(listed.body, media_type="application/json")  # follows list[BranchOut]
