"""Branch hours in the web app (issue 13): staff set the weekly hours (several intervals a
day, 24:00, a closed day; the reservations they no longer hold are listed and cancelled
only after a confirmation), add and delete closures (what a closure cancelled is listed),
422s next to their fields; students see whether a branch is open, today's hours, a closure
and its reason, the week, on the branches page and the seat map, on the branch's clock."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from playwright.async_api import Page, ViewportSize, expect

from tests.factories import add_branch, add_reservation, add_seat, reservation_status
from tests.web.conftest import Library, Web, minute_now
from tests.web.test_staff import staff_member

PHONE_390: ViewportSize = {"width": 390, "height": 844}


async def branch_id(db: asyncpg.Connection, name: str) -> int:
    value: int = await db.fetchval("SELECT id FROM branches WHERE name = $1", name)
    return value


async def branch_detail(web: Web, bid: int) -> dict[str, Any]:
    response = await web.api.get(f"/branches/{bid}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def day_set(page: Page, day: str) -> Any:
    return page.get_by_role("group", name=day, exact=True)


async def set_day(page: Page, day: str, spans: list[tuple[str, str]]) -> None:
    """Make `day` hold exactly `spans`, through the editor's buttons and fields."""
    group = day_set(page, day)
    while await group.get_by_role("button", name=re.compile(r"^Remove")).count():
        await group.get_by_role("button", name=re.compile(r"^Remove")).first.click()
    for n, (opens, closes) in enumerate(spans):
        await group.get_by_role("button", name=f"Add interval to {day}").click()
        await group.get_by_label(f"Opens ({day}, interval {n + 1})").fill(opens)
        await group.get_by_label(f"Closes ({day}, interval {n + 1})").fill(closes)


async def check(web: Web, page: Page, name: str) -> None:
    await web.shot(page, name)
    assert await web.axe_violations(page) == []


async def test_staff_set_weekly_hours_and_cancel_what_no_longer_fits_only_when_confirmed(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    bid = await branch_id(db, library.branch)
    student = await web.student("S2021001")
    tomorrow = (minute_now() + timedelta(days=1)).replace(hour=10, minute=0)
    booked = await add_reservation(
        db,
        user_id=student.id,
        seat_id=library.seats["A1"],
        start=tomorrow,
        end=tomorrow + timedelta(hours=1),
    )
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin, "desktop")
    await page.goto("/app/staff/seats")
    await page.get_by_role("navigation", name="Staff").get_by_role("link", name="Hours").click()
    await expect(page.get_by_role("heading", name="Hours and closures")).to_be_visible()
    await expect(page.get_by_label("Branch", exact=True)).to_have_value(str(bid))
    # A new branch is open around the clock: each day one interval 00:00-24:00.
    await expect(day_set(page, "Sunday").get_by_label("Opens (Sunday, interval 1)")).to_have_value(
        "00:00"
    )
    await expect(day_set(page, "Sunday").get_by_label("Closes (Sunday, interval 1)")).to_have_value(
        "24:00"
    )

    # Weekdays 12:00-24:00 after a morning hour 08:00-09:00; Saturday 12:00-18:00; Sunday closed.
    await set_day(page, "Monday", [("08:00", "09:00"), ("12:00", "24:00")])
    await page.get_by_role("button", name="Copy Monday to Tuesday–Friday").click()
    await set_day(page, "Saturday", [("12:00", "18:00")])
    await set_day(page, "Sunday", [])
    await expect(day_set(page, "Sunday")).to_contain_text("Closed all day")
    await check(web, page, "staff-hours")
    await page.get_by_role("button", name="Save hours").click()

    # The 10:00 reservation no longer fits: saved, listed, kept until confirmed.
    dialog = page.get_by_role("dialog", name="Reservations outside the new hours")
    # Each named by seat, time on the branch clock (UTC here) and id.
    local = tomorrow.astimezone(UTC)
    await expect(dialog).to_contain_text(
        f"A1 (Quiet) · {local:%a} {local.day} {local:%b} {local:%H:%M}–"
        f"{local + timedelta(hours=1):%H:%M} · confirmed · #{booked}"
    )
    # The safe choice has the focus: Enter alone cancels nothing.
    await expect(dialog.get_by_role("button", name="Keep them")).to_be_focused()
    await check(web, page, "staff-hours-conflicts")
    weekday = [(["08:00", "09:00"]), (["12:00", "24:00"])]
    expected = {
        day: [{"opens": o, "closes": c} for o, c in weekday]
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
    } | {"saturday": [{"opens": "12:00", "closes": "18:00"}], "sunday": []}
    assert (await branch_detail(web, bid))["hours"] == expected
    await dialog.get_by_role("button", name="Keep them").click()
    await expect(dialog).to_be_hidden()
    await expect(
        page.get_by_role("main").get_by_role("status").filter(has_text="Hours saved")
    ).to_contain_text("One reservation no longer fits them and is kept for now.")
    assert await reservation_status(db, booked) == "CONFIRMED"

    # Saving again asks again; this time cancel it.
    await page.get_by_role("button", name="Save hours").click()
    await dialog.get_by_role("button", name="Cancel 1 reservation").click()
    await expect(dialog).to_be_hidden()
    await expect(
        page.get_by_role("main").get_by_role("status").filter(has_text="Hours saved")
    ).to_contain_text(f"Cancelled 1 reservation (#{booked}); the owners were notified.")
    assert await reservation_status(db, booked) == "CANCELLED"
    assert (await branch_detail(web, bid))["hours"] == expected

    # The preview is the students' view: Sunday closed.
    preview = page.locator("#preview")
    await preview.get_by_text("Hours this week").click()
    sunday = preview.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name=re.compile(r"^Sun"))
    )
    await expect(sunday).to_contain_text("Closed")


