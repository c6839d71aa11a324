"""Staff pages (issue 12, items 8-10): seats and branches, closing a seat (its cost said
first), the printable code sheet, the desk check-in, statistics charts, the audit log; a
student is told these pages are for staff. Each page at 360 px and desktop, axe-clean."""

import re
from datetime import UTC, datetime, time, timedelta

import asyncpg
from playwright.async_api import Page, expect

from tests.factories import add_reservation, add_user, login, reservation_status
from tests.web.conftest import PASSWORD, Library, Person, Web, minute_now

STAFF_PAGES = {
    "staff-seats": "/app/staff/seats",
    "staff-codes": "/app/staff/codes/Main%20Library",
    "staff-desk": "/app/staff/desk",
    "staff-stats": "/app/staff/stats",
    "staff-audit": "/app/staff/audit",
}


async def staff_member(web: Web, db: asyncpg.Connection, student_id: str = "LIB0001") -> Person:
    """A registered user promoted to admin (a new token, so it carries the role)."""
    person = await web.student(student_id, name="Desk Librarian")
    await db.execute("UPDATE users SET role = 'admin' WHERE id = $1", person.id)
    return Person(person.id, student_id, await login(web.api, student_id, PASSWORD))


async def seat_row(db: asyncpg.Connection, seat_id: int) -> dict[str, object]:
    row = await db.fetchrow(
        "SELECT area, label, has_power, has_monitor, status FROM seats WHERE id = $1", seat_id
    )
    assert row is not None
    return dict(row)


async def check_page(web: Web, page: Page, name: str) -> None:
    await web.shot(page, name)
    assert await web.axe_violations(page) == []


async def test_admin_adds_a_branch_and_a_seat_edits_it_and_the_audit_log_shows_it(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin, "desktop")
    await page.get_by_role("link", name="Staff").click()
    await expect(page.get_by_role("heading", name="Seats", exact=True)).to_be_visible()
    seats = page.get_by_role("table")
    await expect(seats.get_by_role("rowheader", name="A1")).to_be_visible()

    branch_form = page.locator("#add-branch")
    await branch_form.get_by_label("Name").fill("Annex")
    await branch_form.get_by_label("Time zone").fill("Europe/Berlin")
    await branch_form.get_by_role("button", name="Add branch").click()
    await expect(branch_form.get_by_role("status")).to_contain_text("Branch Annex added")
    await expect(page.get_by_label("Branch", exact=True)).to_have_value("Annex")
    assert await db.fetchval("SELECT timezone FROM branches WHERE name = 'Annex'") == (
        "Europe/Berlin"
    )

    seat_form = page.locator("#add-seat")
    await seat_form.get_by_label("Area").fill("Reading room")
    await seat_form.get_by_label("Label").fill("R1")
    await seat_form.get_by_label("Power outlet").check()
    await seat_form.get_by_role("button", name="Add seat").click()
    await expect(seat_form.get_by_role("status")).to_contain_text("Seat R1 added to Annex")
    row = seats.get_by_role("row", name=re.compile(r"^R1 "))
    await expect(row).to_contain_text("Reading room")
    seat_id = await db.fetchval(
        "SELECT s.id FROM seats s JOIN branches b ON b.id = s.branch_id "
        "WHERE b.name = 'Annex' AND s.label = 'R1'"
    )
    assert await seat_row(db, seat_id) == {
        "area": "Reading room",
        "label": "R1",
        "has_power": True,
        "has_monitor": False,
        "status": "ACTIVE",
    }

    await row.get_by_role("button", name="Edit seat R1").click()
    dialog = page.get_by_role("dialog", name="Edit seat R1")
    await dialog.get_by_label("Label").fill("R2")
    await dialog.get_by_label("Monitor").check()
    await dialog.get_by_role("button", name="Save changes").click()
    await expect(dialog).to_be_hidden()
    await expect(seats.get_by_role("rowheader", name="R2")).to_be_visible()
    assert await seat_row(db, seat_id) == {
        "area": "Reading room",
        "label": "R2",
        "has_power": True,
        "has_monitor": True,
        "status": "ACTIVE",
    }

    await page.get_by_role("navigation", name="Staff").get_by_role("link", name="Audit log").click()
    log = page.get_by_role("table")
    await expect(log.get_by_role("row")).to_have_count(4)  # the header and three changes
    newest = log.get_by_role("row").nth(1)
    await expect(newest).to_contain_text("Seat changed")
    await expect(newest).to_contain_text("label: R1 → R2")
    await expect(newest).to_contain_text("has_monitor: no → yes")
    await expect(log.get_by_role("row").nth(2)).to_contain_text("Seat added")
    await expect(log.get_by_role("row").nth(3)).to_contain_text("Branch added")
    await expect(log.get_by_role("row").nth(3)).to_contain_text("timezone: Europe/Berlin")
    await expect(page.locator("#page-info")).to_have_text("1–3 of 3")


