"""/docs and /redoc in a real browser (Debian's Chromium) under the service's
Content-Security-Policy: they render, and the browser reports no violation (the ``web``
fixture also fails the test on any console error)."""

import asyncio

import pytest
from playwright.async_api import Page, expect

from tests.web.conftest import Web

pytestmark = pytest.mark.slow

# Every violation the page reports, kept where the test can read it.
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


async def docs_page(web: Web, path: str) -> Page:
    page = await web.page("desktop")
    await page.add_init_script(_RECORD_VIOLATIONS)
    response = await page.goto(path)
    assert response is not None and response.status == 200
    assert "unsafe-inline" not in (await response.all_headers())["content-security-policy"]
    return page


async def assert_no_violations(page: Page) -> None:
    await asyncio.sleep(0.5)  # late ones (a worker, a lazily rendered part) arrive too
    assert await page.evaluate("window.__cspViolations") == []


async def test_swagger_ui_renders_its_operations_under_the_csp(web: Web) -> None:
    page = await docs_page(web, "/docs")

    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("DL-SMS")
    login = page.locator(".opblock-summary-path", has_text="/auth/login").first
    await expect(login).to_be_visible()
    await expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    await assert_no_violations(page)


async def test_redoc_renders_its_operations_under_the_csp(web: Web) -> None:
    page = await docs_page(web, "/redoc")

    await expect(page.get_by_role("heading", name="DL-SMS (1.0.0)")).to_be_visible()
    await expect(page.get_by_role("heading", name="Health").first).to_be_visible()
    await assert_no_violations(page)