async def test_hours_errors_are_shown_next_to_their_fields(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    bid = await branch_id(db, library.branch)
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin)
    await page.set_viewport_size(PHONE_390)
    await page.goto("/app/staff/hours")
    tuesday = day_set(page, "Tuesday")
    closes = tuesday.get_by_label("Closes (Tuesday, interval 1)")
    await closes.fill("25:00")
    await set_day(page, "Wednesday", [("12:00", "14:00"), ("13:00", "16:00")])
    await page.get_by_role("button", name="Save hours").click()
    await expect(closes).to_have_attribute("aria-invalid", "true")
    error = page.locator("#" + (await closes.get_attribute("aria-describedby") or "x"))
    await expect(error).to_contain_text("HH:MM")
    await expect(day_set(page, "Wednesday").locator(".field-error")).to_contain_text("overlap")
    await expect(page.locator("#weekly-error")).to_contain_text("Please check the 2 fields")
    await check(web, page, "staff-hours-errors")
    # Nothing was saved.
    assert (await branch_detail(web, bid))["hours"]["tuesday"] == [
        {"opens": "00:00", "closes": "24:00"}
    ]
    # Fixed: saved, the marks gone.
    await closes.fill("20:00")
    await set_day(page, "Wednesday", [("12:00", "14:00")])
    await page.get_by_role("button", name="Save hours").click()
    await expect(
        page.get_by_role("main").get_by_role("status").filter(has_text="Hours saved")
    ).to_contain_text("No reservation was affected.")
    await expect(closes).not_to_have_attribute("aria-invalid", "true")
    hours = (await branch_detail(web, bid))["hours"]
    assert hours["tuesday"] == [{"opens": "00:00", "closes": "20:00"}]
    assert hours["wednesday"] == [{"opens": "12:00", "closes": "14:00"}]
    assert page.viewport_size == PHONE_390
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_staff_add_and_delete_closures_and_see_what_they_cancelled(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    bid = await branch_id(db, library.branch)
    student = await web.student("S2021001")
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    booked = await add_reservation(
        db,
        user_id=student.id,
        seat_id=library.seats["A2"],
        start=start,
        end=start + timedelta(hours=2),
    )
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin)
    await page.goto("/app/staff/hours?branch=Main%20Library")
    closures = page.get_by_role("list", name="Current and upcoming")
    await expect(closures).to_contain_text("No closures ahead.")
    form = page.locator("#add-closure")

    # Refusals next to their fields: no reason, then "to" before "from".
    await form.get_by_label("From").fill(day.isoformat())
    await form.get_by_label("To (inclusive)").fill(day.isoformat())
    await form.get_by_role("button", name="Add closure").click()
    await expect(form.get_by_label("Reason")).to_have_attribute("aria-invalid", "true")
    await form.get_by_label("Reason").fill("Staff training")
    await form.get_by_label("To (inclusive)").fill((day - timedelta(days=1)).isoformat())
    await form.get_by_role("button", name="Add closure").click()
    await expect(form.get_by_label("To (inclusive)")).to_have_attribute("aria-invalid", "true")
    await expect(form.locator(".field-error")).to_contain_text("date_to must not be before")
    await expect(form.get_by_label("Reason")).not_to_have_attribute("aria-invalid", "true")

    await form.get_by_label("To (inclusive)").fill(day.isoformat())
    await form.get_by_role("button", name="Add closure").click()
    await expect(form.get_by_role("status")).to_contain_text(
        f"Closure “Staff training” added. It cancelled 1 reservation: #{booked}"
    )
    assert await reservation_status(db, booked) == "CANCELLED"
    item = closures.get_by_role("listitem").filter(has_text="Staff training")
    await expect(item).to_contain_text("Closed all day")
    await check(web, page, "staff-closures")

    # Special hours on the next day, then one overlapping it: 409, said in words.
    later = day + timedelta(days=1)
    await form.get_by_label("From").fill(later.isoformat())
    await form.get_by_label("To (inclusive)").fill(later.isoformat())
    await form.get_by_label("Reason").fill("Exam week")
    await form.get_by_label("Open on special hours").check()
    special = page.locator("#special")
    await special.get_by_label("Opens (special hours, interval 1)").fill("10:00")
    await special.get_by_label("Closes (special hours, interval 1)").fill("24:00")
    await form.get_by_role("button", name="Add closure").click()
    await expect(form.get_by_role("status")).to_contain_text("No reservation was affected.")
    await expect(closures.get_by_role("listitem").filter(has_text="Exam week")).to_contain_text(
        "Special hours 10:00–24:00"
    )
    await form.get_by_label("From").fill(later.isoformat())
    await form.get_by_label("To (inclusive)").fill(later.isoformat())
    await form.get_by_label("Reason").fill("Again")
    await form.get_by_role("button", name="Add closure").click()
    await expect(page.locator("#closure-error")).to_be_visible()
    await expect(page.locator("#closure-error")).to_contain_text(re.compile(r"\S"))
    listed = (await web.api.get(f"/admin/branches/{bid}/closures", headers=admin.headers)).json()
    assert [(c["reason"], c["open"]) for c in listed] == [
        ("Staff training", None),
        ("Exam week", [{"opens": "10:00", "closes": "24:00"}]),
    ]

    # The branch's day-by-day hours say it, as students will read them.
    hours = (await web.api.get(f"/branches/{bid}/hours")).json()
    by_date = {d["date"]: d for d in hours["days"]}
    assert by_date[day.isoformat()]["closure"] == {"reason": "Staff training"}
    assert by_date[day.isoformat()]["open"] == []

    await item.get_by_role("button", name=re.compile(r"^Delete closure Staff training")).click()
    await expect(page.locator("#closures-ok")).to_contain_text("Closure “Staff training” deleted")
    await expect(closures.get_by_role("listitem").filter(has_text="Staff training")).to_have_count(
        0
    )
    listed = (await web.api.get(f"/admin/branches/{bid}/closures", headers=admin.headers)).json()
    assert [c["reason"] for c in listed] == ["Exam week"]


