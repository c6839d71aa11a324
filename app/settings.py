"""All configuration, from environment variables (names as in the contract)."""

import hashlib
import hmac
import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.tokenbucket import Policy

Environment = Literal["development", "test", "production"]

_PG_SCHEMES = ("postgresql://", "postgres://")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_SECRET_FIELDS = frozenset(
    {"JWT_SECRET", "SEAT_CODE_SECRET", "ADMIN_PASSWORD", "DATABASE_URL", "REDIS_URL", "SMTP_URL"}
    | {"OIDC_CLIENT_SECRET"}
)
# What the default SEAT_CODE_SECRET is derived with from JWT_SECRET (HMAC-SHA256).
_SEAT_CODE_DERIVATION = b"dlsms seat codes"


class Settings(BaseSettings):
    """DL-SMS settings. Field names are the environment variable names."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    # Where things are
    DATABASE_URL: str | None = None  # None: embedded PostgreSQL in EMBEDDED_PG_DIR
    REDIS_URL: str | None = None  # None: no cache, in-process fan-out and rate limits
    EMBEDDED_PG_DIR: Path = Path(".dlsms/pg")
    DLSMS_ENV: Environment | None = None  # None: development when embedded, else production

    # Security
    JWT_SECRET: SecretStr | None = None
    JWT_EXPIRE_HOURS: float = Field(24, gt=0)
    BCRYPT_ROUNDS: int = Field(12, ge=4, le=31)
    BCRYPT_CONCURRENCY: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    # Failed logins per minute, per student_id and per client address.
    LOGIN_RATE_LIMIT: int = Field(10, ge=1)
    # Per-client API rate limit (app/apilimit.py): a token bucket per signed-in user of
    # API_RATE_BURST tokens refilled at API_RATE_LIMIT ("100/minute", "5/second"; "0"
    # turns the whole limit off), and per client address for callers without a valid
    # token at API_RATE_LIMIT_ANONYMOUS ("0": not limited), whose bucket holds as many
    # seconds of its rate as the user's does (200 tokens with the defaults).
    API_RATE_LIMIT: str = "100/minute"
    API_RATE_BURST: int = Field(20, ge=1)
    API_RATE_LIMIT_ANONYMOUS: str = "1000/minute"
    CORS_ORIGINS: Annotated[list[str], NoDecode] = []
    # Session cookies (POST /auth/session) marked Secure even over plain HTTP: for a TLS
    # proxy that does not send X-Forwarded-Proto. Over HTTPS they are Secure anyway.
    COOKIE_SECURE: bool = False
    # Peers trusted to set the client address and scheme (X-Forwarded-For/-Proto), as
    # uvicorn's --forwarded-allow-ips: IPs and CIDR networks, comma-separated, or "*".
    # Everyone else is taken at their socket's address; empty trusts no proxy.
    FORWARDED_ALLOW_IPS: Annotated[list[str], NoDecode] = ["127.0.0.1", "::1"]

    # Seat codes (POST /seats/{id}/scan). Unset secret: derived from JWT_SECRET, so the
    # printed codes stay valid as long as it does. Unset URL: the address each request
    # came in on (scheme from a trusted proxy's X-Forwarded-Proto, host from Host).
    SEAT_CODE_SECRET: SecretStr | None = None
    PUBLIC_URL: str | None = None

    # Booking rules (durations accept decimals so tests can run a life cycle in seconds)
    GRACE_MINUTES: float = Field(15, ge=0)
    CHECKIN_EARLY_MINUTES: float = Field(15, ge=0)
    CLAIM_MINUTES: float = Field(10, gt=0)
    MAX_RESERVATION_HOURS: float = Field(4, gt=0)
    BOOKING_HORIZON_DAYS: float = Field(14, gt=0)
    SWEEP_INTERVAL_SECONDS: float = Field(60, gt=0)
    NO_SHOW_LIMIT: int = Field(3, ge=1)
    NO_SHOW_WINDOW_DAYS: float = Field(30, gt=0)
    SUSPENSION_DAYS: float = Field(7, ge=0)

    # Live streams (SSE)
    SSE_HEARTBEAT_SECONDS: float = Field(15, gt=0, le=15)
    SSE_MAX_STREAM_SECONDS: float = Field(900, gt=0)  # then the client reconnects
    SSE_RETRY_MS: int = Field(3000, ge=0)

    # Operations
    # How long a seat listing may be served from Redis (writes invalidate it sooner).
    SEAT_CACHE_SECONDS: float = Field(10, gt=0)
    SCHEDULER_ENABLED: bool = True
    DB_POOL_MIN_SIZE: int = Field(2, ge=0)
    DB_POOL_MAX_SIZE: int = Field(20, ge=1)
    # asyncpg's per-connection cache of named prepared statements (its default, 100).
    # 0 behind PgBouncer older than 1.21 in transaction mode: unnamed statements only,
    # which survive a connection being handed to another server per transaction.
    DB_STATEMENT_CACHE_SIZE: int = Field(100, ge=0)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # auto: text when standard error is a terminal, else JSON (for log collectors).
    LOG_FORMAT: Literal["auto", "json", "text"] = "auto"
    # A line per request (uvicorn's access log, at INFO). Off where a proxy in front
    # (compose's nginx, an ingress) logs requests already: ~30 us of a worker's CPU each,
    # a tenth of a cached listing.
    ACCESS_LOG: bool = True
    # Largest request body accepted (the API takes small JSON documents); larger is 413.
    MAX_BODY_BYTES: int = Field(65536, ge=1024)
    # Longest a shutdown waits for requests in flight (SSE streams are told to go at once).
    SHUTDOWN_GRACE_SECONDS: float = Field(10, ge=0)
    # gRPC (api.md, "gRPC"): the port of the grpc.aio server in the same process; unset,
    # no gRPC. Every worker binds it (SO_REUSEPORT).
    GRPC_PORT: int | None = Field(None, ge=1, le=65535)
    # The address gRPC binds, like the HTTP side's: `dlsms serve --host` sets it (an
    # explicit GRPC_HOST wins). Loopback by default: nothing is exposed unasked.
    GRPC_HOST: str = Field("127.0.0.1", min_length=1)

    # Campus sign-in (api.md, "Campus sign-in (OpenID Connect)"): all three of issuer,
    # client id and secret, or none (then only password sign-in). The redirect URI to
    # register at the provider is {PUBLIC_URL}/auth/oidc/callback.
    OIDC_ISSUER: str | None = None
    OIDC_CLIENT_ID: str | None = None
    OIDC_CLIENT_SECRET: SecretStr | None = None
    OIDC_STUDENT_ID_CLAIM: str = Field("preferred_username", min_length=1)
    OIDC_ADMIN_GROUP: str | None = None  # members (in the `groups` claim) are admins
    OIDC_PROVIDER_NAME: str = Field("your university account", min_length=1, max_length=80)

    # E-mail (api.md, "Notifications beyond the app"): the SMTP relay as
    # smtp://user:pass@host:port (?starttls=true to upgrade) or smtps:// (implicit TLS).
    # Unset: no e-mail is queued or sent. Holds a password: never logged or echoed.
    SMTP_URL: SecretStr | None = None
    MAIL_FROM: str = "DL-SMS <no-reply@localhost>"
    # How long before a reservation's start its reminder goes out (e-mail and notification).
    REMINDER_MINUTES: float = Field(30, gt=0)
    # Webhooks (api.md): allow targets on loopback, private or link-local addresses.
    WEBHOOK_ALLOW_PRIVATE: bool = False

    # Demo seed
    ADMIN_PASSWORD: SecretStr | None = None
    DEMO_TIMEZONE: str = "UTC"

    @field_validator("DATABASE_URL")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(_PG_SCHEMES):
            raise ValueError("must start with postgresql://")
        return value or None

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(_REDIS_SCHEMES):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("API_RATE_LIMIT", "API_RATE_LIMIT_ANONYMOUS")
    @classmethod
    def _rate(cls, value: str) -> str:
        value = value.strip()
        if value != "0":
            Policy.parse("check", value, burst=1)  # ValueError names the bad value
        return value

    @field_validator("GRPC_PORT", mode="before")
    @classmethod
    def _unset_port(cls, value: Any) -> Any:
        return None if value == "" else value  # GRPC_PORT= (empty): no gRPC

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("FORWARDED_ALLOW_IPS", mode="before")
    @classmethod
    def _forwarded_allow_ips(cls, value: Any) -> Any:
        hosts = value.split(",") if isinstance(value, str) else value
        if not isinstance(hosts, list):
            return value
        hosts = [str(host).strip() for host in hosts if str(host).strip()]
        if "*" in hosts and hosts != ["*"]:
            raise ValueError('"*" trusts every peer and stands alone')
        for host in hosts:
            if host != "*":
                # uvicorn would take a bad one as a name that no peer ever matches, silently
                _check_ip_or_network(host)
        return hosts

    @field_validator("SEAT_CODE_SECRET")
    @classmethod
    def _seat_code_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret.encode()) < 32:
            raise ValueError("must be at least 32 bytes long")
        jwt = info.data.get("JWT_SECRET")
        if isinstance(jwt, SecretStr) and hmac.compare_digest(
            jwt.get_secret_value().encode(), secret.encode()
        ):
            # One key, one purpose: a leaked sheet of codes must not help forge tokens.
            raise ValueError("must differ from JWT_SECRET")
        return value

    @field_validator("PUBLIC_URL")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must have no query, fragment or credentials")
        return value.rstrip("/")

    @field_validator("SMTP_URL", mode="before")
    @classmethod
    def _smtp_url(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or raw == "":
            return None
        parts = urlsplit(str(raw))
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://[user:pass@]host[:port] or smtps://...")
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ValueError("has a bad port") from None
        return value

    @field_validator("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_ADMIN_GROUP", mode="before")
    @classmethod
    def _oidc_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("OIDC_CLIENT_SECRET", mode="before")
    @classmethod
    def _oidc_secret_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("OIDC_ISSUER")
    @classmethod
    def _oidc_issuer(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an https:// URL with a host")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must have no query, fragment or credentials")
        return value.rstrip("/")

    @field_validator("DEMO_TIMEZONE")
    @classmethod
    def _iana_timezone(cls, value: str) -> str:
        if not is_iana_timezone(value):
            raise ValueError(f"unknown IANA time zone {value!r}")
        return value

    @field_validator("ADMIN_PASSWORD")
    @classmethod
    def _admin_password_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not 8 <= len(value.get_secret_value().encode()) <= 72:
            raise ValueError("must be 8 to 72 bytes long")
        return value

    @field_validator("JWT_SECRET")
    @classmethod
    def _jwt_secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        # HS256 with a short key is brute-forceable; PyJWT warns below 32 bytes too.
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes long")
        return value

    @model_validator(mode="after")
    def _resolve_environment(self) -> "Settings":
        if self.DLSMS_ENV is None:
            self.DLSMS_ENV = "development" if self.DATABASE_URL is None else "production"
        if self.DB_POOL_MIN_SIZE > self.DB_POOL_MAX_SIZE:
            raise ValueError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        if self.JWT_SECRET is None:
            if self.DLSMS_ENV != "development":
                raise ValueError(
                    "JWT_SECRET is required unless DLSMS_ENV=development "
                    "(set it to at least 32 random bytes)"
                )
            self.JWT_SECRET = SecretStr(secrets.token_urlsafe(48))
            self._jwt_secret_generated = True
        self._check_oidc()
        return self

    def _check_oidc(self) -> None:
        given = [self.OIDC_ISSUER, self.OIDC_CLIENT_ID, self.OIDC_CLIENT_SECRET]
        if any(value is not None for value in given) and None in given:
            raise ValueError(
                "OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET go together: all or none"
            )
        if self.OIDC_ISSUER is not None and urlsplit(self.OIDC_ISSUER).scheme == "http":
            host = urlsplit(self.OIDC_ISSUER).hostname
            if self.DLSMS_ENV == "production" or host not in ("localhost", "127.0.0.1"):
                # ID tokens and the client secret must not cross the network in clear.
                raise ValueError(
                    "OIDC_ISSUER must be https:// (http:// only for localhost or "
                    "127.0.0.1 with DLSMS_ENV=development or test)"
                )

    @property
    def oidc_enabled(self) -> bool:
        """True when campus sign-in (OpenID Connect) is configured."""
        return self.OIDC_ISSUER is not None

    _jwt_secret_generated: bool = PrivateAttr(default=False)

    @property
    def jwt_secret_generated(self) -> bool:
        """True when no JWT_SECRET was given and a random one was made (development)."""
        return self._jwt_secret_generated

    # The booking rules as durations.
    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=self.GRACE_MINUTES)

    @property
    def checkin_early(self) -> timedelta:
        return timedelta(minutes=self.CHECKIN_EARLY_MINUTES)

    @property
    def claim_window(self) -> timedelta:
        return timedelta(minutes=self.CLAIM_MINUTES)

    @property
    def max_reservation(self) -> timedelta:
        return timedelta(hours=self.MAX_RESERVATION_HOURS)

    @property
    def booking_horizon(self) -> timedelta:
        return timedelta(days=self.BOOKING_HORIZON_DAYS)

    @property
    def reminder_lead(self) -> timedelta:
        return timedelta(minutes=self.REMINDER_MINUTES)

    # The API rate limit's buckets.
    @property
    def user_rate_policy(self) -> Policy | None:
        """The bucket per signed-in user; None when API_RATE_LIMIT=0 (no limit at all)."""
        if self.API_RATE_LIMIT == "0":
            return None
        return Policy.parse("user", self.API_RATE_LIMIT, burst=self.API_RATE_BURST)

    @property
    def address_rate_policy(self) -> Policy | None:
        """The bucket per client address, holding as many seconds of its rate as the
        user's bucket holds of its own; None when either limit is "0"."""
        user = self.user_rate_policy
        if user is None or self.API_RATE_LIMIT_ANONYMOUS == "0":
            return None
        rate = Policy.parse("address", self.API_RATE_LIMIT_ANONYMOUS, burst=1)
        seconds_of_burst = user.burst * user.interval
        return Policy(
            name="address",
            rate=rate.rate,
            period=rate.period,
            burst=max(1, round(seconds_of_burst / rate.interval)),
        )

    @property
    def jwt_secret(self) -> str:
        assert self.JWT_SECRET is not None  # filled in by _resolve_environment
        return self.JWT_SECRET.get_secret_value()

    @property
    def seat_code_secret(self) -> bytes:
        """The key of the seat codes, UTF-8: SEAT_CODE_SECRET, else the hex digest of
        HMAC-SHA256(JWT_SECRET, "dlsms seat codes") (never JWT_SECRET itself)."""
        if self.SEAT_CODE_SECRET is not None:
            return self.SEAT_CODE_SECRET.get_secret_value().encode()
        derived = hmac.new(self.jwt_secret.encode(), _SEAT_CODE_DERIVATION, hashlib.sha256)
        return derived.hexdigest().encode()


def is_iana_timezone(name: str) -> bool:
    """True for a real IANA zone name (``Europe/Berlin``), false for anything else."""
    if not name or name != name.strip() or len(name) > 64:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check_ip_or_network(value: str) -> None:
    """Raise ValueError unless ``value`` is an IP address or a network (CIDR)."""
    if "/" in value:
        ipaddress.ip_network(value)  # strict: 10.0.0.1/8 is refused, not widened
    else:
        ipaddress.ip_address(value)


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad variable and what is wrong, never echoing secrets."""
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"] and error["loc"][0] not in _SECRET_FIELDS and "input" in error:
            shown = error["input"]
            if isinstance(shown, str | int | float):
                message += f" (got {shown!r})"
        problems.append(f"{name}: {message}" if error["loc"] else message)
    return "invalid settings: " + "; ".join(problems)
