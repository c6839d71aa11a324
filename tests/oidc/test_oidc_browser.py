"""The whole campus sign-in in a real browser: the button on the sign-in page, the
provider's own login page, back to the app signed in."""

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.oidc.conftest import ADMIN_GROUP, Provider
from tests.realtime.servers import Server

BUTTON = "Sign in with your university account"


@pytest.fixture
async def contexts(browser: Browser) -> AsyncIterator[list[BrowserContext]]:
    made: list[BrowserContext] = []
    yield made
    for context in made:
        await context.close()


async def _page(browser: Browser, contexts: list[BrowserContext], problems: list[str]) -> Page:
    context = await browser.new_context()
    context.set_default_timeout(10_000)
    contexts.append(context)
    page = await context.new_page()
    # A script error or a CSP violation on our pages is a console error.
    page.on(
        "console",
        lambda m: (
            problems.append(f"{page.url}: {m.text}")
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    return page


async def _campus_sign_in(page: Page, app: Server, provider: Provider, sub: str) -> None:
    await page.goto(f"{app.url}/app/signin?next=/app/reservations")
    button = page.get_by_role("link", name=BUTTON)
    await button.wait_for()
    # By keyboard, as anyone could.
    await button.focus()
    await page.keyboard.press("Enter")
    # The provider's page (oidc-provider-mock's form): the subject, then Authorize.
    await page.wait_for_url(re.compile(re.escape(provider.url) + r"/oauth2/authorize\?"))
    await page.get_by_placeholder("sub").fill(sub)
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url(f"{app.url}/app/reservations")
    await page.get_by_role("button", name="Sign out").wait_for()


async def test_campus_sign_in_in_a_browser(
    campus: Server, provider: Provider, browser: Browser, contexts: list[BrowserContext]
) -> None:
    problems: list[str] = []
    await provider.set_user(
        "sub-grace",
        {
            "preferred_username": "S7007",
            "name": "Grace Hopper",
            "email": "grace@uni.example",
            "groups": [ADMIN_GROUP],
        },
    )
    page = await _page(browser, contexts, problems)
    await _campus_sign_in(page, campus, provider, "sub-grace")
    me = await (await page.request.get(f"{campus.url}/auth/me")).json()
    assert (me["student_id"], me["name"], me["role"]) == ("S7007", "Grace Hopper", "admin")
    cookies = {c["name"]: c for c in await page.context.cookies(campus.url)}
    assert cookies["dlsms_session"]["httpOnly"] and not cookies["dlsms_csrf"]["httpOnly"]
    assert "dlsms_oidc_state" not in cookies  # spent at the callback

    # Another browser, the same person: the same account.
    second = await _page(browser, contexts, problems)
    await _campus_sign_in(second, campus, provider, "sub-grace")
    again = await (await second.request.get(f"{campus.url}/auth/me")).json()
    assert again["id"] == me["id"]
    assert not problems, problems


async def test_no_button_without_campus_sign_in(
    plain: Server, browser: Browser, contexts: list[BrowserContext]
) -> None:
    problems: list[str] = []
    page = await _page(browser, contexts, problems)
    await page.goto(f"{plain.url}/app/signin")
    await page.get_by_label("Student ID").wait_for()
    await page.wait_for_load_state("networkidle")
    assert not await page.get_by_role("link", name=BUTTON).is_visible()
    assert not problems, problems


async def test_refused_sign_in_shows_a_page_with_a_way_back(
    campus: Server, provider: Provider, browser: Browser, contexts: list[BrowserContext]
) -> None:
    problems: list[str] = []
    page = await _page(browser, contexts, problems)
    await page.goto(f"{campus.url}/app/signin")
    await page.get_by_role("link", name=BUTTON).click()
    await page.wait_for_url(re.compile(re.escape(provider.url) + r"/oauth2/authorize\?"))
    await page.get_by_role("button", name="Deny").click()
    await page.get_by_role("heading", name="Sign-in failed").wait_for()
    assert "access_denied" in await page.get_by_role("alert").inner_text()
    assert not any(c["name"] == "dlsms_session" for c in await page.context.cookies(campus.url))
    await page.get_by_role("link", name="Back to sign in").click()
    await page.wait_for_url(f"{campus.url}/app/signin")
    assert not problems, problems
