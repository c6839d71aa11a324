"""Seat discovery and branches: readable without a token."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.deps import CacheDep, Conn, Now, PathId, PoolDep
from app.errors import InvalidInterval, NotFound, error_responses
from app.fastpath import request_slot
from app.schemas.seats import (
    AvailabilityOut,
    BranchOut,
    DayQuery,
    IntervalQuery,
    SeatDetailOut,
    SeatList,
    SeatQuery,
)
from app.services import seats as seats_service

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


@router.get("/branches", response_model=list[BranchOut])
async def list_branches(request: Request, pool: PoolDep, cache: CacheDep, now: Now) -> Response:
    """Every branch with live seat counts (a plain array: a few rows, never paged)."""
    listed = await seats_service.branches(pool, cache, slot=request_slot(request.scope), now=now)
    return Response(listed.body, media_type="application/json")  # follows list[BranchOut]
