"""Administration (role `admin`; a student gets 403 `forbidden`)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from app.deps import AdminUser, Conn, Now, PathId, PublisherDep, SettingsDep
from app.errors import (
    AlreadyExists,
    CheckinWindow,
    Forbidden,
    InvalidInterval,
    InvalidState,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    SeatUnavailable,
    error_responses,
)
from app.schemas.admin import (
    AdminReservationQuery,
    AuditList,
    BranchAdminOut,
    BranchCreate,
    SeatCreate,
    SeatPatch,
    StatsOut,
    StatsQuery,
    UserBriefOut,
    UserQuery,
)
from app.schemas.reservations import ReservationList, ReservationOut
from app.schemas.seat_codes import SeatCodeList, SeatCodeOut
from app.schemas.seats import Page, SeatOut
from app.schemas.waitlist import OffersMade, WaitlistEntryOut, WaitlistOfferNow
from app.services import admin as admin_service
from app.services import seat_codes as seat_codes_service
from app.services import waitlist as waitlist_service

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses=error_responses(NotAuthenticated, InvalidToken, Forbidden),
)


@router.post(
    "/branches",
    status_code=201,
    response_model=BranchAdminOut,
    responses=error_responses(AlreadyExists),
)
async def create_branch(
    body: BranchCreate, admin: AdminUser, conn: Conn, publisher: PublisherDep, now: Now
) -> BranchAdminOut:
    """Add a branch (IANA time zone, default UTC; a bad zone is 422)."""
    return await admin_service.create_branch(conn, publisher, actor=admin, data=body, now=now)


@router.post(
    "/seats",
    status_code=201,
    response_model=SeatOut,
    responses=error_responses(NotFound, AlreadyExists),
)
async def create_seat(
    body: SeatCreate, admin: AdminUser, conn: Conn, publisher: PublisherDep, now: Now
) -> SeatOut:
    """Add a seat to a branch (labels are unique within a branch)."""
    return await admin_service.create_seat(conn, publisher, actor=admin, data=body, now=now)


@router.patch(
    "/seats/{seat_id}",
    response_model=SeatOut,
    responses=error_responses(NotFound, AlreadyExists),
)
async def update_seat(
    seat_id: PathId,
    body: SeatPatch,
    admin: AdminUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
) -> SeatOut:
    """Edit a seat. MAINTENANCE/CLOSED cancels its active reservations that have not ended
    (owners get `reservation.cancelled` with the reason) and returns offered waitlist entries
    to WAITING at their old place; ACTIVE again offers it to the waitlist."""
    return await admin_service.update_seat(
        conn, publisher, settings, actor=admin, seat_id=seat_id, patch=body, now=now
    )


@router.get(
    "/seats/{seat_id}/code", response_model=SeatCodeOut, responses=error_responses(NotFound)
)
async def get_seat_code(
    seat_id: PathId, request: Request, admin: AdminUser, conn: Conn, settings: SettingsDep
) -> SeatCodeOut:
    """The seat's code `k` and the URL its QR code holds, `{PUBLIC_URL}/s/{id}?k={k}`."""
    base = seat_codes_service.public_base(settings, str(request.base_url))
    return await seat_codes_service.seat_code(conn, settings, seat_id=seat_id, base=base)


@router.get(
    "/seats/{seat_id}/qr.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "The QR code as SVG"},
        **error_responses(NotFound),
    },
)
async def get_seat_qr(
    seat_id: PathId, request: Request, admin: AdminUser, conn: Conn, settings: SettingsDep
) -> Response:
    """The QR code of the seat's URL (as in `/admin/seats/{id}/code`), an SVG image."""
    base = seat_codes_service.public_base(settings, str(request.base_url))
    svg = await seat_codes_service.seat_qr_svg(conn, settings, seat_id=seat_id, base=base)
    # Staff only: kept by the browser for a printing session, never by a shared cache.
    return Response(
        svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=300"}
    )


@router.get(
    "/branches/{name}/codes", response_model=SeatCodeList, responses=error_responses(NotFound)
)
async def list_branch_seat_codes(
    name: Annotated[str, Path(min_length=1, max_length=200, description="Branch name")],
    page: Annotated[Page, Query()],
    request: Request,
    admin: AdminUser,
    conn: Conn,
    settings: SettingsDep,
) -> SeatCodeList:
    """Extension (for the printable code sheet): every seat of the branch, any status, by
    area and label, with its code and URL (`/admin/seats/{id}/qr.svg` draws each one)."""
    base = seat_codes_service.public_base(settings, str(request.base_url))
    return await seat_codes_service.branch_codes(conn, settings, branch=name, page=page, base=base)


@router.get(
    "/reservations",
    response_model=ReservationList,
    responses=error_responses(InvalidInterval),
)
async def list_all_reservations(
    query: Annotated[AdminReservationQuery, Query()],
    admin: AdminUser,
    conn: Conn,
    settings: SettingsDep,
) -> ReservationList:
    """Any user's reservations, latest start first, filtered."""
    return await admin_service.list_reservations(conn, settings, query)


@router.post(
    "/reservations/{reservation_id}/checkin",
    response_model=ReservationOut,
    responses=error_responses(NotFound, InvalidState, CheckinWindow),
)
async def check_in_at_desk(
    reservation_id: PathId,
    admin: AdminUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
) -> ReservationOut:
    """Staff check-in at the desk (the same window as the student's own check-in)."""
    return await admin_service.check_in(
        conn, publisher, settings, actor=admin, reservation_id=reservation_id, now=now
    )


@router.post(
    "/seats/{seat_id}/offer",
    response_model=OffersMade,
    responses=error_responses(NotFound, SeatUnavailable, InvalidInterval),
)
async def offer_seat_now(
    seat_id: PathId,
    body: WaitlistOfferNow,
    admin: AdminUser,
    conn: Conn,
    publisher: PublisherDep,
    settings: SettingsDep,
    now: Now,
) -> OffersMade:
    """(An extension; gRPC NotifyUsers.) Offer the seat's free time in [start_time,
    end_time) to its queues now, as if it had just been released; answers the offers."""
    offered = await waitlist_service.offer_now(
        conn, publisher, settings, actor=admin, seat_id=seat_id,
        start=body.start_time, end=body.end_time, now=now,
    )  # fmt: skip
    return OffersMade(
        offered=[WaitlistEntryOut.model_validate(e, from_attributes=True) for e in offered]
    )


@router.get(
    "/stats",
    response_model=StatsOut,
    responses=error_responses(NotFound, InvalidInterval),
)
async def usage_statistics(
    query: Annotated[StatsQuery, Query()], admin: AdminUser, conn: Conn
) -> StatsOut:
    """Usage per branch for reservations starting in [start_time, end_time): see each
    field's description for its exact definition."""
    return await admin_service.stats(conn, query)


@router.get("/users", response_model=UserBriefOut, responses=error_responses(NotFound))
async def find_user(
    query: Annotated[UserQuery, Query()], admin: AdminUser, conn: Conn
) -> UserBriefOut:
    """Extension (for the desk): the user holding a student ID, 404 `not_found` if none."""
    return await admin_service.find_user(conn, query.student_id)


@router.get("/audit", response_model=AuditList)
async def list_audit_log(page: Annotated[Page, Query()], admin: AdminUser, conn: Conn) -> AuditList:
    """Every staff change, newest first: who, what, when, the row before and after."""
    return await admin_service.list_audit(conn, page)
