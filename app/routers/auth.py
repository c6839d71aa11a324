"""Accounts and tokens."""

from typing import Annotated

from fastapi import APIRouter, Form, Request

from app.deps import Conn, CurrentUser, HasherDep, LoginLimiterDep, Now, PoolDep, SettingsDep
from app.errors import (
    AlreadyExists,
    InvalidCredentials,
    InvalidToken,
    NotAuthenticated,
    RateLimited,
    error_responses,
)
from app.schemas.auth import (
    LoginIn,
    MeOut,
    RegisterIn,
    TokenForm,
    TokenOut,
    UserOut,
    VerifyIn,
    VerifyOut,
)
from app.services import auth as auth_service
from app.services.auth import LoginResult

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register", status_code=201, response_model=UserOut, responses=error_responses(AlreadyExists)
)
async def register_user(body: RegisterIn, pool: PoolDep, hasher: HasherDep) -> UserOut:
    """Create a student account (password 8 to 72 bytes)."""
    user = await auth_service.register(
        pool,
        hasher,
        student_id=body.student_id,
        name=body.name,
        email=body.email,
        password=body.password,
    )
    return UserOut.model_validate(user.model_dump())


@router.post(
    "/login", response_model=TokenOut, responses=error_responses(InvalidCredentials, RateLimited)
)
async def login(
    body: LoginIn,
    request: Request,
    pool: PoolDep,
    hasher: HasherDep,
    limiter: LoginLimiterDep,
    settings: SettingsDep,
    now: Now,
) -> TokenOut:
    """Exchange a student ID and password for a bearer token."""
    result = await auth_service.login(
        pool,
        hasher,
        limiter,
        settings,
        student_id=body.student_id,
        password=body.password,
        address=_client_address(request),
        now=now,
    )
    return _token_out(result)


@router.post(
    "/token", response_model=TokenOut, responses=error_responses(InvalidCredentials, RateLimited)
)
async def issue_token(
    form: Annotated[TokenForm, Form()],
    request: Request,
    pool: PoolDep,
    hasher: HasherDep,
    limiter: LoginLimiterDep,
    settings: SettingsDep,
    now: Now,
) -> TokenOut:
    """OAuth2 password flow (form fields ``username`` = student ID, ``password``); used by
    Swagger UI's Authorize button. Same answers and limits as ``/auth/login``."""
    result = await auth_service.login(
        pool,
        hasher,
        limiter,
        settings,
        student_id=form.username,
        password=form.password,
        address=_client_address(request),
        now=now,
    )
    return _token_out(result)


@router.post("/verify", response_model=VerifyOut, responses=error_responses(InvalidToken))
async def verify_token(body: VerifyIn, settings: SettingsDep) -> VerifyOut:
    """Check a token's signature and expiry and say whose it is."""
    claims = auth_service.verify(settings, body.token)
    return VerifyOut(
        user_id=claims.user.id,
        student_id=claims.user.student_id,
        role=claims.user.role,
        expires_at=claims.expires_at,
    )


@router.get("/me", response_model=MeOut, responses=error_responses(NotAuthenticated, InvalidToken))
async def read_me(user: CurrentUser, conn: Conn, settings: SettingsDep, now: Now) -> MeOut:
    """The calling user, with the end of any fair-use suspension."""
    me = await auth_service.me(conn, settings, user_id=user.id, now=now)
    return MeOut(**me.user.model_dump(), suspended_until=me.suspended_until)


def _token_out(result: LoginResult) -> TokenOut:
    return TokenOut(
        access_token=result.access_token,
        expires_at=result.expires_at,
        user=UserOut.model_validate(result.user.model_dump()),
    )


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
