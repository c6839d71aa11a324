"""Time helpers. Everything is timezone-aware UTC inside the service."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
