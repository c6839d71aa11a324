"""Seat codes in the browser: /s/{id}?k= signs in if needed, then checks in, books a
walk-in, or says when the seat frees up; a wrong code says so."""

import re
from datetime import timedelta

import asyncpg
from playwright.async_api import expect

from app.models import Role
from tests.factories import add_reservation, add_student, reservation_status
from tests.web.conftest import Library, Web, minute_now


async def seat_url(web: Web, db: asyncpg.Connection, seat_id: int) -> str:
    """The seat's printed URL (path and query), as the admin API gives it."""
    admin = await add_student(db, "admin", role=Role.ADMIN)
    response = await web.api.get(f"/admin/seats/{seat_id}/code", headers=admin.headers)
    assert response.status_code == 200, response.text
    return f"/s/{seat_id}?k={response.json()['k']}"


async def test_scan_signs_in_then_checks_in_to_the_booking(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    student = await web.student("S2021001")
    now = minute_now()
    booked = await add_reservation(
        db, user_id=student.id, seat_id=library.seats["A1"], start=now, end=now + timedelta(hours=1)
    )
    url = await seat_url(web, db, library.seats["A1"])
    page = await web.page()
    await page.goto(url)
    await expect(page).to_have_url(re.compile(r"/app/signin\?next="))
    await page.get_by_label("Student ID").fill(student.student_id)
    await page.get_by_label("Password").fill("password123")
    await page.get_by_role("button", name="Sign in").click()
    await expect(
        page.get_by_role("status").filter(has_text="Checked in to seat A1")
    ).to_be_visible()
    await web.shot(page, "scan-checked-in")
    assert await reservation_status(db, booked) == "CHECKED_IN"


async def test_scan_of_a_free_seat_books_a_walk_in(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    student = await web.student("S2021001")
    url = await seat_url(web, db, library.seats["A2"])
    page = await web.signed_in_page(student)
    await page.goto(url)
    await expect(page.get_by_role("status").filter(has_text="Walk-in booked")).to_be_visible()
    status = await db.fetchval(
        "SELECT status FROM reservations WHERE user_id = $1 AND seat_id = $2",
        student.id,
        library.seats["A2"],
    )
    assert status == "CHECKED_IN"


async def test_scan_of_a_taken_seat_says_when_it_frees_up(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    owner, student = await web.student("S2021002"), await web.student("S2021001")
    now = minute_now()
    # It must free up today (the branch is in UTC): late in the day, just before midnight.
    midnight = now.replace(hour=0, minute=0) + timedelta(days=1)
    end = min(now + timedelta(hours=1), midnight - timedelta(seconds=1))
    await add_reservation(db, user_id=owner.id, seat_id=library.seats["A3"], start=now, end=end)
    url = await seat_url(web, db, library.seats["A3"])
    page = await web.signed_in_page(student, "desktop")
    await page.goto(url)
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("Someone else has this seat right now")
    await expect(alert).to_contain_text(re.compile(r"frees up at \d\d:\d\d"))
    await web.shot(page, "scan-taken")


async def test_scan_with_a_wrong_code_says_it_does_not_match(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    student = await web.student("S2021001")
    page = await web.signed_in_page(student)
    await page.goto(f"/s/{library.seats['A1']}?k=WRONGCODE0")
    await expect(page.get_by_role("alert")).to_contain_text("doesn't match a seat")
    assert await db.fetchval("SELECT count(*) FROM reservations") == 0
