"""A reservation as an iCalendar file (RFC 5545), for adding it to a calendar app."""

from datetime import datetime

from icalendar import Calendar, Event

from app.models import Reservation, ReservationStatus

_PRODUCT = "-//DL-SMS//Library seat reservations//EN"


def reservation_ics(reservation: Reservation, *, now: datetime) -> bytes:
    event = Event()
    # A stable UID: re-importing an updated file (cancelled, cut short) updates the event.
    event.add("uid", f"reservation-{reservation.id}@dl-sms")
    event.add("dtstamp", now)
    event.add("dtstart", reservation.start_time)
    event.add("dtend", reservation.end_time)
    event.add("summary", f"Library seat {reservation.label} ({reservation.branch})")
    event.add("location", f"{reservation.branch}, {reservation.area}, seat {reservation.label}")
    event.add(
        "description",
        f"Reservation {reservation.id}: seat {reservation.label} in {reservation.area}, "
        f"{reservation.branch}. Status: {reservation.status}.",
    )
    cancelled = reservation.status in (ReservationStatus.CANCELLED, ReservationStatus.NO_SHOW)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")

    calendar = Calendar()
    calendar.add("prodid", _PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical
