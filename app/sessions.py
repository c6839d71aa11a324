"""Browser sessions (api.md, Browser sessions): the token in an HttpOnly cookie, and the
double-submit CSRF rule for writes that the cookie alone authenticates.

The page's script reads ``dlsms_csrf`` (not HttpOnly) and echoes it in ``X-CSRF-Token``;
another site can make the browser send our cookies (a form POST) but can neither read
them nor set that header, so a write that carries the right header came from our pages.
"""

import hmac
import secrets
from typing import Any

from fastapi import FastAPI, Request, Response

from app import apidocs
from app.errors import CsrfFailed

SESSION_COOKIE = "dlsms_session"
CSRF_COOKIE = "dlsms_csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def set_session_cookies(
    response: Response, request: Request, *, token: str, max_age: int, secure: bool
) -> None:
    """The session cookie (the JWT, HttpOnly) and a fresh CSRF cookie, same lifetime."""
    secure = secure or request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    response.set_cookie(
        CSRF_COOKIE,
        secrets.token_urlsafe(32),
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=False,  # the page's script must read it to echo it
        samesite="lax",
    )


def clear_session_cookies(response: Response, request: Request, *, secure: bool) -> None:
    secure = secure or request.url.scheme == "https"
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, httponly=False, samesite="lax")


def check_csrf(request: Request) -> None:
    """Raise CsrfFailed unless a state-changing request carries ``X-CSRF-Token`` equal to
    the ``dlsms_csrf`` cookie. Call it only when the cookie authenticates the request."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailed()


def document_csrf(app: FastAPI) -> None:
    """Name 403 ``csrf_failed`` in the OpenAPI schema on every write that takes the token
    (every such operation also takes the cookie), without repeating it in each router."""
    apidocs.amend_schema(app, _add_csrf_responses)


def _add_csrf_responses(schema: dict[str, Any]) -> None:
    description = f"`{CsrfFailed.code}`: {CsrfFailed.default_detail}"
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            if method.upper() not in UNSAFE_METHODS or not operation.get("security"):
                continue
            responses = operation.setdefault("responses", {})
            existing = responses.get("403")
            if existing is None:
                responses["403"] = {"description": description, "content": body}
            elif CsrfFailed.code not in existing.get("description", ""):
                existing["description"] = f"{existing.get('description', '')} / {description}"
