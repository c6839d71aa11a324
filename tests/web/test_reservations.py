"""My reservations: check in (window open, countdown), check out, cancel, calendar link;
and live waitlist offers: A cancels, B (on another page) sees the offer banner arrive and
claims it, while a third visitor's seat map changes without a reload."""

import re
from datetime import timedelta

import asyncpg
from playwright.async_api import expect

from tests.factories import add_reservation, reservation_status
from tests.web.conftest import Library, Web, minute_now


async def test_check_in_then_check_out(web: Web, library: Library, db: asyncpg.Connection) -> None:
    student = await web.student("S2021001")
    now = minute_now()
    booked = await add_reservation(
        db, user_id=student.id, seat_id=library.seats["A1"], start=now, end=now + timedelta(hours=1)
    )
    later = await add_reservation(
        db,
        user_id=student.id,
        seat_id=library.seats["A2"],
        start=now + timedelta(days=1),
        end=now + timedelta(days=1, hours=1),
    )
    for viewport in ("phone", "desktop"):
        page = await web.signed_in_page(student, viewport)
        await page.goto("/app/reservations")
        card = page.locator(f'[data-reservation-id="{booked}"]')
        await expect(card.get_by_role("button", name="Check in")).to_be_visible()
        await expect(card).to_contain_text(re.compile(r"Check in by \d\d:\d\d \(\d+:\d\d left\)"))
        await expect(card.get_by_role("link", name="Add to calendar")).to_have_attribute(
            "href", f"/reservations/{booked}/ics"
        )
        # Tomorrow's: no check-in yet, says when it opens.
        tomorrow = page.locator(f'[data-reservation-id="{later}"]')
        await expect(tomorrow).to_contain_text("Check-in opens at")
        await expect(tomorrow.get_by_role("button", name="Check in")).to_have_count(0)
        await web.shot(page, "reservations")
        assert await web.axe_violations(page) == []

    await card.get_by_role("button", name="Check in").click()
    await expect(card).to_contain_text("Checked in")
    assert await reservation_status(db, booked) == "CHECKED_IN"
    await card.get_by_role("button", name="Check out").click()
    history = page.get_by_role("region", name=re.compile("History"))
    await expect(history.locator(f'[data-reservation-id="{booked}"]')).to_contain_text("Completed")
    assert await reservation_status(db, booked) == "COMPLETED"


async def test_cancel_moves_a_booking_to_history(
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
    page = await web.signed_in_page(student)
    await page.goto("/app/reservations")
    upcoming = page.get_by_role("region", name="Upcoming")
    await upcoming.get_by_role("button", name="Cancel").click()
    await expect(upcoming).to_contain_text("Nothing booked")
    assert await reservation_status(db, booked) == "CANCELLED"


async def test_offer_arrives_live_on_another_page_and_is_claimed(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    alice, bob = await web.student("S2021001"), await web.student("S2021002")
    now = minute_now()
    seat_id = library.seats["A1"]
    held = await add_reservation(
        db,
        user_id=alice.id,
        seat_id=seat_id,
        start=now - timedelta(minutes=5),
        end=now + timedelta(hours=2),
    )
    joined = await web.api.post(
        "/waitlist",
        json={
            "seat_id": seat_id,
            "start_time": (now + timedelta(minutes=2)).isoformat(),
            "end_time": (now + timedelta(hours=1)).isoformat(),
        },
        headers=bob.headers,
    )
    assert joined.status_code == 201, joined.text

    bob_page = await web.signed_in_page(bob, "desktop")
    await bob_page.goto("/app/notifications")
    await expect(bob_page.get_by_role("heading", name="Notifications")).to_be_visible()
    watcher = await web.page("phone")
    await watcher.goto(f"/app/branches/{library.branch}")
    watched = watcher.locator(f'[data-seat-id="{seat_id}"]')
    await expect(watched).to_have_attribute("aria-label", re.compile(r"^A1, booked"))
    await watcher.evaluate("window.__notReloaded = true")
    alice_page = await web.signed_in_page(alice)
    await alice_page.goto("/app/reservations")
    await bob_page.wait_for_timeout(500)  # Bob's notification stream is open by now

    await (
        alice_page.locator(f'[data-reservation-id="{held}"]')
        .get_by_role("button", name="Cancel")
        .click()
    )

    offer = bob_page.get_by_role("alert").filter(has_text="Seat A1")
    await expect(offer).to_be_visible()
    deadline = offer.locator("time")
    await expect(deadline).to_have_text(re.compile(r"^\d\d:\d\d$"))
    assert re.match(r"\d{4}-\d\d-\d\dT", await deadline.get_attribute("datetime") or "")
    await expect(bob_page.locator("#unread-count")).to_contain_text("1 unread")
    await expect(bob_page.locator("#notifications")).to_contain_text("A seat is offered to you")
    await web.shot(bob_page, "offer")
    assert await web.axe_violations(bob_page) == []

    # The third visitor's map changed without a reload: the seat is now held for Bob.
    await expect(watched).to_have_attribute("aria-label", re.compile(r"^A1, held"))
    assert await watcher.evaluate("window.__notReloaded") is True

    await offer.get_by_role("button", name="Claim").click()
    # The offer's own status (the page-wide announcer says it too, a moment later).
    claimed = bob_page.locator("[role=status]:not(#announcer)").filter(has_text="is yours")
    await expect(claimed).to_be_visible()
    status = await db.fetchval(
        "SELECT status FROM reservations WHERE user_id = $1 AND seat_id = $2", bob.id, seat_id
    )
    assert status == "CONFIRMED"


async def test_declining_an_offer_cancels_the_held_seat(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    bob = await web.student("S2021002")
    alice = await web.student("S2021001")
    now = minute_now()
    seat_id = library.seats["A2"]
    mine = await add_reservation(
        db, user_id=alice.id, seat_id=seat_id, start=now, end=now + timedelta(hours=2)
    )
    joined = await web.api.post(
        "/waitlist",
        json={
            "seat_id": seat_id,
            "start_time": (now + timedelta(minutes=2)).isoformat(),
            "end_time": (now + timedelta(hours=1)).isoformat(),
        },
        headers=bob.headers,
    )
    assert joined.status_code == 201, joined.text
    cancelled = await web.api.delete(f"/reservations/{mine}", headers=alice.headers)
    assert cancelled.status_code == 200, cancelled.text

    # Offered while Bob was away: the banner appears when he opens any page.
    page = await web.signed_in_page(bob)
    offer = page.get_by_role("alert").filter(has_text="Seat A2")
    await expect(offer).to_be_visible()
    held = await offer.get_attribute("data-reservation-id")
    await offer.get_by_role("button", name="Decline").click()
    await expect(page.get_by_role("status").filter(has_text="declined")).to_be_visible()
    assert await reservation_status(db, int(held or 0)) == "CANCELLED"
