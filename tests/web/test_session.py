"""Sign in, register and sign out through the pages (the contract's cookie session)."""

import re

import asyncpg
from playwright.async_api import expect

from tests.web.conftest import PASSWORD, Library, Web


async def test_home_shows_branches_and_offers_sign_in(web: Web, library: Library) -> None:
    page = await web.page()
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/app/branches$"))
    await expect(page.get_by_role("heading", name="Branches", level=1)).to_be_visible()
    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_hidden()


async def test_student_signs_in_and_out(web: Web, library: Library) -> None:
    student = await web.student("S2021001", name="Ada Student")
    page = await web.page()
    await web.sign_in(page, student)
    await expect(page.get_by_role("navigation", name="Main")).to_contain_text("Ada Student")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["dlsms_session"]["httpOnly"] is True
    assert "dlsms_csrf" in cookies
    assert not await page.evaluate("Object.keys(localStorage).length")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/app/signin"))
    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    names = {c["name"] for c in await page.context.cookies()}
    assert "dlsms_session" not in names


async def test_wrong_password_says_so_and_stays(web: Web, library: Library) -> None:
    student = await web.student("S2021001")
    page = await web.page()
    await page.goto("/app/signin")
    await page.get_by_label("Student ID").fill(student.student_id)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("don't match")
    await expect(page).to_have_url(re.compile(r"/app/signin"))


async def test_new_student_registers_and_is_signed_in(web: Web, library: Library) -> None:
    page = await web.page()
    await page.goto("/app/register")
    await page.get_by_label("Student ID").fill("S2029999")
    await page.get_by_label("Name").fill("New Student")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/app/branches$"))
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await web.shot(page, "branches-signed-in")


async def test_a_page_that_needs_a_session_sends_to_sign_in_and_back(
    web: Web, library: Library
) -> None:
    student = await web.student("S2021001")
    page = await web.page()
    await page.goto("/app/reservations")
    await expect(page).to_have_url(re.compile(r"/app/signin\?next="))
    await page.get_by_label("Student ID").fill(student.student_id)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/app/reservations$"))


async def test_a_cross_site_form_post_books_nothing(
    web: Web, library: Library, db: asyncpg.Connection
) -> None:
    """Another site (a page the browser believes comes from http://evil.example) submits
    a plain form to the API while the student is signed in: refused, nothing written
    (SameSite=Lax keeps the cookie home; and without X-CSRF-Token it would be 403)."""
    student = await web.student("S2021001")
    page = await web.signed_in_page(student)
    await page.route(
        "http://evil.example/",
        lambda route: route.fulfill(
            body="<!doctype html><title>x</title>", content_type="text/html"
        ),
    )
    await page.goto("http://evil.example/")
    async with page.expect_response(re.compile(r"/reservations$")) as answer:
        await page.evaluate(
            """(target) => {
                const form = document.createElement("form");
                form.method = "POST";
                form.action = target;
                form.enctype = "text/plain";
                const field = document.createElement("input");
                field.name = '{"seat_id": 1, "start_time": "2030-01-01T10:00:00Z", "x": "';
                field.value = '"}';
                form.append(field);
                document.body.append(form);
                form.submit();
            }""",
            f"{web.url}/reservations",
        )
    assert (await answer.value).status in (401, 403, 422)
    assert await db.fetchval("SELECT count(*) FROM reservations") == 0
