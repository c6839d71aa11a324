"""A 405 names every method its path supports (RFC 9110 `Allow`), as the schema lists
them, not only those of the first route Starlette tried (issue 11, item 6)."""

import re

import httpx
import pytest

from app.main import create_app
from tests.conftest import make_settings

PATHS = create_app(make_settings("postgresql://unused/x")).openapi()["paths"]


@pytest.mark.parametrize("path", sorted(PATHS))
async def test_a_405_allows_exactly_the_methods_of_the_schema(
    client: httpx.AsyncClient, path: str
) -> None:
    documented = {method.upper() for method in PATHS[path]}
    unsupported = next(m for m in ("OPTIONS", "PUT", "TRACE") if m not in documented)
    response = await client.request(unsupported, re.sub(r"\{[^}]*\}", "1", path))
    assert response.status_code == 405, response.text
    assert response.json()["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) == documented
