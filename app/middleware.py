"""Request context: a request id on every request and log line, and the last word on errors.

A pure ASGI middleware (no BaseHTTPMiddleware: it would buffer SSE streams). It sits
inside Starlette's ServerErrorMiddleware, so nothing unexpected ever reaches the
client as a plain-text page: an exception no handler knew becomes a JSON 500 that
names the request id and nothing internal. (An unreachable database is a 503 by then:
app/db/pool.py classifies driver errors where the connection is taken.)
"""

import asyncio
import contextlib
import logging
import re
import uuid

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import CorsRefused, InternalError, ServiceUnavailable, error_response
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
                shutting_down = ServiceUnavailable(
                    "The server is shutting down; try again", headers={"Retry-After": "1"}
                )
                with contextlib.suppress(Exception):
                    await error_response(shutting_down)(scope, receive, send_with_id)
            raise
        except Exception:
            if response_started:
                raise  # too late for an error body; the server closes the connection
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await error_response(InternalError(request_id))(scope, receive, send_with_id)
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
        refused = CorsRefused(
            bytes(response.body).decode(),
            headers={
                k: v
                for k, v in response.headers.items()
                if k not in ("content-type", "content-length")
            },
        )
        return error_response(refused)
