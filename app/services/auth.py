"""Accounts and tokens: register, log in, verify, who am I."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.db import users as users_db
from app.db.pool import Connection, Pool, connection
from app.errors import InvalidCredentials, InvalidToken, RateLimited
from app.models import User
from app.ratelimit import LoginLimiter
from app.security import PasswordHasher, TokenClaims, decode_token, encode_token
from app.services import fair_use
from app.settings import Settings


@dataclass(frozen=True)
class LoginResult:
    access_token: str
    expires_at: datetime
    user: User


@dataclass(frozen=True)
class Me:
    user: User
    suspended_until: datetime | None


async def register(
    pool: Pool,
    hasher: PasswordHasher,
    *,
    student_id: str,
    name: str,
    email: str | None,
    password: str,
) -> User:
    # Hash before taking a connection: bcrypt takes ~200 ms and the pool is shared.
    password_hash = await hasher.hash(password)
    async with connection(pool) as conn:
        return await users_db.insert(
            conn, student_id=student_id, name=name, email=email, password_hash=password_hash
        )


async def login(
    pool: Pool,
    hasher: PasswordHasher,
    limiter: LoginLimiter,
    settings: Settings,
    *,
    student_id: str,
    password: str,
    address: str,
    now: datetime,
) -> LoginResult:
    retry_after = await limiter.retry_after(student_id=student_id, address=address)
    if retry_after is not None:
        raise RateLimited(retry_after)
    async with connection(pool) as conn:
        user = await users_db.get_with_password(conn, student_id)
    # An unknown student_id is checked against a dummy hash: same answer, about the same time.
    if not await hasher.verify(password, user.password_hash if user else None) or user is None:
        await limiter.record_failure(student_id=student_id, address=address)
        raise InvalidCredentials()
    token, expires_at = encode_token(
        secret=settings.jwt_secret,
        user_id=user.id,
        student_id=user.student_id,
        role=user.role,
        now=now,
        ttl=timedelta(hours=settings.JWT_EXPIRE_HOURS),
    )
    return LoginResult(
        access_token=token,
        expires_at=expires_at,
        user=User.model_validate(user.model_dump(exclude={"password_hash"})),
    )


def verify(settings: Settings, token: str) -> TokenClaims:
    if not token:  # the contract: `{"token": ""}` is an invalid token, like any other
        raise InvalidToken()
    return decode_token(token, secret=settings.jwt_secret)


async def me(conn: Connection, settings: Settings, *, user_id: int, now: datetime) -> Me:
    user = await users_db.get(conn, user_id)
    if user is None:  # a valid token for an account that no longer exists
        raise InvalidToken()
    until = await fair_use.suspended_until(conn, settings, user_id=user_id, now=now)
    return Me(user=user, suspended_until=until)
