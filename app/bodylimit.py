"""Request bodies are small JSON documents: anything bigger is refused with 413 JSON.

A declared Content-Length over the limit is refused before a byte is read; a body
sent without one (chunked) is counted as it arrives and refused once it passes the
limit, so a client cannot make the service buffer megabytes. Applied by the edge
(app/edge.py), before the rate limit: a refused body is not counted.
"""

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from app.errors import PayloadTooLarge, error_response


def declared_too_large(scope: Scope, max_bytes: int) -> bool:
    """Whether the request declares a Content-Length over ``max_bytes``."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value) > max_bytes
            except ValueError:
                return False
    return False


def too_large(max_bytes: int) -> Response:
    return error_response(PayloadTooLarge(f"Request body larger than {max_bytes} bytes"))


class CountedBody:
    """The request's ``receive`` as the app gets it: the body counted as it arrives.

    Past ``max_bytes`` (and before the app answered) it answers 413 through ``send``
    and tells the app the client is gone; the edge then drops whatever the app sends
    (``refused``)."""

    __slots__ = ("_answered", "_max_bytes", "_receive", "_scope", "_send", "received", "refused")

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        max_bytes: int,
        answered: Callable[[], bool],
    ) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._max_bytes = max_bytes
        self._answered = answered
        self.received = 0
        self.refused = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request" and not (self.refused or self._answered()):
            self.received += len(message.get("body", b""))
            if self.received > self._max_bytes:
                self.refused = True
                await too_large(self._max_bytes)(self._scope, self._receive, self._send)
                return {"type": "http.disconnect"}
        return message