async def test_closing_a_seat_says_first_how_many_reservations_it_cancels(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    student = await web.student("S2021001")
    now = minute_now()
    booked = await add_reservation(
        db,
        user_id=student.id,
        seat_id=library.seats["A1"],
        start=now + timedelta(hours=2),
        end=now + timedelta(hours=3),
    )
    # Ended already: not cancelled, not counted.
    await add_reservation(
        db,
        user_id=student.id,
        seat_id=library.seats["A1"],
        start=now - timedelta(hours=3),
        end=now - timedelta(hours=2),
        status="COMPLETED",
    )
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin)
    await page.goto("/app/staff/seats")
    seats = page.get_by_role("table")

    # A seat with nothing booked: says so.
    await seats.get_by_role("button", name="Maintenance for seat A3").click()
    dialog = page.get_by_role("dialog", name="Put seat A3 under maintenance?")
    await expect(dialog).to_contain_text("No reservations will be cancelled.")
    await dialog.get_by_role("button", name="Keep as is").click()
    await expect(dialog).to_be_hidden()
    assert (await seat_row(db, library.seats["A3"]))["status"] == "ACTIVE"

    await seats.get_by_role("button", name="Close seat A1").click()
    dialog = page.get_by_role("dialog", name="Close seat A1?")
    await expect(dialog).to_contain_text("1 reservation will be cancelled. Its owner is told why.")
    assert await reservation_status(db, booked) == "CONFIRMED"
    await dialog.get_by_role("button", name="Close seat").click()
    await expect(dialog).to_be_hidden()
    await expect(seats.get_by_role("row", name=re.compile(r"^A1 "))).to_contain_text("Closed")
    assert (await seat_row(db, library.seats["A1"]))["status"] == "CLOSED"
    assert await reservation_status(db, booked) == "CANCELLED"

    # Reopening says what happens, and does it.
    await seats.get_by_role("button", name="Reopen seat A1").click()
    dialog = page.get_by_role("dialog", name="Reopen seat A1?")
    await expect(dialog).to_contain_text("It can be booked again")
    await dialog.get_by_role("button", name="Reopen seat").click()
    await expect(seats.get_by_role("row", name=re.compile(r"^A1 "))).to_contain_text("Active")
    assert (await seat_row(db, library.seats["A1"]))["status"] == "ACTIVE"


async def test_seats_table_fits_a_phone_with_each_row_a_card(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin)  # 360 px
    await page.goto("/app/staff/seats")
    seats = page.get_by_role("table")
    row = seats.get_by_role("row", name=re.compile(r"^A1 "))
    await expect(row).to_contain_text("Active")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    width = await page.evaluate("window.innerWidth")
    buttons = row.get_by_role("button")
    await expect(buttons).to_have_count(3)  # Edit, Maintenance, Close
    for button in await buttons.all():
        box = await button.bounding_box()
        assert box is not None
        assert box["x"] >= 0, box
        assert box["x"] + box["width"] <= width, box
    # Each cell says its column; still a table with its headers to assistive technology.
    status = row.get_by_role("cell").filter(has_text="Active")
    label = await status.evaluate("(td) => getComputedStyle(td, '::before').content")
    assert label.startswith('"Status: "'), label
    await expect(seats.get_by_role("columnheader", name="Status")).to_have_count(1)


async def test_code_sheet_has_one_qr_per_seat_and_prints_without_the_nav(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin, "desktop")
    await page.goto("/app/staff/seats")
    codes_link = page.get_by_role("link", name="Print seat codes")
    # The link names the branch once the page knows it (hidden until then).
    await expect(codes_link).to_have_attribute("href", "/app/staff/codes/Main%20Library")
    await codes_link.click()
    await expect(page.get_by_role("heading", name="Seat codes: Main Library")).to_be_visible()
    codes = page.get_by_role("list", name="Seat codes")
    images = codes.get_by_role("img")
    await expect(images).to_have_count(5)  # every seat, G2 under maintenance too
    for label in ("A1", "A2", "A3", "G1", "G2"):
        card = codes.get_by_role("listitem").filter(
            has=page.get_by_alt_text(f"QR code for seat {label}")
        )
        await expect(card).to_contain_text(label)
    await expect(codes.get_by_role("listitem").first).to_contain_text("Group")
    for src in [await img.get_attribute("src") for img in await images.all()]:
        assert src is not None
        response = await page.request.get(src)
        assert response.status == 200
        assert response.headers["content-type"] == "image/svg+xml"
        assert (await response.text()).lstrip().startswith(("<?xml", "<svg"))
    # Each image loaded (a broken one has no natural width).
    widths = await images.evaluate_all("(imgs) => imgs.map((i) => i.complete && i.naturalWidth)")
    assert all(widths), widths

    await page.emulate_media(media="print")
    await expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    await expect(page.get_by_role("navigation", name="Staff")).to_be_hidden()
    await expect(page.get_by_role("button", name="Print")).to_be_hidden()
    await expect(images.first).to_be_visible()
    await page.emulate_media(media="screen")
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()


