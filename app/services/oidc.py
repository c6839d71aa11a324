"""Campus sign-in (api.md, "Campus sign-in (OpenID Connect)").

Authlib does the protocol: discovery (``/.well-known/openid-configuration``, fetched once
and cached), the authorization URL with PKCE (S256), state and nonce, the code exchange,
and the ID token check (signature against the issuer's JWKS, cached and fetched again when
a token names an unknown ``kid``; ``iss``, ``aud``/``azp``, ``nonce``, ``exp``, ``iat``,
``at_hash``). Its HTTP client is httpx2, async.

What a sign-in in progress needs later (nonce, PKCE verifier, where to go afterwards) stays
on the server, under its ``state``: in Redis when configured (every instance sees it), else
in this process. The callback takes it out once (a replayed ``state`` finds nothing), and
only from the browser that started: that browser holds the state in an HttpOnly cookie.
"""

import asyncio
import base64
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from joserfc.errors import JoseError
from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.db import oidc_users
from app.db.pool import Pool, connection
from app.errors import DomainError
from app.models import Role, User
from app.schemas.common import Label, Name
from app.security import encode_token
from app.settings import Settings

log = logging.getLogger(__name__)
# Authlib logs the PKCE verifier at DEBUG: never, whatever LOG_LEVEL says.
logging.getLogger("authlib").setLevel(logging.INFO)

PENDING_SECONDS = 600  # from the redirect to the provider until the callback
_PENDING_KEY = "dlsms:oidc:pending:"
_MEMORY_LIMIT = 10_000  # sign-ins in progress kept in process (oldest dropped first)
_SCOPE = "openid profile email"
_LEEWAY_SECONDS = 60  # clock skew allowed on exp and iat

_LABEL: TypeAdapter[str] = TypeAdapter(Label)
_NAME: TypeAdapter[str] = TypeAdapter(Name)


class OidcFailed(DomainError):
    """The sign-in was refused: bad or replayed state, a token that does not verify."""

    status_code, code, default_detail = 401, "oidc_failed", "Campus sign-in failed"


class OidcBadRequest(OidcFailed):
    status_code = 400


class OidcAccountConflict(DomainError):
    status_code, code = 409, "oidc_account_conflict"
    default_detail = (
        "An account with this student ID signs in with a password; sign in with it, or "
        "ask the library to remove it before using your university account"
    )


class OidcNotConfigured(DomainError):
    status_code, code = 404, "oidc_not_configured"
    default_detail = "Campus sign-in (OpenID Connect) is not configured here"


class OidcUnavailable(DomainError):
    status_code, code = 503, "oidc_unavailable"
    default_detail = "The identity provider could not be reached; try again in a moment"


