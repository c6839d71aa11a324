"""Extend in My reservations (issue 13): +30 min, +1 h or another end time for a CONFIRMED
or CHECKED_IN reservation; time taken on the seat, another reservation of one's own, a
branch quota and the opening hours are each refused in words next to the choice. Quota
use on the seat map, and a refused booking saying `used` of `limit`."""

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from playwright.async_api import Page, ViewportSize, expect

from tests.factories import add_branch, add_reservation, add_seat, every_day, reservation_row
from tests.web.conftest import Library, Web, minute_now
from tests.web.test_staff import staff_member
from tests.web.test_suggest_page import daytime_zone

PHONE_390: ViewportSize = {"width": 390, "height": 844}


async def local_hhmm(page: Page, moment: datetime) -> str:
    """HH:MM of an instant in the browser's zone (what the page shows and reads)."""
    text: str = await page.evaluate(
        "(iso) => new Date(iso).toLocaleTimeString([], "
        "{hour: '2-digit', minute: '2-digit', hour12: false})",
        moment.isoformat(),
    )
    return text


async def open_extend(page: Page, label: str) -> Any:
    await page.get_by_role("button", name=f"Extend seat {label}").click()
    dialog = page.get_by_role("dialog", name=f"Extend seat {label}")
    await expect(dialog).to_be_visible()
    return dialog


