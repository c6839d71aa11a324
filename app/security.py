"""Password hashing (bcrypt, off the event loop, with a concurrency cap) and JWTs (HS256)."""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher

from app.errors import InvalidToken
from app.models import Role, TokenUser

JWT_ALGORITHM = "HS256"


class PasswordHasher:
    """bcrypt through pwdlib. One bcrypt-12 call takes ~200 ms of CPU, so it runs in a
    worker thread (bcrypt releases the GIL) and at most ``concurrency`` run at once:
    a login storm queues instead of starving every other request of threads."""

    def __init__(self, rounds: int, concurrency: int) -> None:
        self._hash = PasswordHash((BcryptHasher(rounds=rounds),))
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash.hash, password, limiter=self._limiter)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check a password. With no hash (unknown user) a dummy hash is checked instead,
        so that the answer takes as long as for a real user with a wrong password."""
        if password_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash(uuid.uuid4().hex)
            await anyio.to_thread.run_sync(
                self._hash.verify, password, self._dummy_hash, limiter=self._limiter
            )
            return False
        return await anyio.to_thread.run_sync(
            self._hash.verify, password, password_hash, limiter=self._limiter
        )


@dataclass(frozen=True)
class TokenClaims:
    user: TokenUser
    expires_at: datetime


def encode_token(
    *, secret: str, user_id: int, student_id: str, role: Role, now: datetime, ttl: timedelta
) -> tuple[str, datetime]:
    expires_at = (now + ttl).replace(microsecond=0)
    payload = {
        "sub": str(user_id),
        "sid": student_id,
        "role": role.value,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM), expires_at


def decode_token(token: str, *, secret: str) -> TokenClaims:
    """Verify signature and expiry; only HS256 is accepted (no ``alg: none``, no key confusion)."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "sub", "sid", "role"]},
        )
        user_id = int(payload["sub"])
        if not 1 <= user_id <= 2**63 - 1:
            raise ValueError("sub is not a user id")
        user = TokenUser(id=user_id, student_id=str(payload["sid"]), role=Role(payload["role"]))
        expires_at = datetime.fromtimestamp(int(payload["exp"]), tz=UTC)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken() from exc
    return TokenClaims(user=user, expires_at=expires_at)


class TokenVerifier:
    """Verifies tokens, remembering each valid one until it expires.

    Checking a token (PyJWT's parsing and the HMAC) was 7 % of a booking's CPU, repeated
    on every request of a student who holds the same token for hours. A token that
    verified once stays valid until its ``exp`` (nothing revokes a token here: see the
    README), so later requests only look it up. Invalid tokens are not remembered."""

    def __init__(self, secret: str, capacity: int = 20_000) -> None:
        self._secret = secret
        self._capacity = capacity  # past it everything is forgotten at once: bounded memory
        self._valid: dict[str, tuple[TokenClaims, float]] = {}  # token -> claims, exp (epoch s)

    def claims(self, token: str) -> TokenClaims:
        """The token's claims; ``InvalidToken`` when it is not valid (now)."""
        known = self._valid.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        claims = decode_token(token, secret=self._secret)
        if len(self._valid) >= self._capacity:
            self._valid.clear()
        self._valid[token] = (claims, claims.expires_at.timestamp())
        return claims

    def user(self, token: str) -> TokenUser:
        return self.claims(token).user