async def test_students_see_open_now_today_closures_and_the_week_on_the_branch_clock(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    # A branch in Tokyo, closed now: its hours are the 2 hours starting 3 hours from now
    # (Tokyo wall clock) every day; a closure tomorrow. Times shown are Tokyo's, whatever
    # the browser's zone.
    zone = ZoneInfo("Asia/Tokyo")
    tokyo = await add_branch(db, "Tokyo Annex", "Asia/Tokyo")
    await add_seat(db, tokyo, "T1", area="Hall")
    local_now = datetime.now(zone)
    opens_at = (local_now + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    if opens_at.date() != local_now.date() or opens_at.hour >= 22:
        opens_at = local_now.replace(hour=1, minute=0, second=0, microsecond=0) + timedelta(days=1)
    opens, closes = opens_at.strftime("%H:%M"), (opens_at + timedelta(hours=2)).strftime("%H:%M")
    spans = [{"opens": opens, "closes": closes}]
    admin = await staff_member(web, db)
    weekly = dict.fromkeys(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"), spans
    )
    response = await web.api.put(
        f"/admin/branches/{tokyo}/hours", json={"weekly": weekly}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    closed_day = (local_now + timedelta(days=2)).date()
    response = await web.api.post(
        f"/admin/branches/{tokyo}/closures",
        json={
            "date_from": closed_day.isoformat(),
            "date_to": closed_day.isoformat(),
            "reason": "Building inspection",
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    listed = {b["name"]: b for b in (await web.api.get("/branches")).json()}
    assert listed["Tokyo Annex"]["open_now"] is False
    assert listed[library.branch]["open_now"] is True

    for viewport in ("phone", "desktop"):
        page = await web.page(viewport)
        if viewport == "phone":
            await page.set_viewport_size(PHONE_390)
        await page.goto("/app/branches")
        card = page.get_by_role("listitem").filter(
            has=page.get_by_role("heading", name="Tokyo Annex")
        )
        word = "at" if opens_at.date() == local_now.date() else "tomorrow at"
        await expect(card).to_contain_text(f"Closed now · opens {word} {opens}")
        main = page.get_by_role("listitem").filter(
            has=page.get_by_role("heading", name=library.branch)
        )
        await expect(main).to_contain_text("Open now · around the clock")
        await expect(card).to_contain_text(
            f"Today: {opens}–{closes}" if opens_at.date() == local_now.date() else "Today: "
        )
        await expect(card).to_contain_text("Closures ahead:")
        await expect(card).to_contain_text("Building inspection")
        await card.get_by_text("Hours this week").click()
        week = card.get_by_role("table")
        await expect(week.get_by_role("row")).to_have_count(7)
        inspected = week.locator(f'tr[data-date="{closed_day.isoformat()}"]')
        await expect(inspected).to_contain_text("Closed – Building inspection")
        await check(web, page, "branches-hours")

    # The seat map says the same.
    page = await web.page("desktop")
    await page.goto("/app/branches/Tokyo%20Annex")
    hours = page.get_by_role("region", name="Opening hours")
    await expect(hours).to_contain_text("Closed now · opens")
    await expect(hours).to_contain_text(opens)
    await expect(hours).to_contain_text("Building inspection")
    await check(web, page, "seatmap-hours")


async def test_a_booking_outside_the_hours_shows_the_server_detail_by_the_book_button(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    bid = await branch_id(db, library.branch)
    me = await web.student("S2021001")
    admin = await staff_member(web, db)
    page = await web.signed_in_page(me)
    await page.set_viewport_size(PHONE_390)
    await page.goto(f"/app/branches/{library.branch}")
    await expect(page.locator("#map")).to_have_attribute("aria-busy", "false")
    await page.get_by_role("button", name=re.compile(r"^A3, free\b")).click()
    dialog = page.get_by_role("dialog", name="Seat A3")
    # Meanwhile the staff close the branch every day: the booking is refused.
    response = await web.api.put(
        f"/admin/branches/{bid}/hours", json={"weekly": {}}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    await dialog.get_by_role("button", name="Book").click()
    alert = dialog.get_by_role("alert")
    today = datetime.now(UTC).date()
    await expect(alert).to_contain_text(
        f"The interval is outside opening hours: {library.branch} is closed on "
        f"{today:%A} {today.isoformat()} (UTC time)"
    )
    await expect(dialog.get_by_role("button", name="Book")).to_be_hidden()
    await web.shot(page, "seatmap-outside-hours")
    assert await web.axe_violations(page) == []
    assert await db.fetchval("SELECT count(*) FROM reservations") == 0
    await dialog.get_by_role("button", name="Close").click()
    await expect(page.get_by_role("region", name="Opening hours")).to_contain_text(
        "Closed now · no opening ahead"
    )
    # The map, read again, says so for every seat in service, in words.
    await expect(
        page.get_by_role("button", name=re.compile(r"^A3, outside hours\b"))
    ).to_be_visible()
    await expect(page.get_by_role("button", name=re.compile(r"^G2, maintenance\b"))).to_be_visible()
    await page.get_by_role("button", name=re.compile(r"^A1, outside hours\b")).click()
    dialog = page.get_by_role("dialog", name="Seat A1")
    await expect(dialog.get_by_role("alert")).to_contain_text("is not open for all of this time")
    await expect(dialog.get_by_role("button", name="Book")).to_be_hidden()
    await expect(dialog.get_by_role("button", name="Join waitlist")).to_be_hidden()


async def test_the_hours_editor_works_from_the_keyboard_and_students_are_told_it_is_for_staff(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    bid = await branch_id(db, library.branch)
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin, "desktop")
    await page.goto("/app/staff/hours")
    monday = day_set(page, "Monday")
    await expect(monday.get_by_label("Opens (Monday, interval 1)")).to_have_value("00:00")
    await monday.get_by_role("button", name="Remove interval 1 of Monday").focus()
    await page.keyboard.press("Enter")
    # Removing the last interval leaves the day closed and focus on Add interval.
    await expect(monday).to_contain_text("Closed all day")
    await expect(monday.get_by_role("button", name="Add interval to Monday")).to_be_focused()
    await page.keyboard.press("Enter")
    opens = monday.get_by_label("Opens (Monday, interval 1)")
    await expect(opens).to_be_focused()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("09:30")
    await page.keyboard.press("Tab")
    await expect(monday.get_by_label("Closes (Monday, interval 1)")).to_be_focused()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("17:00")
    await page.get_by_role("button", name="Save hours").focus()
    await page.keyboard.press("Enter")
    await expect(
        page.get_by_role("main").get_by_role("status").filter(has_text="Hours saved")
    ).to_be_visible()
    assert (await branch_detail(web, bid))["hours"]["monday"] == [
        {"opens": "09:30", "closes": "17:00"}
    ]

    student = await web.student("S2021001")
    page = await web.signed_in_page(student)
    for path in ("/app/staff/hours", "/app/staff/policy"):
        await page.goto(path)
        await expect(page.get_by_role("heading", name="Staff only")).to_be_visible()
        await expect(page.locator("#staff-page")).to_be_hidden()
