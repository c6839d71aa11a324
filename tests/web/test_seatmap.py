"""Branches and the seat map: counts, seats with data-seat-id and state words, filters, the
interval picker, booking (once per attempt), a seat taken meanwhile, the keyboard path."""

import asyncio
import re
import time
from datetime import timedelta

import asyncpg
from playwright.async_api import Page, expect

from tests.factories import add_reservation
from tests.web.conftest import Library, Web, minute_now


def seat(page: Page, label: str, state: str) -> object:
    return page.get_by_role("button", name=re.compile(rf"^{label}, {state}\b"))


async def open_map(page: Page, library: Library) -> None:
    await page.goto(f"/app/branches/{library.branch}")
    await expect(page.locator("#map")).to_have_attribute("aria-busy", "false")


async def test_branches_show_free_reserved_and_occupied_counts(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    a, b = await web.student("S2021001"), await web.student("S2021002")
    now = minute_now()
    await add_reservation(
        db, user_id=a.id, seat_id=library.seats["A1"], start=now, end=now + timedelta(hours=1)
    )
    await add_reservation(
        db,
        user_id=b.id,
        seat_id=library.seats["A2"],
        start=now - timedelta(minutes=10),
        end=now + timedelta(hours=1),
        status="CHECKED_IN",
    )
    for viewport in ("phone", "desktop"):
        page = await web.page(viewport)
        await page.goto("/app/branches")
        card = page.get_by_role("listitem").filter(
            has=page.get_by_role("heading", name=library.branch)
        )
        await expect(card).to_contain_text("2 free")  # A3, G1 (G2 is in maintenance)
        await expect(card).to_contain_text("1 reserved")
        await expect(card).to_contain_text("1 occupied")
        await expect(card).to_contain_text("5 seats")
        await web.shot(page, "branches")
        assert await web.axe_violations(page) == []


async def test_seat_map_names_every_seat_with_its_label_and_state(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    a, b = await web.student("S2021001"), await web.student("S2021002")
    now = minute_now()
    await add_reservation(
        db, user_id=a.id, seat_id=library.seats["A1"], start=now, end=now + timedelta(hours=1)
    )
    await add_reservation(
        db,
        user_id=b.id,
        seat_id=library.seats["A2"],
        start=now - timedelta(minutes=5),
        end=now + timedelta(hours=1),
        status="CHECKED_IN",
    )
    for viewport in ("phone", "desktop"):
        page = await web.page(viewport)
        await open_map(page, library)
        for label, state in [
            ("A1", "booked"),
            ("A2", "occupied"),
            ("A3", "free"),
            ("G1", "free"),
            ("G2", "maintenance"),
        ]:
            button = page.locator(f'[data-seat-id="{library.seats[label]}"]')
            await expect(button).to_have_attribute("aria-label", re.compile(rf"^{label}, {state}"))
            await expect(button).to_contain_text(state)  # in words too, not colour alone
        await expect(page.get_by_role("heading", name=re.compile("^Quiet"))).to_be_visible()
        await expect(page.get_by_role("heading", name=re.compile("^Group"))).to_be_visible()
        await web.shot(page, "seat-map")
        assert await web.axe_violations(page) == []


async def test_filters_narrow_the_map_by_area_power_and_monitor(web: Web, library: Library) -> None:
    page = await web.page("desktop")
    await open_map(page, library)
    seats = page.locator("[data-seat-id]")
    await expect(seats).to_have_count(5)
    await page.get_by_label("Area").select_option("Group")
    await expect(seats).to_have_count(2)
    await page.get_by_label("Area").select_option("")
    await page.get_by_role("checkbox", name="Power outlet").check()
    await expect(seats).to_have_count(2)  # A1, A2
    await page.get_by_role("checkbox", name="Monitor").check()
    await expect(seats).to_have_count(1)
    await expect(seats.first).to_have_attribute(
        "aria-label", re.compile(r"^A1, free, power, monitor")
    )


async def test_interval_picker_answers_free_for_that_interval(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    a = await web.student("S2021001")
    tomorrow = minute_now().replace(hour=10, minute=0) + timedelta(days=1)
    await add_reservation(
        db,
        user_id=a.id,
        seat_id=library.seats["A3"],
        start=tomorrow,
        end=tomorrow + timedelta(hours=2),
    )
    page = await web.page("desktop")
    await open_map(page, library)
    a3 = page.locator(f'[data-seat-id="{library.seats["A3"]}"]')
    await expect(a3).to_have_attribute("aria-label", re.compile(r"^A3, free"))
    local = await page.evaluate(
        "(iso) => { const d = new Date(iso); return [d.getFullYear() + '-' + "
        "String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0'),"
        " String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0')] }",
        tomorrow.isoformat(),
    )
    await page.get_by_label("Date").fill(local[0])
    await page.get_by_label("From").fill(local[1])
    await page.get_by_role("button", name="Show seats").click()
    await expect(a3).to_have_attribute("aria-label", re.compile(r"^A3, booked"))
    # The seat's day lists that busy time.
    await a3.click()
    dialog = page.get_by_role("dialog", name="Seat A3")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("list")).to_contain_text(f"{local[1]} to ")
    await expect(dialog.get_by_role("button", name="Join waitlist")).to_be_visible()


async def test_a_map_showing_another_time_changes_live_when_that_time_is_booked(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    booker, other = await web.student("S2021001"), await web.student("S2021002")
    tomorrow = minute_now().replace(hour=10, minute=0) + timedelta(days=1)
    # A2 is booked tomorrow only: seeing it booked proves the map shows tomorrow.
    await add_reservation(
        db,
        user_id=other.id,
        seat_id=library.seats["A2"],
        start=tomorrow,
        end=tomorrow + timedelta(hours=1),
    )
    page = await web.page("desktop")
    listing_reads: list[float] = []
    page.on(
        "request", lambda r: listing_reads.append(time.monotonic()) if "/seats?" in r.url else None
    )
    await open_map(page, library)
    local = await page.evaluate(
        "(iso) => { const d = new Date(iso); return [d.getFullYear() + '-' + "
        "String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0'),"
        " String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0')] }",
        tomorrow.isoformat(),
    )
    await page.get_by_label("Date").fill(local[0])
    await page.get_by_label("From").fill(local[1])
    await page.get_by_role("button", name="Show seats").click()
    # Changing the fields also schedules a read (debounced): let every read so far happen,
    # so that only the stream can explain the next one.
    await eventually_quiet(listing_reads, quiet_for=0.6, within=5)
    a2 = page.locator(f'[data-seat-id="{library.seats["A2"]}"]')
    await expect(a2).to_have_attribute("aria-label", re.compile(r"^A2, booked"))
    a3 = page.locator(f'[data-seat-id="{library.seats["A3"]}"]')
    await expect(a3).to_have_attribute("aria-label", re.compile(r"^A3, free"))
    await page.evaluate("window.__notReloaded = true")

    # Someone else books tomorrow's 10:00 (nothing changes *now*: only `seats.changed`).
    booked = await web.api.post(
        "/reservations",
        json={
            "seat_id": library.seats["A3"],
            "start_time": tomorrow.isoformat(),
            "end_time": (tomorrow + timedelta(hours=1)).isoformat(),
        },
        headers=booker.headers,
    )
    assert booked.status_code == 201, booked.text

    await expect(a3).to_have_attribute("aria-label", re.compile(r"^A3, booked"), timeout=3000)
    assert await page.evaluate("window.__notReloaded") is True


async def eventually_quiet(events: list[float], *, quiet_for: float, within: float) -> None:
    """Wait until nothing was appended to ``events`` for ``quiet_for`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        last = events[-1] if events else 0.0
        if time.monotonic() - last >= quiet_for:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still busy after {within} s")


async def test_double_clicked_book_books_once(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    student = await web.student("S2021001")
    page = await web.signed_in_page(student)
    await open_map(page, library)
    await page.locator(f'[data-seat-id="{library.seats["A1"]}"]').click()
    dialog = page.get_by_role("dialog", name="Seat A1")
    await dialog.get_by_role("button", name="Book").dblclick()
    await expect(dialog.get_by_role("status")).to_contain_text("Booked seat A1")
    await web.shot(page, "booked")
    rows = await db.fetch("SELECT user_id, seat_id, status FROM reservations")
    assert [tuple(r) for r in rows] == [(student.id, library.seats["A1"], "CONFIRMED")]
    await dialog.get_by_role("button", name="Close").click()
    await expect(page.locator(f'[data-seat-id="{library.seats["A1"]}"]')).to_have_attribute(
        "aria-label", re.compile(r"^A1, booked")
    )


async def test_a_seat_taken_meanwhile_says_so_and_offers_the_waitlist(
    web: Web, library: Library
) -> None:
    me, rival = await web.student("S2021001"), await web.student("S2021002")
    page = await web.signed_in_page(me)
    await open_map(page, library)
    await page.locator(f'[data-seat-id="{library.seats["A3"]}"]').click()
    dialog = page.get_by_role("dialog", name="Seat A3")
    await expect(dialog.get_by_role("button", name="Book")).to_be_visible()
    # The rival books the same seat for the same time while the dialog is open.
    now = minute_now()
    response = await web.api.post(
        "/reservations",
        json={
            "seat_id": library.seats["A3"],
            "start_time": now.isoformat(),
            "end_time": (now + timedelta(hours=3)).isoformat(),
        },
        headers=rival.headers,
    )
    assert response.status_code == 201, response.text
    await dialog.get_by_role("button", name="Book").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("Someone just took this seat")
    join = dialog.get_by_role("button", name="Join waitlist")
    await expect(join).to_be_focused()
    await web.shot(page, "seat-taken")
    await join.click()
    await expect(dialog.get_by_role("status")).to_contain_text("number 1 in line")
    entries = (await web.api.get("/waitlist", headers=me.headers)).json()
    assert [e["seat_id"] for e in entries["items"]] == [library.seats["A3"]]


async def test_booking_works_with_the_keyboard_alone(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    student = await web.student("S2021001")
    page = await web.signed_in_page(student, "desktop")
    await open_map(page, library)
    target = page.locator(f'[data-seat-id="{library.seats["G1"]}"]')
    for _ in range(60):  # Tab through the page until the seat has focus
        await page.keyboard.press("Tab")
        if await target.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("G1 never got keyboard focus")
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Seat G1")
    await expect(dialog).to_be_visible()
    book = dialog.get_by_role("button", name="Book")
    for _ in range(10):
        if await book.evaluate("el => el === document.activeElement"):
            break
        await page.keyboard.press("Tab")
    else:
        raise AssertionError("Book never got keyboard focus")
    await page.keyboard.press("Enter")
    await expect(dialog.get_by_role("status")).to_contain_text("Booked seat G1")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(target).to_be_focused()
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1
