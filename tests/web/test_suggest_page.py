"""'Find me a seat' (issue 13): from the branches page, a duration and wishes, the
suggestions of GET /seats/suggest with their reasons, Book on one (it books that seat for
that interval); when nothing is free now, the page says so and offers the later times."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from playwright.async_api import Page, ViewportSize, expect

from tests.factories import add_branch, add_reservation, add_seat
from tests.web.conftest import Library, Web, minute_now

PHONE_390: ViewportSize = {"width": 390, "height": 844}


async def my_reservations(db: asyncpg.Connection, user_id: int) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT seat_id, start_time, end_time, status FROM reservations WHERE user_id = $1",
            user_id,
        )
    )


def daytime_zone() -> str:
    """A zone where it is now the middle of the day (so 'later today' exists there)."""
    for name in ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati"):
        if 6 <= datetime.now(ZoneInfo(name)).hour <= 16:
            return name
    return "America/Los_Angeles"


async def local_hhmm(page: Page, moment: datetime, zone: str) -> str:
    text: str = await page.evaluate(
        "([iso, tz]) => new Intl.DateTimeFormat('en-GB', {timeZone: tz, hour: '2-digit', "
        "minute: '2-digit', hourCycle: 'h23'}).format(new Date(iso))",
        [moment.isoformat(), zone],
    )
    return text


async def test_find_me_a_seat_from_the_branches_page_and_book_a_suggestion(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    me = await web.student("S2021001")
    page = await web.signed_in_page(me)
    await page.set_viewport_size(PHONE_390)
    await page.goto("/app/branches")
    await page.get_by_role("link", name="Find me a seat").click()
    await expect(page.get_by_role("heading", name="Find me a seat")).to_be_visible()
    await page.get_by_label("For how long").select_option(label="1 hour")
    await page.get_by_label("Branch").select_option(label=library.branch)
    await page.get_by_label("Monitor").check()
    await page.get_by_role("button", name="Find seats").click()

    found = page.get_by_role("list").filter(has=page.locator(".suggestion"))
    first = found.get_by_role("listitem").filter(has=page.get_by_role("heading")).first
    await expect(first.get_by_role("heading")).to_have_text(f"Seat A1 · {library.branch}")
    await expect(first).to_contain_text("Now to ")
    reasons = first.get_by_role("list", name="Why seat A1")
    await expect(reasons.get_by_role("listitem").first).to_be_visible()
    await expect(page.locator("#later-note")).to_be_hidden()
    await expect(page.get_by_role("status").filter(has_text="for 1 hour")).to_contain_text(
        "from now"
    )
    await web.shot(page, "find-seat")
    assert await web.axe_violations(page) == []

    before = datetime.now(UTC)
    await first.get_by_role("button", name=re.compile(r"^Book seat A1")).click()
    await expect(first.get_by_role("status")).to_contain_text(f"Booked seat A1 at {library.branch}")
    [booked] = await my_reservations(db, me.id)
    assert booked["seat_id"] == library.seats["A1"]
    assert booked["status"] == "CONFIRMED"
    assert booked["end_time"] - booked["start_time"] == timedelta(hours=1)
    assert abs(booked["start_time"] - before) < timedelta(minutes=2)
    # The search stays in the address (a reload, or the way back from signing in).
    assert "duration=60" in page.url


async def test_when_nothing_is_free_now_the_page_says_so_and_offers_later_today(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    zone = daytime_zone()
    branch = await add_branch(db, "Night Owl", zone)
    seat = await add_seat(db, branch, "N1", area="Loft", power=True)
    me, other = await web.student("S2021001"), await web.student("S2021002")
    now = minute_now()
    frees = now + timedelta(minutes=40)
    await add_reservation(
        db, user_id=other.id, seat_id=seat, start=now - timedelta(minutes=10), end=frees
    )
    page = await web.signed_in_page(me, "desktop")
    await page.goto("/app/find?duration=60&branch=Night%20Owl")
    note = page.locator("#later-note")
    earliest = await local_hhmm(page, frees, zone)
    await expect(note).to_contain_text(
        f"Nothing is free right now for 1 hour. The earliest is from {earliest}"
    )
    item = page.locator(".suggestion").first
    await expect(item.get_by_role("heading")).to_have_text("Seat N1 · Night Owl")
    await expect(item).to_contain_text("later than you asked")
    await web.shot(page, "find-seat-later")
    assert await web.axe_violations(page) == []
    await item.get_by_role("button", name=re.compile(r"^Book seat N1")).click()
    await expect(item.get_by_role("status")).to_contain_text("Booked seat N1 at Night Owl")
    [booked] = await my_reservations(db, me.id)
    assert booked["seat_id"] == seat
    assert booked["start_time"] == frees
    assert booked["end_time"] == frees + timedelta(hours=1)


async def test_book_on_a_suggestion_signed_out_asks_to_sign_in_first(
    web: Web, library: Library
) -> None:
    page = await web.page()
    await page.goto("/app/find?duration=30")
    item = page.locator(".suggestion").first
    await expect(item).to_be_visible()
    await item.get_by_role("button", name=re.compile(r"^Book seat")).click()
    await page.wait_for_url(re.compile(r"/app/signin\?next="))
    assert "duration%3D30" in page.url
