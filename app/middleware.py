"""Request context: a request id on every request and log line, the last word on
errors, and CORS. Applied by the edge (app/edge.py), which calls these functions.

The edge sits inside Starlette's ServerErrorMiddleware, so nothing unexpected ever
reaches the client as a plain-text page: an exception no handler knew becomes a JSON
500 that names the request id and nothing internal (``internal_error``). (An
unreachable database is a 503 by then: app/db/pool.py classifies driver errors where
the connection is taken.)
"""

import logging
import os
import re
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from app.errors import CorsRefused, InternalError, ServiceUnavailable, error_response

log = logging.getLogger(__name__)

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    """The client's X-Request-ID when it is a plain token, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            # Echoed into headers and logs: accept only a plain token.
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
            break
    # 128 random bits as 32 hex digits, like uuid4().hex without its version bits and
    # its UUID object (a quarter of the cost; 1.5 % of a cached listing).
    return os.urandom(16).hex()


def internal_error(scope: Scope, request_id: str) -> Response:
    """The answer to an exception nothing handled (logged here, with its traceback)."""
    log.exception("unhandled error on %s %s", scope["method"], scope["path"])
    return error_response(InternalError(request_id))


def shutting_down() -> Response:
    """The answer to a request the server gave up on (its shutdown grace period ran
    out): a JSON 503 the client can retry elsewhere, not a plain-text 500."""
    return error_response(
        ServiceUnavailable("The server is shutting down; try again", headers={"Retry-After": "1"})
    )


class JSONCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in JSON like every error.

    The edge uses its rules (``is_preflight``, ``preflight_response``, ``send``) rather
    than running it as a layer of its own."""

    def is_preflight(self, scope: Scope, headers: Headers) -> bool:
        return (
            scope["method"] == "OPTIONS"
            and "origin" in headers
            and "access-control-request-method" in headers
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = CorsRefused(
            bytes(response.body).decode(),
            headers={
                k: v
                for k, v in response.headers.items()
                if k not in ("content-type", "content-length")
            },
        )
        return error_response(refused)


def cors_policy(app: ASGIApp, origins: Sequence[str]) -> JSONCORSMiddleware | None:
    """The CORS rules for CORS_ORIGINS (None: no origin is allowed, no CORS headers)."""
    if not origins:
        return None
    return JSONCORSMiddleware(
        app,
        allow_origins=origins,
        allow_credentials=False,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=[
            "X-Request-ID",
            "Retry-After",
            "Idempotent-Replayed",
            "Content-Disposition",
            "RateLimit",
            "RateLimit-Policy",
        ],
    )
