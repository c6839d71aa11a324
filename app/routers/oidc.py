"""Campus sign-in (api.md, "Campus sign-in (OpenID Connect)"): which sign-ins exist, the
redirect to the university's identity provider and the way back (app/services/oidc.py).

The callback ends like ``POST /auth/session``: the same two cookies (app/sessions.py), the
token made as for a password sign-in. Errors answer ``{detail, code}`` as JSON, or a small
page for a browser (it asked for HTML): never a token, a code or a secret in the answer,
a redirect or a log line.
"""

import html
import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from app import sessions
from app.deps import Now, PoolDep, SettingsDep, app_state
from app.errors import DomainError, error_body, error_responses
from app.services import oidc as oidc_service
from app.services.oidc import (
    PENDING_SECONDS,
    CampusSignIn,
    OidcAccountConflict,
    OidcBadRequest,
    OidcFailed,
    OidcNotConfigured,
    OidcUnavailable,
)
from app.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"])

# Binds a sign-in to the browser that started it (login CSRF): HttpOnly, only sent to
# /auth/oidc, gone after PENDING_SECONDS or at the callback.
STATE_COOKIE = "dlsms_oidc_state"
_COOKIE_PATH = "/auth/oidc"
DEFAULT_NEXT = "/app/branches"


class OidcProviderOut(BaseModel):
    name: str
    login_url: str


class ProvidersOut(BaseModel):
    password: bool = True
    oidc: OidcProviderOut | None


@router.get("/providers", response_model=ProvidersOut)
async def providers(settings: SettingsDep) -> ProvidersOut:
    """The sign-ins this service offers: password always; campus sign-in (OpenID Connect)
    when ``OIDC_ISSUER``, ``OIDC_CLIENT_ID`` and ``OIDC_CLIENT_SECRET`` are set."""
    if not settings.oidc_enabled:
        return ProvidersOut(oidc=None)
    return ProvidersOut(
        oidc=OidcProviderOut(name=settings.OIDC_PROVIDER_NAME, login_url="/auth/oidc/login")
    )


def _campus(request: Request, settings: Settings) -> CampusSignIn:
    """The app's one CampusSignIn (its cached metadata and keys), made on first use."""
    if not settings.oidc_enabled:
        raise OidcNotConfigured()
    campus: CampusSignIn | None = getattr(request.app.state, "dlsms_campus_sign_in", None)
    if campus is None:
        campus = CampusSignIn(settings, app_state(request)["redis"])
        request.app.state.dlsms_campus_sign_in = campus
    return campus


def _redirect_uri(request: Request, settings: Settings) -> str:
    # The URI registered at the provider: {PUBLIC_URL}/auth/oidc/callback, else this
    # request's own origin (scheme from a trusted proxy).
    if settings.PUBLIC_URL:
        return f"{settings.PUBLIC_URL}/auth/oidc/callback"
    return str(request.url_for("oidc_callback"))


def _safe_next(value: str | None) -> str:
    """A same-origin path, else the default: never another site (an open redirect)."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value)
        or len(value) > 1000
    ):
        return DEFAULT_NEXT
    return value


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _error(request: Request, exc: DomainError, settings: Settings) -> Response:
    """JSON ``{detail, code}``, or for a browser a page saying what failed, with a way back.
    The state cookie goes either way: a failed sign-in starts again from the beginning."""
    response: Response
    if _wants_html(request):
        detail = html.escape(exc.detail)
        response = HTMLResponse(
            "<!doctype html><html lang=en><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            "<link rel=stylesheet href='/static/css/app.css'><link rel=icon href='data:,'>"
            "<title>Sign-in failed · DL-SMS</title>"
            f"<main id=main><h1>Sign-in failed</h1><p class=error role=alert>{detail}</p>"
            f"<p>Error code: <code>{html.escape(exc.code)}</code></p>"
            "<p><a href='/app/signin'>Back to sign in</a></p></main></html>",
            status_code=exc.status_code,
        )
    else:
        response = JSONResponse(error_body(exc), status_code=exc.status_code)
    _clear_state_cookie(response, request, settings)
    return response


def _clear_state_cookie(response: Response, request: Request, settings: Settings) -> None:
    secure = settings.COOKIE_SECURE or request.url.scheme == "https"
    response.delete_cookie(
        STATE_COOKIE, path=_COOKIE_PATH, secure=secure, httponly=True, samesite="lax"
    )


@router.get(
    "/oidc/login",
    status_code=302,
    response_class=RedirectResponse,
    responses={
        302: {"description": "to the identity provider"},
        **error_responses(OidcNotConfigured, OidcUnavailable),
    },
)
async def oidc_login(
    request: Request,
    settings: SettingsDep,
    next: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Start a campus sign-in: 302 to the identity provider (authorization code flow with
    PKCE S256, state and nonce). ``next``: a path of this site to return to afterwards."""
    try:
        campus = _campus(request, settings)
        url, state = await campus.start(
            redirect_uri=_redirect_uri(request, settings), next_path=_safe_next(next)
        )
    except (OidcNotConfigured, OidcUnavailable) as exc:
        return _error(request, exc, settings)
    response = RedirectResponse(url, status_code=302)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=PENDING_SECONDS,
        path=_COOKIE_PATH,
        secure=settings.COOKIE_SECURE or request.url.scheme == "https",
        httponly=True,
        # Lax: sent on the provider's top-level redirect back to us, not on cross-site POSTs.
        samesite="lax",
    )
    return response


@router.get(
    "/oidc/callback",
    name="oidc_callback",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "signed in: to the web app"},
        **error_responses(
            OidcBadRequest, OidcFailed, OidcAccountConflict, OidcNotConfigured, OidcUnavailable
        ),
    },
)
async def oidc_callback(
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
    now: Now,
    state: Annotated[str | None, Query(max_length=500)] = None,
    code: Annotated[str | None, Query(max_length=4000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The identity provider's answer: checks the state (this browser's, single use),
    exchanges the code, verifies the ID token, creates or refreshes the account, sets the
    session cookies as ``POST /auth/session`` does and 303s to the web app."""
    try:
        campus = _campus(request, settings)
        if error is not None:
            # Still take the state out, so that it cannot be used afterwards.
            if state:
                await campus.pending.take(state)
            shown = error if error.replace("_", "").isalnum() else "error"
            raise OidcFailed(f"The identity provider did not sign you in ({shown})")
        claims, next_path = await campus.finish(
            state=state, browser_state=request.cookies.get(STATE_COOKIE), code=code
        )
        user, token, _ = await oidc_service.sign_in(pool, settings, claims, now=now)
    except (OidcFailed, OidcAccountConflict, OidcNotConfigured, OidcUnavailable) as exc:
        return _error(request, exc, settings)
    log.info("campus sign-in: user %s (%s)", user.id, user.role)
    response = RedirectResponse(next_path, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    sessions.set_session_cookies(
        response,
        request,
        token=token,
        max_age=int(settings.JWT_EXPIRE_HOURS * 3600),  # the token's lifetime
        secure=settings.COOKIE_SECURE,
    )
    _clear_state_cookie(response, request, settings)
    return response
