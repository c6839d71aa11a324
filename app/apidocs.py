"""Swagger UI at /docs and ReDoc at /redoc, with every file they load served from here.

FastAPI's own pages load their JavaScript, CSS, favicon and fonts from CDNs, so they are
blank on a network without internet (a campus network, a kiosk, the browser tests).
The files come from the pinned ``fastapi-standalone-docs`` wheel (swagger-ui-dist and
redoc at fixed versions, with their licences), mounted under /docs/assets.
"""

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
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/fastapi/favicon.png",
            oauth2_redirect_url=root + oauth2_redirect_url,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=parameters,
        )

    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/fastapi/favicon.png",
            with_google_fonts=False,
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


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")