async def test_extend_a_reservation_and_hear_why_a_longer_end_is_refused(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    me, other = await web.student("S2021001"), await web.student("S2021002")
    now = minute_now()
    start, end = now + timedelta(hours=1), now + timedelta(hours=2)
    mine = await add_reservation(
        db, user_id=me.id, seat_id=library.seats["A1"], start=start, end=end
    )
    # My own reservation of another seat from end + 30 min; someone else's on A1 from + 60.
    own = await add_reservation(
        db,
        user_id=me.id,
        seat_id=library.seats["A2"],
        start=end + timedelta(minutes=30),
        end=end + timedelta(minutes=90),
    )
    await add_reservation(
        db,
        user_id=other.id,
        seat_id=library.seats["A1"],
        start=end + timedelta(minutes=60),
        end=end + timedelta(minutes=120),
    )
    page = await web.signed_in_page(me)
    await page.set_viewport_size(PHONE_390)
    await page.goto("/app/reservations")

    dialog = await open_extend(page, "A1")
    await expect(dialog).to_contain_text(f"Now ends at {await local_hhmm(page, end)}")
    await dialog.get_by_label(re.compile(r"1 hour later")).check()
    await dialog.get_by_role("button", name="Extend", exact=True).click()
    alert = dialog.get_by_role("alert")
    await expect(alert).to_contain_text("You have another reservation before that time.")
    await web.shot(page, "extend-refused")
    assert await web.axe_violations(page) == []
    assert (await reservation_row(db, mine))["end_time"] == end

    await dialog.get_by_label(re.compile(r"30 minutes later")).check()
    await dialog.get_by_role("button", name="Extend", exact=True).click()
    await expect(dialog).to_be_hidden()
    new_end = end + timedelta(minutes=30)
    await expect(
        page.get_by_role("main").get_by_role("status").filter(has_text="Extended")
    ).to_contain_text(f"Extended: seat A1 is yours until {await local_hhmm(page, new_end)}.")
    assert (await reservation_row(db, mine))["end_time"] == new_end
    card = page.locator(f'[data-reservation-id="{mine}"]')
    await expect(card).to_contain_text(await local_hhmm(page, new_end))
    await expect(card.get_by_role("button", name="Extend seat A1")).to_be_focused()

    # The other seat freed: now someone else's booking on A1 is what stops an hour more.
    response = await web.api.delete(f"/reservations/{own}", headers=me.headers)
    assert response.status_code in (200, 204), response.text
    dialog = await open_extend(page, "A1")
    await dialog.get_by_label("Another time").check()
    await dialog.get_by_label("New end time").fill(
        await local_hhmm(page, new_end + timedelta(hours=1))
    )
    await dialog.get_by_role("button", name="Extend", exact=True).click()
    await expect(dialog.get_by_role("alert")).to_contain_text(
        "Someone else has booked this seat before that time."
    )
    assert (await reservation_row(db, mine))["end_time"] == new_end
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()


async def test_extend_checked_in_over_a_weekly_quota_says_used_of_limit(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    me = await web.student("S2021001")
    now = minute_now()
    start, end = now - timedelta(minutes=10), now + timedelta(minutes=50)
    mine = await add_reservation(
        db, user_id=me.id, seat_id=library.seats["A3"], start=start, end=end, status="CHECKED_IN"
    )
    done = await add_reservation(
        db,
        user_id=me.id,
        seat_id=library.seats["G1"],
        start=now - timedelta(hours=3),
        end=now - timedelta(hours=2),
        status="COMPLETED",
    )
    admin = await staff_member(web, db)
    bid: int = await db.fetchval("SELECT id FROM branches WHERE name = $1", library.branch)
    response = await web.api.put(
        f"/admin/branches/{bid}/policy", json={"max_hours_per_week": 2}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    page = await web.signed_in_page(me, "desktop")
    await page.goto("/app/reservations")
    # Only what still holds a seat can be extended.
    await expect(page.locator(f'[data-reservation-id="{done}"]')).to_contain_text("Completed")
    await expect(page.get_by_role("button", name="Extend seat G1")).to_have_count(0)
    dialog = await open_extend(page, "A3")
    await dialog.get_by_label(re.compile(r"1 hour later")).check()
    await dialog.get_by_role("button", name="Extend", exact=True).click()
    await expect(dialog.get_by_role("alert")).to_contain_text(
        re.compile(r"over this library's weekly limit: you've booked [\d.]+ of your 2 hours")
    )
    await web.shot(page, "extend-quota")
    assert (await reservation_row(db, mine))["end_time"] == end


async def test_seat_map_shows_quota_use_and_a_refused_booking_says_used_of_limit(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    me = await web.student("S2021001")
    admin = await staff_member(web, db)
    bid: int = await db.fetchval("SELECT id FROM branches WHERE name = $1", library.branch)
    response = await web.api.put(
        f"/admin/branches/{bid}/policy",
        json={"max_bookings_per_day": 1, "max_hours_per_week": 10},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    now = minute_now()
    await add_reservation(
        db,
        user_id=me.id,
        seat_id=library.seats["A2"],
        start=now - timedelta(minutes=5),  # today, even a minute before midnight
        end=now + timedelta(minutes=55),
    )
    page = await web.signed_in_page(me)
    await page.goto(f"/app/branches/{library.branch}")
    quota = page.locator("#quota-use")
    await expect(quota).to_contain_text(
        "Your use here: 1 of 1 booking today · 1 of 10 hours this week."
    )
    await expect(page.locator("#map")).to_have_attribute("aria-busy", "false")
    await page.get_by_role("button", name=re.compile(r"^A3, free\b")).click()
    dialog = page.get_by_role("dialog", name="Seat A3")
    await dialog.get_by_role("button", name="Book").click()
    await expect(dialog.get_by_role("alert")).to_contain_text(
        "You've already made 1 of the 1 booking this library allows per student on that day."
    )
    await web.shot(page, "seatmap-quota")
    assert await web.axe_violations(page) == []


async def test_extend_past_the_closing_time_shows_the_day_s_hours(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    zone = daytime_zone()
    branch = await add_branch(db, "Day Branch", zone)
    seat = await add_seat(db, branch, "D1", area="Hall")
    me = await web.student("S2021001")
    admin = await staff_member(web, db)
    now = minute_now()
    start, end = now + timedelta(minutes=10), now + timedelta(minutes=70)
    closes = (end + timedelta(minutes=30)).astimezone(ZoneInfo(zone)).strftime("%H:%M")
    weekly = every_day("00:00", closes)
    response = await web.api.put(
        f"/admin/branches/{branch}/hours", json={"weekly": weekly}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    mine = await add_reservation(db, user_id=me.id, seat_id=seat, start=start, end=end)
    page = await web.signed_in_page(me, "desktop")
    await page.goto("/app/reservations")
    dialog = await open_extend(page, "D1")
    await dialog.get_by_label(re.compile(r"1 hour later")).check()
    await dialog.get_by_role("button", name="Extend", exact=True).click()
    await expect(dialog.get_by_role("alert")).to_contain_text(
        f"The interval is outside opening hours: Day Branch is open 00:00-{closes}"
    )
    await web.shot(page, "extend-outside-hours")
    assert (await reservation_row(db, mine))["end_time"] == end
    # Up to the closing time is fine.
    await dialog.get_by_label(re.compile(r"30 minutes later")).check()
    await dialog.get_by_role("button", name="Extend", exact=True).click()
    await expect(dialog).to_be_hidden()
    assert (await reservation_row(db, mine))["end_time"] == end + timedelta(minutes=30)
