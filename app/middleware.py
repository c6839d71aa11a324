"""Request context: a request id on every request and log line, and the last word on errors.

A pure ASGI middleware (no BaseHTTPMiddleware: it would buffer SSE streams). It sits
inside Starlette's ServerErrorMiddleware, so nothing unexpected ever reaches the
client as a plain-text page: an unreachable database becomes a JSON 503, any other
exception a JSON 500 that names the request id and nothing internal.
"""

import asyncio
import contextlib
import logging
import re
import uuid

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import DATABASE_DOWN_ERRORS, ServiceUnavailable
from app.logs import request_id_var

log = logging.getLogger(__name__)

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # The server gave up on this request (its shutdown grace period ran out):
            # answer a JSON 503 the client can retry elsewhere, not a plain-text 500.
            if not response_started:
                error = ServiceUnavailable("The server is shutting down; try again")
                body = {"detail": error.detail, "code": error.code}
                with contextlib.suppress(Exception):
                    await JSONResponse(body, 503, headers={"Retry-After": "1"})(
                        scope, receive, send_with_id
                    )
            raise
        except Exception as exc:
            if response_started:
                raise  # too late for an error body; the server closes the connection
            if isinstance(exc, DATABASE_DOWN_ERRORS):
                log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
                error = ServiceUnavailable()
                body = {"detail": error.detail, "code": error.code}
                response = JSONResponse(body, error.status_code, headers={"Retry-After": "5"})
            else:
                log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                response = JSONResponse(
                    {
                        "detail": "Internal server error",
                        "code": "internal_error",
                        "request_id": request_id,
                    },
                    500,
                )
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            # Echoed into headers and logs: accept only a plain token.
            return candidate if _SAFE_REQUEST_ID.match(candidate) else None
    return None


class JSONCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in JSON like every error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        headers = {
            k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")
        }
        body = {"detail": bytes(response.body).decode(), "code": "cors_refused"}
        return JSONResponse(body, 400, headers=headers)
