"""Time helpers. Everything is timezone-aware UTC inside the service."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a trailing Z, as every time in a response."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