@dataclass(frozen=True)
class Pending:
    """A sign-in in progress, kept under its state."""

    nonce: str
    code_verifier: str
    redirect_uri: str
    next_path: str

    def dumps(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def loads(cls, text: str | bytes) -> "Pending":
        return cls(**json.loads(text))


class PendingStore:
    """Sign-ins in progress: Redis (shared by every instance) or this process."""

    def __init__(self, redis: Redis | None) -> None:
        self._redis = redis
        self._memory: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def put(self, state: str, pending: Pending) -> None:
        if self._redis is not None:
            try:
                await self._redis.set(_PENDING_KEY + state, pending.dumps(), ex=PENDING_SECONDS)
            except RedisError as exc:
                raise OidcUnavailable("Sign-in is unavailable for a moment; try again") from exc
            return
        now = time.monotonic()
        while self._memory and (
            len(self._memory) >= _MEMORY_LIMIT or next(iter(self._memory.values()))[0] < now
        ):
            self._memory.popitem(last=False)
        self._memory[state] = (now + PENDING_SECONDS, pending.dumps())

    async def take(self, state: str) -> Pending | None:
        """The sign-in under ``state``, removed: a second take finds nothing."""
        if self._redis is not None:
            try:
                text = await self._redis.getdel(_PENDING_KEY + state)
            except RedisError as exc:
                raise OidcUnavailable("Sign-in is unavailable for a moment; try again") from exc
            return None if text is None else Pending.loads(text)
        entry = self._memory.pop(state, None)
        if entry is None or entry[0] < time.monotonic():
            return None
        return Pending.loads(entry[1])


class CampusSignIn:
    """One per app: the Authlib client (with its cached metadata and keys) and the store."""

    def __init__(self, settings: Settings, redis: Redis | None) -> None:
        assert settings.OIDC_ISSUER is not None
        assert settings.OIDC_CLIENT_ID is not None
        assert settings.OIDC_CLIENT_SECRET is not None
        self.settings = settings
        self.issuer = settings.OIDC_ISSUER
        self.client_id = settings.OIDC_CLIENT_ID
        self.pending = PendingStore(redis)
        oauth = OAuth()
        client = oauth.register(
            "campus",
            client_id=settings.OIDC_CLIENT_ID,
            client_secret=settings.OIDC_CLIENT_SECRET.get_secret_value(),
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": _SCOPE, "code_challenge_method": "S256", "timeout": 10},
        )
        assert isinstance(client, StarletteOAuth2App)
        self._client = client
        self._metadata_lock = asyncio.Lock()

    async def _metadata(self) -> dict[str, Any]:
        async with self._metadata_lock:  # one discovery fetch, however many sign-ins wait
            metadata: dict[str, Any] = await self._client.load_server_metadata()
        if metadata.get("issuer") != self.issuer:
            # OpenID Connect Discovery 4.3: the document must name the issuer we asked.
            self._client.server_metadata.clear()
            raise OidcUnavailable("The identity provider's metadata names another issuer")
        return metadata

    async def start(self, *, redirect_uri: str, next_path: str) -> tuple[str, str]:
        """The provider's authorization URL and the state it carries."""
        try:
            await self._metadata()
            made = await self._client.create_authorization_url(
                redirect_uri,
                state=secrets.token_urlsafe(32),
                nonce=secrets.token_urlsafe(32),
            )
        except httpx2.HTTPError as exc:
            raise OidcUnavailable() from exc
        except (AuthlibBaseError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("campus sign-in: bad provider metadata (%s)", type(exc).__name__)
            raise OidcUnavailable() from exc
        state: str = made["state"]
        await self.pending.put(
            state,
            Pending(
                nonce=made["nonce"],
                code_verifier=made["code_verifier"],
                redirect_uri=redirect_uri,
                next_path=next_path,
            ),
        )
        return made["url"], state

    async def finish(
        self, *, state: str | None, browser_state: str | None, code: str | None
    ) -> tuple[dict[str, Any], str]:
        """Check the callback's state (this browser's, not used before), exchange the code
        and verify the ID token: its claims and where to go afterwards."""
        if not state:
            raise OidcBadRequest("The sign-in answer has no state; start again")
        if not browser_state or not hmac.compare_digest(state.encode(), browser_state.encode()):
            raise OidcBadRequest("This sign-in was not started in this browser; start again")
        pending = await self.pending.take(state)
        if pending is None:
            raise OidcBadRequest("This sign-in has expired or was already used; start again")
        if not code:
            raise OidcBadRequest("The sign-in answer has no authorization code; start again")
        try:
            await self._metadata()
            token = await self._client.fetch_access_token(  # type: ignore[no-untyped-call]
                redirect_uri=pending.redirect_uri,
                code=code,
                code_verifier=pending.code_verifier,
            )
            if "id_token" not in token:
                raise OidcFailed("The identity provider sent no ID token")
            claims = await self._verified_claims(token, pending.nonce)
        except httpx2.HTTPError as exc:
            raise OidcUnavailable() from exc
        except (AuthlibBaseError, JoseError) as exc:
            # The class and the library's error code only: never the token or the code.
            reason = getattr(exc, "error", None) or type(exc).__name__
            description = getattr(exc, "description", None)
            if isinstance(description, str) and description and description != reason:
                reason = f"{reason}: {description[:200]}"
            log.warning("campus sign-in refused: %s", reason)
            raise OidcFailed(f"The identity provider's answer did not verify ({reason})") from exc
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("campus sign-in refused: malformed answer (%s)", type(exc).__name__)
            raise OidcFailed("The identity provider's answer was malformed") from exc
        return dict(claims), pending.next_path

    async def _verified_claims(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        """The ID token's claims, checked (Authlib fetches the JWKS again when the token
        names a ``kid`` it does not know). A token naming no key that fails the check is
        tried once more after fetching the keys again: a provider with one key may rotate
        it without key ids (the ID tokens come from the token endpoint only, so nobody else
        can make us fetch)."""
        try:
            return await self._parse_id_token(token, nonce)
        except JoseError as exc:
            if exc.error != "bad_signature" or _names_key(token["id_token"]):
                raise
        await self._client.fetch_jwk_set(force=True)
        return await self._parse_id_token(token, nonce)

    async def _parse_id_token(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        claims = await self._client.parse_id_token(
            token,
            nonce=nonce,
            # Authlib checks aud only through azp unless told: the audience must hold our
            # client id (OpenID Connect Core 3.1.3.7, step 3).
            claims_options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id},
            },
            leeway=_LEEWAY_SECONDS,
        )
        return dict(claims)


def _names_key(id_token: str) -> bool:
    """True when the token's JOSE header has a ``kid``."""
    try:
        header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
    except (ValueError, IndexError):
        return False
    return isinstance(header, dict) and "kid" in header


@dataclass(frozen=True)
class Account:
    student_id: str
    name: str
    email: str | None
    role: Role


def account_from_claims(settings: Settings, claims: dict[str, Any]) -> Account:
    """The account fields from verified ID token claims (api.md: student_id from
    OIDC_STUDENT_ID_CLAIM, name and email from the standard claims, admin by group)."""
    claim = settings.OIDC_STUDENT_ID_CLAIM
    try:
        student_id = _LABEL.validate_python(claims.get(claim))
    except ValidationError as exc:
        raise OidcFailed(
            f"The identity provider sent no usable {claim!r} claim (the student ID)"
        ) from exc
    name = _first_name(claims) or student_id
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        email = None
    groups = claims.get("groups")
    admin_group = settings.OIDC_ADMIN_GROUP
    is_admin = (
        admin_group is not None
        and isinstance(groups, list)
        and any(isinstance(group, str) and group == admin_group for group in groups)
    )
    return Account(student_id, name, email, Role.ADMIN if is_admin else Role.STUDENT)


def _first_name(claims: dict[str, Any]) -> str | None:
    given = " ".join(part for part in (claims.get("given_name"), claims.get("family_name")) if part)
    for candidate in (claims.get("name"), given):
        if isinstance(candidate, str):
            try:
                return _NAME.validate_python(candidate[:200])
            except ValidationError:
                continue
    return None


async def sign_in(
    pool: Pool, settings: Settings, claims: dict[str, Any], *, now: datetime
) -> tuple[User, str, datetime]:
    """The account (created on the first sign-in, refreshed after) and its token, made as
    password sign-in makes it."""
    account = account_from_claims(settings, claims)
    async with connection(pool) as conn:
        user = await oidc_users.upsert(
            conn,
            student_id=account.student_id,
            name=account.name,
            email=account.email,
            role=account.role,
            role_from_group=settings.OIDC_ADMIN_GROUP is not None,
        )
    if user is None:
        raise OidcAccountConflict()
    token, expires_at = encode_token(
        secret=settings.jwt_secret,
        user_id=user.id,
        student_id=user.student_id,
        role=user.role,
        now=now,
        ttl=timedelta(hours=settings.JWT_EXPIRE_HOURS),
    )
    return user, token, expires_at
