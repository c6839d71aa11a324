"""FastAPI dependencies as Annotated aliases, so routes read like their signatures."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, cast

from fastapi import Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer

from app import sessions
from app.cache import SeatCache
from app.db.pool import Connection, Pool, connection
from app.errors import Forbidden, NotAuthenticated
from app.models import TokenUser
from app.ratelimit import LoginLimiter
from app.realtime.broker import Broker
from app.realtime.publisher import Publisher
from app.security import PasswordHasher
from app.settings import Settings
from app.state import AppState

# Swagger's "Authorize" button logs in through /auth/token (OAuth2 password flow).
_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def app_state(request: Request) -> AppState:
    return cast(AppState, request.scope["state"])


async def _settings(request: Request) -> Settings:
    return app_state(request)["settings"]


async def _pool(request: Request) -> Pool:
    return app_state(request)["pool"]


async def _conn(request: Request) -> AsyncIterator[Connection]:
    async with connection(app_state(request)["pool"]) as conn:
        yield conn


async def _cache(request: Request) -> SeatCache:
    return app_state(request)["cache"]


async def _publisher(request: Request) -> Publisher:
    return app_state(request)["publisher"]


async def _broker(request: Request) -> Broker:
    return app_state(request)["broker"]


async def _hasher(request: Request) -> PasswordHasher:
    return app_state(request)["hasher"]


async def _login_limiter(request: Request) -> LoginLimiter:
    return app_state(request)["login_limiter"]


async def _now(request: Request) -> datetime:
    return app_state(request)["clock"].now()


async def _current_user(
    request: Request,
    token: Annotated[str | None, Depends(_bearer)],
) -> TokenUser:
    """The Bearer token's user, else the session cookie's; a write that the cookie alone
    authenticates must carry the CSRF header (app/sessions.py)."""
    if token:  # the header wins over a cookie sent along
        return app_state(request)["tokens"].user(token)
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    if not cookie:
        raise NotAuthenticated()
    user = app_state(request)["tokens"].user(cookie)
    sessions.check_csrf(request)
    return user


async def _stream_user(
    request: Request,
    token: Annotated[str | None, Depends(_bearer)],
    access_token: Annotated[
        str | None, Query(max_length=4096, description="The JWT, for browsers' EventSource")
    ] = None,
) -> TokenUser:
    # Streams are GETs: the session cookie needs no CSRF header here.
    token = token or access_token or request.cookies.get(sessions.SESSION_COOKIE)
    if not token:
        raise NotAuthenticated()
    return app_state(request)["tokens"].user(token)


async def _optional_user(
    request: Request,
    token: Annotated[str | None, Depends(_bearer)],
) -> TokenUser | None:
    """The caller, when a token (header, else session cookie) is sent; None when none is.
    A token that is sent but invalid or expired is a 401 ``invalid_token`` as everywhere
    else, not silently ignored: the client meant it to count."""
    token = token or request.cookies.get(sessions.SESSION_COOKIE)
    if not token:
        return None
    return app_state(request)["tokens"].user(token)


async def _admin_user(user: Annotated[TokenUser, Depends(_current_user)]) -> TokenUser:
    if not user.is_admin:
        raise Forbidden("This needs the admin role")
    return user


SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[Pool, Depends(_pool)]
Conn = Annotated[Connection, Depends(_conn)]
CacheDep = Annotated[SeatCache, Depends(_cache)]
PublisherDep = Annotated[Publisher, Depends(_publisher)]
BrokerDep = Annotated[Broker, Depends(_broker)]
HasherDep = Annotated[PasswordHasher, Depends(_hasher)]
LoginLimiterDep = Annotated[LoginLimiter, Depends(_login_limiter)]
Now = Annotated[datetime, Depends(_now)]
CurrentUser = Annotated[TokenUser, Depends(_current_user)]
StreamUser = Annotated[TokenUser, Depends(_stream_user)]
AdminUser = Annotated[TokenUser, Depends(_admin_user)]
OptionalUser = Annotated[TokenUser | None, Depends(_optional_user)]

# A path id: a positive 64-bit integer, else 422.
PathId = Annotated[int, Path(ge=1, le=2**63 - 1)]