async def test_desk_finds_a_student_and_checks_in_their_reservation(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    student = await web.student("S2021001", name="Ada Lovelace")
    now = minute_now()
    booked = await add_reservation(
        db,
        user_id=student.id,
        seat_id=library.seats["A2"],
        start=now,
        end=now + timedelta(hours=1),
    )
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin)
    await page.goto("/app/staff/desk")

    await page.get_by_label("ID to find").fill("S9999999")
    await page.get_by_role("button", name="Find").click()
    await expect(page.get_by_role("alert")).to_contain_text("No student with the ID S9999999")

    await page.get_by_label("ID to find").fill("S2021001")
    await page.get_by_role("button", name="Find").click()
    found = page.get_by_role("region", name="Reservations of Ada Lovelace")
    await expect(found).to_contain_text(f"student ID S2021001 · user {student.id}")
    card = found.locator(f'[data-reservation-id="{booked}"]')
    await expect(card).to_contain_text("Seat A2 · Main Library")
    await expect(card).to_contain_text("Booked")
    await card.get_by_role("button", name="Check in").click()
    await expect(card).to_contain_text("Checked in")
    await expect(card.get_by_role("button", name="Check in")).to_have_count(0)
    assert await reservation_status(db, booked) == "CHECKED_IN"

    # By user id, the same reservations.
    await page.get_by_label("User ID").check()
    await page.get_by_label("ID to find").fill(str(student.id))
    await page.get_by_role("button", name="Find").click()
    found = page.get_by_role("region", name=f"Reservations of user {student.id}")
    await expect(found.locator(f'[data-reservation-id="{booked}"]')).to_contain_text("Checked in")


async def test_stats_page_draws_the_known_numbers(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    # Yesterday (UTC, the branches' zone): Main Library has 4 ACTIVE seats (G2 is under
    # maintenance). Two check-ins, 2 h + 1 h, starting at 10:00; a no-show at 14:00; a
    # cancelled one at 14:30. Over that day: utilization 3 h / (4 x 24 h) = 3.1 %, no-show
    # rate 1 / (2 + 1) = 33 %, bookings by hour 10:00 x 2, 14:00 x 2. Science: nothing, 0 %.
    day = datetime.combine((datetime.now(UTC) - timedelta(days=1)).date(), time(), UTC)
    rows = [
        ("A1", 10, 12, "COMPLETED"),
        ("A2", 10, 11, "COMPLETED"),
        ("A3", 14, 15, "NO_SHOW"),
        ("G1", 14.5, 15, "CANCELLED"),
    ]
    for n, (label, start, end, status) in enumerate(rows):
        await add_reservation(
            db,
            user_id=await add_user(db, f"U{n}"),
            seat_id=library.seats[label],
            start=day + timedelta(hours=start),
            end=day + timedelta(hours=end),
            status=status,
        )
    admin = await staff_member(web, db)
    page = await web.signed_in_page(admin, "desktop")
    await page.goto("/app/staff/stats")
    date = day.date().isoformat()
    await page.get_by_label("From").fill(date)
    await page.get_by_label("To (inclusive)").fill(date)
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("#period-summary")).to_have_text(
        f"{date} to {date} (1 day), all branches."
    )

    utilization = page.get_by_role("img", name=re.compile("^Utilization by branch"))
    await expect(utilization).to_have_attribute(
        "aria-label", "Utilization by branch: Main Library 3.1%, Science Library 0%."
    )
    await expect(utilization.locator("text.value")).to_have_text(["3.1%", "0%"])
    await expect(utilization.locator("text.label")).to_have_text(
        ["Main Library", "Science Library"]
    )
    no_shows = page.get_by_role("img", name=re.compile("^No-show rate by branch"))
    await expect(no_shows).to_have_attribute(
        "aria-label", "No-show rate by branch: Main Library 33%, Science Library 0%."
    )
    hours = page.get_by_role("img", name=re.compile("^Bookings by hour of day"))
    await expect(hours).to_have_attribute(
        "aria-label",
        "Bookings by hour of day, all branches, each on its local clock: 4 in all; "
        "busiest 10:00, 14:00 with 2.",
    )
    await web.shot(page, "staff-stats-known")  # the README's statistics screenshot
    bars = await hours.locator("rect.bar").evaluate_all(
        "(rects) => rects.map((r) => [Number(r.dataset.hour), Number(r.dataset.value)])"
    )
    assert [n for _, n in bars] == [2 if hour in (10, 14) else 0 for hour in range(24)]
    await expect(hours.locator("text.value")).to_have_text(["2", "2"])

    # The numbers behind the charts, in tables.
    numbers = page.get_by_role("table").filter(
        has=page.get_by_role("columnheader", name="Cancelled")
    )
    await expect(numbers.get_by_role("row", name=re.compile("^Main Library"))).to_have_text(
        re.compile(r"Main Library\s*4\s*2\s*1\s*33%\s*1\s*3.1%")
    )
    hour_table = page.locator("#hours-chart details")
    await hour_table.get_by_text("the numbers").click()
    await expect(hour_table.get_by_role("row", name=re.compile("^10:00"))).to_contain_text("2")
    # A resize redraws the charts (sized to the page): the opened table stays open.
    viewport = page.viewport_size
    assert viewport is not None
    await page.set_viewport_size({"width": viewport["width"] - 40, "height": viewport["height"]})
    await page.wait_for_timeout(400)  # the page redraws 200 ms after the last resize
    await expect(hour_table).to_have_attribute("open", "")
    await expect(hour_table.get_by_role("row", name=re.compile("^14:00"))).to_contain_text("2")

    # One branch: its own hours.
    await page.get_by_label("Branch", exact=True).select_option("Main Library")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_role("img", name=re.compile("^Bookings by hour"))).to_have_attribute(
        "aria-label", re.compile(r"^Bookings by hour of day, Main Library: 4 in all")
    )


