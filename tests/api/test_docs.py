"""/docs (Swagger UI) and /redoc load nothing from another origin: every script,
stylesheet, icon and font comes from the service itself."""

import re

import httpx
import pytest

# Every URL an HTML page makes the browser load (or link to).
_REFERENCE = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".svg": ("image/svg+xml",),
}


def same_origin_references(html: str) -> list[str]:
    references = _REFERENCE.findall(html)
    assert references, "the page references no asset at all"
    for url in references:
        # A path on this server: not "https://…", not protocol-relative "//cdn…".
        assert url.startswith("/") and not url.startswith("//"), url
    return references


async def assert_served(client: httpx.AsyncClient, url: str) -> None:
    response = await client.get(url)
    assert response.status_code == 200, url
    suffix = url[url.rfind(".") :]
    content_type = response.headers["content-type"].split(";")[0]
    assert content_type in _CONTENT_TYPES[suffix], (url, content_type)
    assert len(response.content) > 0


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_loads_every_asset_from_the_service_itself(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html  # no CDN, no Google Fonts
    assert "'/openapi.json'" in html or '"/openapi.json"' in html
    for url in same_origin_references(html):
        await assert_served(client, url)


async def test_swagger_ui_runs_without_the_online_validator_and_keeps_authorize(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/docs")).text
    schema = (await client.get("/openapi.json")).json()

    assert '"validatorUrl": null' in html
    assert '"persistAuthorization": true' in html
    # Authorize: OAuth2 password flow against this server's /auth/token.
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in html
    password_flow = {"scopes": {}, "tokenUrl": "/auth/token"}
    scheme = {"type": "oauth2", "flows": {"password": password_flow}}
    assert scheme in schema["components"]["securitySchemes"].values()
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "https://" not in redirect.text and "http://" not in redirect.text


async def test_redoc_logo_is_served_where_the_bundled_redoc_asks_for_it(
    client: httpx.AsyncClient,
) -> None:
    redoc_js = await client.get("/docs/assets/redoc/redoc.standalone.js")
    assert 'window.location.pathname+"/logo-mini.svg"' in redoc_js.text
    assert "cdn.redoc.ly" not in redoc_js.text

    await assert_served(client, "/redoc/logo-mini.svg")


async def test_docs_pages_are_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]
