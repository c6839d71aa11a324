"""Swagger UI at /docs and ReDoc at /redoc, with every file they load served from here.

FastAPI's own pages load their JavaScript, CSS, favicon and fonts from CDNs, so they are
blank on a network without internet (a campus network, a kiosk, the browser tests).
The files come from the pinned ``fastapi-standalone-docs`` wheel (swagger-ui-dist and
redoc at fixed versions, with their licences), mounted under /docs/assets.

The pages start Swagger UI and ReDoc from small inline blocks, which the service's
Content-Security-Policy (app/securityheaders.py) would block: each page is sent with
that policy plus the sha256 of exactly its own inline blocks, and nothing else inline.
"""

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi_standalone_docs
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.securityheaders import CONTENT_SECURITY_POLICY

ASSETS_PATH = "/docs/assets"
_ASSETS = Path(fastapi_standalone_docs.__file__).parent / "static"
# Swagger UI's default puts a badge from validator.swagger.io on the page.
_SWAGGER_DEFAULTS: dict[str, Any] = {"validatorUrl": None}


def install(app: FastAPI) -> None:
    """Add /docs, its OAuth2 redirect, /redoc and their assets; call it with the
    app built with ``docs_url=None, redoc_url=None``."""
    openapi_url = app.openapi_url
    assert openapi_url is not None, "the documentation pages need /openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    parameters = {**_SWAGGER_DEFAULTS, **(app.swagger_ui_parameters or {})}

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return _allow_own_inline_blocks(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/fastapi/favicon.png",
                oauth2_redirect_url=root + oauth2_redirect_url,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=parameters,
            )
        )

    async def swagger_ui_redirect() -> HTMLResponse:
        return _allow_own_inline_blocks(get_swagger_ui_oauth2_redirect_html())

    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return _allow_own_inline_blocks(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/fastapi/favicon.png",
                with_google_fonts=False,
            ),
            styles=_REDOC_STYLES,
            # Its search index runs in a worker made from a blob: URL by its own script.
            extra="worker-src 'self' blob:",
        )

    async def redoc_logo() -> FileResponse:
        # This ReDoc build asks for its logo beside the page (the upstream one points at
        # ReDoc's CDN): <page path>/logo-mini.svg.
        return FileResponse(_ASSETS / "redoc" / "logo-mini.svg")

    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_api_route("/redoc", redoc, include_in_schema=False)
    app.add_api_route("/redoc/logo-mini.svg", redoc_logo, include_in_schema=False)
    app.mount(ASSETS_PATH, StaticFiles(directory=_ASSETS), name="docs-assets")


def amend_schema(app: FastAPI, amend: Callable[[dict[str, Any]], None]) -> None:
    """Change the OpenAPI schema once, when it is first built (FastAPI's documented
    override of ``app.openapi``); amendments made this way chain."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            amend(build())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


# ReDoc adds <style> elements as it renders: empty ones that styled-components fills
# through the CSSOM (which CSP allows), and perfect-scrollbar's fixed CSS. Their hashes,
# rather than 'unsafe-inline'; tests/web/test_docs_browser.py renders /redoc under them.
_REDOC_STYLES = (
    "sha256-" + base64.b64encode(hashlib.sha256(b"").digest()).decode(),
    "sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc=",  # perfect-scrollbar's CSS
)

# Inline blocks: a <script> or <style> without attributes (a <script src=...> is a file).
_INLINE_BLOCK = re.compile(rb"<(script|style)>(.*?)</\1>", re.DOTALL)


def _allow_own_inline_blocks(
    page: HTMLResponse, *, styles: tuple[str, ...] = (), extra: str = ""
) -> HTMLResponse:
    """``page`` with the service's CSP, plus the hashes of the page's own inline blocks
    (and of ``styles``, blocks its script adds) and ``extra`` directives."""
    hashes: dict[bytes, list[str]] = {b"script": [], b"style": [f"'{h}'" for h in styles]}
    for tag, block in _INLINE_BLOCK.findall(bytes(page.body)):
        digest = base64.b64encode(hashlib.sha256(block).digest()).decode()
        hashes[tag].append(f"'sha256-{digest}'")
    policy = CONTENT_SECURITY_POLICY
    for tag, allowed in hashes.items():
        if allowed:
            directive = f"{tag.decode()}-src 'self'"
            policy = policy.replace(directive, " ".join([directive, *allowed]), 1)
    page.headers["Content-Security-Policy"] = f"{policy}; {extra}" if extra else policy
    return page
