"""Branch hours and closures for staff (role `admin`; a student gets 403 `forbidden`)."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import AdminUser, Conn, Now, PathId, PublisherDep, SettingsDep
from app.errors import (
    AlreadyExists,
    Forbidden,
    InvalidInterval,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    error_responses,
)
from app.schemas.branches import (
    ClosureCreate,
    ClosureOut,
    ClosureQuery,
    HoursChangeOut,
    HoursPut,
    PolicyOut,
    PolicyPut,
)
from app.services import branch_admin as branch_admin_service

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses=error_responses(NotAuthenticated, InvalidToken, Forbidden),
)


@router.put(
    "/branches/{branch_id}/hours",
    response_model=HoursChangeOut,
    responses=error_responses(NotFound),
)
async def put_branch_hours(
    branch_id: PathId, body: HoursPut, admin: AdminUser, conn: Conn, publisher: PublisherDep,
    now: Now,
) -> HoursChangeOut:  # fmt: skip
    """Set the weekly hours; reservations that no longer fit are listed in `conflicts`
    (cancelled, owners notified, with `cancel_conflicting`)."""
    return await branch_admin_service.set_hours(
        conn, publisher, actor=admin, branch_id=branch_id, data=body, now=now
    )


@router.post(
    "/branches/{branch_id}/closures",
    status_code=201,
    response_model=ClosureOut,
    responses=error_responses(NotFound, AlreadyExists, InvalidInterval),
)
async def create_closure(
    branch_id: PathId, body: ClosureCreate, admin: AdminUser, conn: Conn,
    publisher: PublisherDep, now: Now,
) -> ClosureOut:  # fmt: skip
    """Close the branch on local dates, or open it on special hours; cancels what no longer
    fits (`cancelled`), the reason in each owner's notification. Overlapping closures: 409."""
    return await branch_admin_service.add_closure(
        conn, publisher, actor=admin, branch_id=branch_id, data=body, now=now
    )


@router.get(
    "/branches/{branch_id}/closures",
    response_model=list[ClosureOut],
    responses=error_responses(NotFound),
)
async def list_closures(
    branch_id: PathId, query: Annotated[ClosureQuery, Query()], admin: AdminUser, conn: Conn
) -> list[ClosureOut]:
    """The branch's closures overlapping [from, to] (local dates), earliest first."""
    return await branch_admin_service.list_closures(
        conn, branch_id, from_date=query.from_, to_date=query.to
    )


@router.delete(
    "/closures/{closure_id}", response_model=ClosureOut, responses=error_responses(NotFound)
)
async def delete_closure(
    closure_id: PathId, admin: AdminUser, conn: Conn, publisher: PublisherDep,
    settings: SettingsDep, now: Now,
) -> ClosureOut:  # fmt: skip
    """Remove a closure: the weekly hours decide those dates again, and the waitlist is
    offered the time that opens again."""
    return await branch_admin_service.delete_closure(
        conn, publisher, settings, actor=admin, closure_id=closure_id, now=now
    )


@router.put(
    "/branches/{branch_id}/policy", response_model=PolicyOut, responses=error_responses(NotFound)
)
async def put_branch_policy(
    branch_id: PathId, body: PolicyPut, admin: AdminUser, conn: Conn, publisher: PublisherDep,
    settings: SettingsDep, now: Now,
) -> PolicyOut:  # fmt: skip
    """Change the fields named (`null`: back to the global setting); answers the policy in
    force. The check-in window, grace, offers' claim time and the sweeps follow it."""
    return await branch_admin_service.set_policy(
        conn, publisher, settings, actor=admin, branch_id=branch_id, data=body, now=now
    )
