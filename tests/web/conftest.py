"""Browser tests: Debian's Chromium driven by Playwright against a real uvicorn process on
the test database.

- ``web_server``: one uvicorn (tests/realtime/servers.py's launcher) for the session;
  the ``db`` fixture empties the tables after each test, the server stays up.
- ``browser``: one Chromium for the session; ``web.page()`` opens a fresh context per
  call (own cookies: two students are two ``web.page()`` calls), records console errors
  and failed page scripts (a CSP violation is a console error), and the test fails if any
  appeared. Contexts close at the end of the test.
- ``library``: demo data (a branch with seats in two areas) and ``web.student(...)``,
  a registered student with a real password.

Without /usr/bin/chromium the tests skip, unless DLSMS_REQUIRE_BROWSER=1 (CI): then fail.
Screenshots (``web.shot``) go to artifacts/screenshots/ (ignored by git, kept by CI).
"""

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

from tests.conftest import REPO_ROOT
from tests.factories import add_branch, add_seat, bearer, login, register
from tests.realtime.servers import Server, Servers

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
PASSWORD = "password123"

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
VIEWPORTS = {"phone": PHONE, "desktop": DESKTOP}

# Settings of the server under test: no per-client limit (a page load makes several
# calls, a test many pages), a generous login limit.
SERVER_SETTINGS: dict[str, Any] = {
    "API_RATE_LIMIT": "0",
    "LOGIN_RATE_LIMIT": 1000,
    "COOKIE_SECURE": False,
}


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("DLSMS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing and DLSMS_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def web_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    async with Servers(database_url, tmp_path_factory.mktemp("web-server")) as servers:
        yield await servers.start(**SERVER_SETTINGS)


@pytest.fixture(scope="session")
async def playwright_session(chromium_path: Path) -> AsyncIterator[Playwright]:
    async with async_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
async def browser(playwright_session: Playwright, chromium_path: Path) -> AsyncIterator[Browser]:
    browser = await playwright_session.chromium.launch(
        executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    await browser.close()


@dataclass(frozen=True)
class Person:
    """A registered student: user id, student_id, and an API token (for arranging)."""

    id: int
    student_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass
class Web:
    """The test's handle on the server and the browser."""

    server: Server
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api(self) -> httpx.AsyncClient:
        return self.server.client

    async def page(self, viewport: str = "phone") -> Page:
        """A page in a fresh context (own cookies), watched for console errors."""
        context = await self.browser.new_context(
            base_url=self.url,
            viewport=VIEWPORTS[viewport],  # type: ignore[arg-type]
            is_mobile=viewport == "phone",
            has_touch=viewport == "phone",
        )
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("console", lambda m: _console(self.problems, m.type, m.text, page.url))
        page.on("pageerror", lambda e: self.problems.append(f"{page.url}: page error {e}"))
        return page

    async def student(self, student_id: str, name: str = "Test Student") -> Person:
        """Register a student through the API (real password) and log them in there too."""
        user = await register(self.api, student_id, PASSWORD, name=name)
        return Person(user["id"], student_id, await login(self.api, student_id, PASSWORD))

    async def sign_in(self, page: Page, person: Person, next_path: str = "") -> None:
        """Sign in through the page, as a person would; waits for the page it leads to."""
        target = f"/app/signin?next={quote(next_path)}" if next_path else "/app/signin"
        await page.goto(target)
        await page.get_by_label("Student ID").fill(person.student_id)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(re.compile(r"^(?!.*/app/signin).*$"))
        await page.get_by_role("button", name="Sign out").wait_for()

    async def signed_in_page(self, person: Person, viewport: str = "phone") -> Page:
        page = await self.page(viewport)
        await self.sign_in(page, person)
        return page

    async def axe_violations(self, page: Page) -> list[str]:
        """axe-core (bundled with axe-playwright-python, run offline): the serious and
        critical WCAG 2.1 A/AA violations on the page as it is now."""
        results = await Axe().run(
            page,
            options={
                "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
                "resultTypes": ["violations"],
            },
        )
        return [
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]

    async def shot(self, page: Page, name: str) -> Path:
        """A full-page screenshot: artifacts/screenshots/<name>-<width>.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        width = page.viewport_size["width"] if page.viewport_size else 0
        path = SCREENSHOTS / f"{name}-{width}.png"
        await page.screenshot(path=path, full_page=True)
        return path


def _console(problems: list[str], kind: str, text: str, url: str) -> None:
    # A 4xx answer the page expected (a refused booking, a sign-in check) is logged by
    # Chromium as "Failed to load resource"; the page handles those. Anything else red is
    # a defect: a script error, a CSP violation, a failed module.
    if kind == "error" and "Failed to load resource" not in text:
        problems.append(f"{url}: console error {text}")


@pytest.fixture
async def web(db: asyncpg.Connection, web_server: Server, browser: Browser) -> AsyncIterator[Web]:
    handle = Web(web_server, browser)
    try:
        yield handle
    finally:
        for context in handle.contexts:
            await context.close()
    assert not handle.problems, "\n".join(handle.problems)


def minute_now() -> datetime:
    """The present, to the minute (what the pages default to)."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True)
class Library:
    """The seeded branch: its name and seat ids by label."""

    branch: str
    seats: dict[str, int]


async def seed_library(db: asyncpg.Connection, name: str = "Main Library") -> Library:
    """A branch with a quiet area (A1 power+monitor, A2 power, A3) and a group area (G1,
    G2 in maintenance), plus a second, small branch."""
    branch = await add_branch(db, name)
    seats = {
        "A1": await add_seat(db, branch, "A1", area="Quiet", power=True, monitor=True),
        "A2": await add_seat(db, branch, "A2", area="Quiet", power=True),
        "A3": await add_seat(db, branch, "A3", area="Quiet"),
        "G1": await add_seat(db, branch, "G1", area="Group"),
        "G2": await add_seat(db, branch, "G2", area="Group", status="MAINTENANCE"),
    }
    other = await add_branch(db, "Science Library")
    await add_seat(db, other, "S1", area="Lab", monitor=True)
    return Library(name, seats)


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    return await seed_library(db)
