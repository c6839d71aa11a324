"""The booking rules shared by reservations and the waitlist."""

from datetime import datetime, timedelta

from app.errors import InvalidInterval
from app.settings import Settings

# A start this far in the past still counts as "now" (clients' clocks drift).
CLOCK_SKEW = timedelta(seconds=60)


def check_interval(start: datetime, end: datetime, settings: Settings, now: datetime) -> None:
    """The contract's booking rules that need the settings or the clock; each failure
    names the rule (422 invalid_interval). "End after start" is the schemas' rule
    (app/schemas/common.py ordered_interval), checked before a request gets here."""
    if start < now - CLOCK_SKEW:
        raise InvalidInterval("start_time is in the past")
    if end - start > settings.max_reservation:
        raise InvalidInterval(
            f"a reservation lasts at most {settings.MAX_RESERVATION_HOURS:g} hours"
        )
    if start > now + settings.booking_horizon:
        raise InvalidInterval(
            f"start_time must be within {settings.BOOKING_HORIZON_DAYS:g} days from now"
        )
