"""One branch: its hours, closures and policy; readable without a token."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import Conn, CurrentUser, Now, PathId, SettingsDep
from app.errors import InvalidInterval, InvalidToken, NotAuthenticated, NotFound, error_responses
from app.schemas.branches import (
    BranchDetailOut,
    BranchHoursOut,
    HoursQuery,
    QuotaQuery,
    QuotaUseOut,
)
from app.services import branches as branches_service
from app.services import quotas as quotas_service

router = APIRouter(tags=["seats"])


@router.get(
    "/branches/{branch_id}", response_model=BranchDetailOut, responses=error_responses(NotFound)
)
async def get_branch(
    branch_id: PathId, conn: Conn, settings: SettingsDep, now: Now
) -> BranchDetailOut:
    """One branch with live counts, `open_now`, its weekly `hours` and effective `policy`."""
    return await branches_service.get_branch(conn, settings, branch_id, now=now)


@router.get(
    "/branches/{branch_id}/hours",
    response_model=BranchHoursOut,
    responses=error_responses(NotFound, InvalidInterval),
)
async def get_branch_hours(
    branch_id: PathId, query: Annotated[HoursQuery, Query()], conn: Conn, now: Now
) -> BranchHoursOut:
    """The branch's openings day by day (local dates, UTC instants) and its closures."""
    return await branches_service.day_hours(conn, branch_id, query.from_, query.to, now=now)


@router.get(
    "/branches/{branch_id}/quota",
    response_model=QuotaUseOut,
    responses=error_responses(NotAuthenticated, InvalidToken, NotFound),
)
async def get_my_quota_use(
    branch_id: PathId,
    query: Annotated[QuotaQuery, Query()],
    user: CurrentUser,
    conn: Conn,
    settings: SettingsDep,
    now: Now,
) -> QuotaUseOut:
    """(An extension, token required.) The caller's use of the branch's quotas on a
    local date and in its ISO week, with the limits (null: no quota)."""
    return await quotas_service.my_use(
        conn, settings, user_id=user.id, branch_id=branch_id, day=query.date, now=now
    )
