"""The edge: what every HTTP request gets, in one pure ASGI pass.

One layer with one ``send`` wrapper instead of six stacked middlewares, each of which
wrapped ``send`` again (on a cached listing they cost more than the cache itself).
Each concern's rule stays in its own module, as plain functions this layer calls in
the order the layers had, outermost first:

1. security headers on every answer (app/securityheaders.py);
2. the request id on every answer and log line, and the last word on errors: a JSON
   500 naming the request id, a JSON 503 when the server gives up on the request at
   shutdown (app/middleware.py);
3. metrics: every request counted and timed by route template and status
   (app/metrics.py);
4. the body size limit: 413 before the body is read, or as it arrives (app/bodylimit.py);
5. CORS, with CORS_ORIGINS: preflights answered here, the CORS headers on everything
   below (app/middleware.py, Starlette's rules);
6. the rate limit: 429 past the bucket, the RateLimit fields on what it admits
   (app/apilimit.py);
7. cached listings answered without routing (app/fastpath.py).

What the edge answers itself at steps 1-4 (413, 500, 503, preflights) goes out
without the CORS headers and RateLimit fields, as before. Pure ASGI (no
BaseHTTPMiddleware): SSE streams pass through unbuffered.
"""

import asyncio
import contextlib
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import apilimit, bodylimit, fastpath, metrics, securityheaders
from app.logs import request_id_var
from app.middleware import JSONCORSMiddleware, internal_error, request_id_of, shutting_down


class Edge:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, cors: JSONCORSMiddleware | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        token = request_id_var.set(request_id)
        answer = _Answer(send, request_id)
        try:
            await self._serve(scope, receive, answer)
        except asyncio.CancelledError:
            if not answer.started:
                with contextlib.suppress(Exception):
                    await shutting_down()(scope, receive, answer.send_own)
            raise
        except Exception:
            if answer.body is not None and answer.body.refused:
                pass  # the 413 went out; what the app did next does not matter
            elif answer.started:
                raise  # too late for an error body; the server closes the connection
            else:
                await internal_error(scope, request_id)(scope, receive, answer.send_own)
        finally:
            metrics.observe(scope, answer.status, time.perf_counter() - started)
            request_id_var.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, answer: "_Answer") -> None:
        if bodylimit.declared_too_large(scope, self.max_body_bytes):
            await bodylimit.too_large(self.max_body_bytes)(scope, receive, answer.send_own)
            return
        if self.cors is not None:
            request_headers = Headers(scope=scope)
            if self.cors.is_preflight(scope, request_headers):
                preflight = self.cors.preflight_response(request_headers)
                await preflight(scope, receive, answer.send_own)
                return
            answer.cors = (self.cors, request_headers)
        verdict = await apilimit.admit(scope)
        if verdict is not None:
            policy, decision = verdict
            if not decision.admitted:
                await apilimit.refusal(scope, policy, decision)(scope, receive, answer.send)
                return
            answer.fields = apilimit.header_fields(policy, decision)
        if fastpath.is_cached_listing(scope):
            body = await fastpath.cached_answer(scope)
            if body is not None:
                start = {"type": "http.response.start", "status": 200}
                start["headers"] = fastpath.answer_headers(body)
                await answer.send(start)
                await answer.send({"type": "http.response.body", "body": body})
                return
        answer.body = bodylimit.CountedBody(
            scope, receive, answer.send_own, self.max_body_bytes, answer.has_started
        )
        await self.app(scope, answer.body.receive, answer.send)


class _Answer:
    """One request's answer on its way out: the headers it gets, and what was sent."""

    __slots__ = (
        "_request_id",
        "_send",
        "body",
        "cors",
        "fields",
        "started",
        "status",
    )

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self._request_id = (b"x-request-id", request_id.encode())
        self.status = 500  # what an exception before any answer is counted as
        self.started = False
        self.fields: list[tuple[bytes, bytes]] | None = None  # RateLimit-Policy, RateLimit
        self.cors: tuple[JSONCORSMiddleware, Headers] | None = None  # and the request's
        self.body: bodylimit.CountedBody | None = None

    def has_started(self) -> bool:
        return self.started

    async def send(self, message: Message) -> None:
        """What the app (and the rate limit, and the cache) send: with the RateLimit
        fields and the CORS headers, then everything ``send_own`` adds."""
        if self.body is not None and self.body.refused:
            return  # a 413 was sent instead
        if self.fields is not None and message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *self.fields]
        if self.cors is not None:
            cors, request_headers = self.cors
            await cors.send(message, self.send_own, request_headers)
        else:
            await self.send_own(message)

    async def send_own(self, message: Message) -> None:
        """What every answer gets: the request id and the security headers."""
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            headers = [*message.get("headers", ()), self._request_id]
            message["headers"] = securityheaders.complete(headers)
        await self._send(message)