async def test_every_staff_page_at_both_sizes_passes_axe(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    student = await web.student("S2021001", name="Ada Lovelace")
    now = minute_now()
    await add_reservation(
        db, user_id=student.id, seat_id=library.seats["A1"], start=now, end=now + timedelta(hours=1)
    )
    admin = await staff_member(web, db)
    await web.api.patch(
        f"/admin/seats/{library.seats['A3']}", json={"status": "CLOSED"}, headers=admin.headers
    )
    for viewport in ("phone", "desktop"):
        page = await web.signed_in_page(admin, viewport)
        for name, path in STAFF_PAGES.items():
            await page.goto(path)
            await expect(page.locator("#staff-page")).to_be_visible()
            await expect(page.locator("[aria-busy=true]")).to_have_count(0)
            if name == "staff-desk":
                await page.get_by_label("ID to find").fill("S2021001")
                await page.get_by_role("button", name="Find").click()
                await expect(page.get_by_role("button", name="Check in")).to_be_visible()
            if name == "staff-stats":
                await page.locator("#hours-chart details").get_by_text("the numbers").click()
            await check_page(web, page, name)
        if viewport == "phone":
            # The status dialog, open, is part of the page too.
            await page.goto("/app/staff/seats")
            await page.get_by_role("button", name="Close seat A1").click()
            await expect(page.get_by_role("dialog")).to_contain_text("1 reservation will be")
            await check_page(web, page, "staff-seats-close")


async def test_a_student_is_told_the_staff_pages_are_for_staff(web: Web, library: Library) -> None:
    student = await web.student("S2021001", name="Ada Lovelace")
    page = await web.signed_in_page(student)
    await expect(page.get_by_role("link", name="Staff")).to_be_hidden()
    for name, path in STAFF_PAGES.items():
        await page.goto(path)
        await expect(page.get_by_role("heading", name="Staff only")).to_be_visible()
        await expect(
            page.get_by_text("signed in as Ada Lovelace, with a student account")
        ).to_be_visible()
        await expect(page.locator("#staff-page")).to_be_hidden()
        await expect(page.get_by_role("alert")).to_have_count(0)  # no error shown
        if name == "staff-seats":
            await check_page(web, page, "staff-only")


async def test_a_visitor_who_is_not_signed_in_is_sent_to_sign_in(
    web: Web, library: Library
) -> None:
    page = await web.page()
    await page.goto("/app/staff/desk")
    await page.wait_for_url(re.compile(r"/app/signin\?next=%2Fapp%2Fstaff%2Fdesk$"))
