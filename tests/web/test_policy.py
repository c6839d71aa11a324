"""The staff policy page (issue 13): a branch's rules as in force, a change sent for the
changed fields only (the others stay on the global setting), an emptied field back to the
global default (null), 422s next to their fields."""

import asyncpg
from playwright.async_api import Page, ViewportSize, expect

from tests.web.conftest import Library, Web
from tests.web.test_staff import staff_member

PHONE_390: ViewportSize = {"width": 390, "height": 844}
FIELDS = (
    "max_reservation_hours",
    "booking_horizon_days",
    "checkin_early_minutes",
    "grace_minutes",
    "claim_minutes",
    "max_bookings_per_day",
    "max_hours_per_week",
)


async def own_policy(db: asyncpg.Connection, bid: int) -> dict[str, object]:
    """The branch's own values (null: the global setting)."""
    row = await db.fetchrow(f"SELECT {', '.join(FIELDS)} FROM branches WHERE id = $1", bid)
    assert row is not None
    return {k: (None if v is None else float(v)) for k, v in dict(row).items()}


async def effective(web: Web, bid: int) -> dict[str, object]:
    response = await web.api.get(f"/branches/{bid}")
    assert response.status_code == 200, response.text
    policy: dict[str, object] = response.json()["policy"]
    return policy


def shown(value: object) -> str:
    return "" if value is None else f"{float(str(value)):g}"


async def check(web: Web, page: Page, name: str) -> None:
    await web.shot(page, name)
    assert await web.axe_violations(page) == []


async def test_staff_change_a_branch_policy_and_return_a_field_to_the_default(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    bid: int = await db.fetchval("SELECT id FROM branches WHERE name = $1", library.branch)
    defaults = await effective(web, bid)
    admin = await staff_member(web, db)
    for viewport in ("desktop", "phone"):
        page = await web.signed_in_page(admin, viewport)
        if viewport == "phone":
            await page.set_viewport_size(PHONE_390)
        await page.goto("/app/staff/seats")
        await (
            page.get_by_role("navigation", name="Staff").get_by_role("link", name="Policy").click()
        )
        await expect(page.get_by_role("heading", name="Booking rules")).to_be_visible()
        form = page.locator("#policy")
        longest = form.get_by_label("Longest reservation (hours)")
        await expect(longest).to_have_value(shown(defaults["max_reservation_hours"]))
        await expect(form.get_by_label("Bookings per student per day (bookings)")).to_have_value("")
        await expect(form).to_contain_text("Empty: no limit. In force: no limit.")
        await check(web, page, "staff-policy")
    assert await own_policy(db, bid) == dict.fromkeys(FIELDS)

    # Two changed fields are sent; the others stay on the global settings.
    await longest.fill("3")
    await form.get_by_label("Bookings per student per day (bookings)").fill("2")
    await form.get_by_role("button", name="Save rules").click()
    await expect(form.get_by_role("status")).to_contain_text(
        "Saved. Longest reservation: 3 hours; Bookings per student per day: 2 bookings."
    )
    assert await effective(web, bid) == defaults | {
        "max_reservation_hours": 3,
        "max_bookings_per_day": 2,
    }
    assert await own_policy(db, bid) == dict.fromkeys(FIELDS) | {
        "max_reservation_hours": 3.0,
        "max_bookings_per_day": 2.0,
    }
    in_force = page.get_by_role("region", name="In force now")
    await expect(in_force.locator('dd[data-field="max_bookings_per_day"]')).to_have_text(
        "2 bookings"
    )

    # Refused values: said next to their fields, nothing saved.
    grace = form.get_by_label("Grace period after the start (minutes)")
    await grace.fill("-5")
    await form.get_by_label("Bookings per student per day (bookings)").fill("1.5")
    await form.get_by_role("button", name="Save rules").click()
    await expect(grace).to_have_attribute("aria-invalid", "true")
    await expect(form.get_by_label("Bookings per student per day (bookings)")).to_have_attribute(
        "aria-invalid", "true"
    )
    await expect(page.locator("#policy-error")).to_contain_text("Please check the 2 fields")
    await check(web, page, "staff-policy-errors")
    assert (await own_policy(db, bid))["grace_minutes"] is None

    # Emptied: back to the global default (sent as null).
    await grace.fill(shown(defaults["grace_minutes"]))
    await form.get_by_label("Bookings per student per day (bookings)").fill("2")
    await longest.fill("")
    await form.get_by_role("button", name="Save rules").click()
    await expect(form.get_by_role("status")).to_contain_text(
        f"Saved. Longest reservation: {shown(defaults['max_reservation_hours'])} hours (default)."
    )
    await expect(grace).not_to_have_attribute("aria-invalid", "true")
    await expect(longest).to_have_value(shown(defaults["max_reservation_hours"]))
    assert await own_policy(db, bid) == dict.fromkeys(FIELDS) | {"max_bookings_per_day": 2.0}
    assert await effective(web, bid) == defaults | {"max_bookings_per_day": 2}
