"""Every page at a phone and a desktop size: it renders under the CSP with no console
error, axe-core finds no serious or critical WCAG 2.1 AA violation, and a screenshot is
kept. Plus the waitlist and notifications pages' own flows."""

import re
from datetime import timedelta

import asyncpg
import pytest
from playwright.async_api import expect

from tests.factories import add_reservation
from tests.web.conftest import Library, Web, minute_now

PUBLIC = {
    "signin": "/app/signin",
    "register": "/app/register",
    "branches-public": "/app/branches",
    "seat-map-public": "/app/branches/Main Library",
}
SIGNED_IN = {
    "waitlist": "/app/waitlist",
    "notifications": "/app/notifications",
    "reservations-empty": "/app/reservations",
}


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
async def test_every_page_renders_accessibly_at_both_sizes(
    web: Web, library: Library, viewport: str
) -> None:
    student = await web.student("S2021001")
    page = await web.page(viewport)
    for name, path in PUBLIC.items():
        await page.goto(path)
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await expect(page.get_by_role("main")).to_be_visible()
        await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        await page.wait_for_load_state("networkidle")
        await web.shot(page, name)
        assert await web.axe_violations(page) == [], name
    await web.sign_in(page, student)
    for name, path in SIGNED_IN.items():
        await page.goto(path)
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await expect(page.locator("[aria-busy=true]")).to_have_count(0)
        await web.shot(page, name)
        assert await web.axe_violations(page) == [], name
    # No page scrolls sideways on a phone.
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_pages_keep_to_the_weight_budget(web: Web, library: Library) -> None:
    """First load of a page (HTML, CSS, JS as transferred, gzip when offered) < 150 KB."""
    page = await web.page()
    sizes: dict[str, int] = {}

    async def on_response(response: object) -> None:
        from playwright.async_api import Response

        assert isinstance(response, Response)
        if response.request.resource_type in ("document", "stylesheet", "script"):
            sizes[response.url] = len(await response.body())

    page.on("response", on_response)
    await page.goto(f"/app/branches/{library.branch}")
    await page.wait_for_load_state("networkidle")
    total = sum(sizes.values())
    assert total < 150_000, sizes  # uncompressed even: well under the compressed budget


async def test_joining_a_full_branchs_waitlist_and_leaving_it(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    taker, student = await web.student("S2021002"), await web.student("S2021001")
    now = minute_now()
    only_seat = await db.fetchval("SELECT id FROM seats WHERE label = 'S1'")
    await add_reservation(
        db, user_id=taker.id, seat_id=only_seat, start=now, end=now + timedelta(hours=4)
    )
    page = await web.signed_in_page(student)
    await page.goto("/app/waitlist")
    await page.get_by_label("Branch", exact=True).select_option("Science Library")
    await page.get_by_role("button", name="Join waitlist").click()
    await expect(page.get_by_role("status").filter(has_text="number 1 in line")).to_be_visible()
    entries = page.get_by_role("region", name="My entries")
    await expect(entries).to_contain_text("Any seat · Science Library")
    await expect(entries).to_contain_text("number 1 in line")
    await web.shot(page, "waitlist-joined")
    await entries.get_by_role("button", name="Leave waitlist").click()
    await expect(entries).to_contain_text("Left the line")

    # A branch with a free seat for that time: the page says to book instead.
    await page.get_by_label("Branch", exact=True).select_option(library.branch)
    await page.get_by_role("button", name="Join waitlist").click()
    await expect(page.get_by_role("alert")).to_contain_text("book it instead")


async def test_notifications_show_unread_count_and_mark_read(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    student = await web.student("S2021001")
    await db.execute(
        "INSERT INTO notifications (user_id, type, data) VALUES ($1, 'reservation.cancelled', "
        '\'{"reservation_id": 1, "seat_id": 1, "reason": "seat closed for repairs"}\')',
        student.id,
    )
    page = await web.signed_in_page(student)
    badge = page.get_by_role("link", name=re.compile("Notifications"))
    await expect(badge).to_contain_text("1 unread")
    await badge.click()
    items = page.locator("#notifications")
    await expect(items).to_contain_text("seat closed for repairs")
    await items.get_by_role("button", name="Mark read").click()
    await expect(items).to_contain_text("Read")
    await expect(page.locator("#unread-count")).to_be_hidden()
