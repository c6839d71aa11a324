"""Accounts and tokens."""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from app import sessions
from app.db import profile as profile_db
from app.deps import Conn, CurrentUser, HasherDep, LoginLimiterDep, Now, PoolDep, SettingsDep
from app.errors import (
    AlreadyExists,
    CsrfFailed,
    InvalidCredentials,
    InvalidToken,
    NotAuthenticated,
    RateLimited,
    error_responses,
    validation_issues,
)
from app.schemas.auth import (
    LoginIn,
    OAuth2ErrorBody,
    OAuth2ValidationErrorBody,
    RegisterIn,
    TokenForm,
    TokenOut,
    UserOut,
    VerifyIn,
    VerifyOut,
)
from app.schemas.outbox import MePatch, MeSettingsOut
from app.services import auth as auth_service
from app.services import outbox as outbox_service
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


class _OAuth2ErrorsRoute(APIRoute):
    """Failures also carry RFC 6749 (5.2) ``error`` and ``error_description``, which
    OAuth2 clients such as Swagger UI's Authorize dialog show; status codes stay ours."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_with_oauth2_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except InvalidCredentials as exc:
                exc.extra = {**exc.extra, **_oauth2_error("invalid_grant", exc.detail)}
                raise
            except RequestValidationError as exc:
                issues = validation_issues(exc)
                described = "; ".join(f"{'.'.join(map(str, i['loc']))}: {i['msg']}" for i in issues)
                body = {"detail": issues, **_oauth2_error("invalid_request", described)}
                return JSONResponse(body, 422)

        return handle_with_oauth2_errors


def _oauth2_error(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


# /auth/token alone answers in OAuth2's terms too (included into `router` below).
_oauth2_router = APIRouter(tags=["auth"], route_class=_OAuth2ErrorsRoute)


@_oauth2_router.post(
    "/token",
    response_model=TokenOut,
    responses={
        **error_responses(RateLimited),
        401: {
            "model": OAuth2ErrorBody,
            "description": f"`{InvalidCredentials.code}`: {InvalidCredentials.default_detail}"
            " (OAuth2 `error`: `invalid_grant`)",
        },
        422: {
            "model": OAuth2ValidationErrorBody,
            "description": "request validation (FastAPI's shape; OAuth2 `error`: "
            "`invalid_request`)",
        },
    },
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


@router.post(
    "/session", response_model=TokenOut, responses=error_responses(InvalidCredentials, RateLimited)
)
async def create_session(
    body: LoginIn,
    request: Request,
    response: Response,
    pool: PoolDep,
    hasher: HasherDep,
    limiter: LoginLimiterDep,
    settings: SettingsDep,
    now: Now,
) -> TokenOut:
    """Sign a browser in: answers like ``/auth/login`` (same rules and limits) and sets two
    cookies for the token's lifetime, ``Path=/``, ``SameSite=Lax``, ``Secure`` over HTTPS
    or with ``COOKIE_SECURE``: ``dlsms_session`` (the token, ``HttpOnly``), accepted by every
    endpoint that takes a Bearer token, and ``dlsms_csrf`` (readable by the page's script).
    A POST, PUT, PATCH or DELETE authenticated by the cookie alone must send header
    ``X-CSRF-Token`` equal to ``dlsms_csrf``, else 403 ``csrf_failed``."""
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
    sessions.set_session_cookies(
        response,
        request,
        token=result.access_token,
        max_age=int(settings.JWT_EXPIRE_HOURS * 3600),  # the token's lifetime
        secure=settings.COOKIE_SECURE,
    )
    return _token_out(result)


@router.delete("/session", status_code=204, responses=error_responses(CsrfFailed))
async def delete_session(request: Request, settings: SettingsDep) -> Response:
    """Sign a browser out: clears both session cookies (204, also when there was no
    session). With the session cookie present it needs ``X-CSRF-Token`` like any
    cookie-authenticated write, else 403 ``csrf_failed``. The token itself stays valid
    until it expires (tokens are stateless)."""
    if request.cookies.get(sessions.SESSION_COOKIE):
        sessions.check_csrf(request)
    response = Response(status_code=204)
    sessions.clear_session_cookies(response, request, secure=settings.COOKIE_SECURE)
    return response


router.include_router(_oauth2_router)


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


@router.get(
    "/me", response_model=MeSettingsOut, responses=error_responses(NotAuthenticated, InvalidToken)
)
async def read_me(user: CurrentUser, conn: Conn, settings: SettingsDep, now: Now) -> MeSettingsOut:
    """The calling user, with the end of any fair-use suspension and (an extension)
    whether e-mail is sent to them (`PATCH /auth/me` changes it)."""
    me = await auth_service.me(conn, settings, user_id=user.id, now=now)
    return MeSettingsOut(
        **me.user.model_dump(),
        suspended_until=me.suspended_until,
        email_notifications=await profile_db.email_notifications(conn, user.id),
    )


@router.patch(
    "/me", response_model=MeSettingsOut, responses=error_responses(NotAuthenticated, InvalidToken)
)
async def update_me(
    body: MePatch, user: CurrentUser, conn: Conn, settings: SettingsDep, now: Now
) -> MeSettingsOut:
    """Change the caller's e-mail address (`null` removes it), name, or e-mail opt-out
    (`email_notifications: false`: no e-mail; the in-app notifications go on). Absent
    fields are kept. Answers the caller as `GET /auth/me` does, plus `email_notifications`."""
    return await outbox_service.update_me(conn, settings, user_id=user.id, patch=body, now=now)


def _token_out(result: LoginResult) -> TokenOut:
    return TokenOut(
        access_token=result.access_token,
        expires_at=result.expires_at,
        user=UserOut.model_validate(result.user.model_dump()),
    )


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
