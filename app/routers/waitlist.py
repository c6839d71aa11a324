"""Waitlist (token required)."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import Conn, CurrentUser, Now, PathId, PublisherDep, SettingsDep
from app.errors import (
    AlreadyExists,
    InvalidInterval,
    InvalidState,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    OfferExpired,
    SlotAvailable,
    Suspended,
    error_responses,
)
from app.models import WaitlistEntry
from app.schemas.seats import Page
from app.schemas.waitlist import ClaimOut, WaitlistEntryOut, WaitlistJoin, WaitlistList
from app.services import reservations as reservations_service
from app.services import waitlist as waitlist_service

router = APIRouter(tags=["waitlist"], responses=error_responses(NotAuthenticated, InvalidToken))


@router.post(
    "/waitlist",
    status_code=201,
    response_model=WaitlistEntryOut,
    responses=error_responses(NotFound, Suspended, AlreadyExists, SlotAvailable, InvalidInterval),
)
async def join_waitlist(
    body: WaitlistJoin, user: CurrentUser, conn: Conn, settings: SettingsDep, now: Now
) -> WaitlistEntryOut:
    """Wait for a seat (`seat_id`) or any seat of a branch (`branch`) over an interval."""
    entry = await waitlist_service.join(conn, settings, user_id=user.id, data=body, now=now)
    return WaitlistEntryOut.model_validate(entry, from_attributes=True)


@router.get("/waitlist", response_model=WaitlistList)
async def list_waitlist(
    page: Annotated[Page, Query()], user: CurrentUser, conn: Conn
) -> WaitlistList:
    """Your waitlist entries, newest first, with each WAITING entry's queue position."""
    entries, total = await waitlist_service.list_own(
        conn, user_id=user.id, limit=page.limit, offset=page.offset
    )
    return _page(entries, total)


@router.get(
    "/waitlist/user/{user_id}", response_model=WaitlistList, responses=error_responses(NotFound)
)
async def list_user_waitlist(
    user_id: PathId, page: Annotated[Page, Query()], user: CurrentUser, conn: Conn
) -> WaitlistList:
    """Seed-compatible alias: your own id, or any user's for an admin (else 404)."""
    entries, total = await waitlist_service.list_for_user(
        conn, caller=user, user_id=user_id, limit=page.limit, offset=page.offset
    )
    return _page(entries, total)


def _page(entries: list[WaitlistEntry], total: int) -> WaitlistList:
    return WaitlistList(
        items=[WaitlistEntryOut.model_validate(e, from_attributes=True) for e in entries],
        total=total,
    )


@router.delete(
    "/waitlist/{entry_id}",
    response_model=WaitlistEntryOut,
    responses=error_responses(NotFound, InvalidState),
)
async def leave_waitlist(
    entry_id: PathId,
    user: CurrentUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
) -> WaitlistEntryOut:
    """Leave the queue; a pending offer is withdrawn and passed to the next in line."""
    entry = await waitlist_service.leave(
        conn, publisher, settings, user_id=user.id, entry_id=entry_id, now=now
    )
    return WaitlistEntryOut.model_validate(entry, from_attributes=True)


@router.post(
    "/waitlist/{entry_id}/claim",
    response_model=ClaimOut,
    responses=error_responses(NotFound, InvalidState, OfferExpired),
)
async def claim_waitlist_offer(
    entry_id: PathId,
    user: CurrentUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
) -> ClaimOut:
    """Take the offered seat: the HELD reservation becomes CONFIRMED."""
    entry, reservation = await waitlist_service.claim(
        conn, publisher, settings, user_id=user.id, entry_id=entry_id, now=now
    )
    return ClaimOut(
        entry=WaitlistEntryOut.model_validate(entry, from_attributes=True),
        reservation=reservations_service.to_out(reservation, settings),
    )
