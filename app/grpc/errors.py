"""The one place a failure becomes a gRPC status (api.md, "gRPC").

Every RPC runs inside ``ErrorInterceptor``: a ``DomainError`` is answered with the
contract's status code, its ``detail`` as the message and its ``code`` as
``google.rpc.ErrorInfo.reason`` (domain ``dlsms``) in the rich status details; a wait
(``Retry-After``) also travels as ``google.rpc.RetryInfo``. Request validation is
``INVALID_ARGUMENT``; anything unexpected is logged and answered ``INTERNAL`` with
nothing internal in it.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from pydantic import ValidationError

from app.errors import DomainError, InvalidInterval, error_body
from app.grpc import metrics

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

DOMAIN = "dlsms"
_OURS = "/dlsms.v1."

# HTTP 409s that say "it exists already"; every other 409 is a failed precondition.
_ALREADY_EXISTS = frozenset({"already_exists", "seat_conflict", "user_overlap"})
_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


class InvalidArgument(Exception):
    """A request field the proto allows but the contract does not (an id of 0, a
    timestamp out of range): ``INVALID_ARGUMENT`` with no ``ErrorInfo``, as a
    validation error without a ``code``."""


def status_code(exc: DomainError) -> grpc.StatusCode:
    if exc.status_code == 409 and exc.code in _ALREADY_EXISTS:
        return grpc.StatusCode.ALREADY_EXISTS
    return _BY_HTTP_STATUS.get(exc.status_code, grpc.StatusCode.INTERNAL)


def rich_status(exc: DomainError) -> grpc.Status:
    """The status for ``exc``: code, detail, and ErrorInfo (+ RetryInfo) in the details."""
    body = error_body(exc)  # the same {detail, code, ...} as HTTP's, times in UTC
    info = error_details_pb2.ErrorInfo(
        reason=exc.code,
        domain=DOMAIN,
        metadata={k: _text(v) for k, v in body.items() if k not in ("detail", "code")},
    )
    details = [_packed(info)]
    retry_after = (exc.headers or {}).get("Retry-After")
    if retry_after is not None and retry_after.isdigit():
        delay = duration_pb2.Duration(seconds=int(retry_after))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    return _status(status_code(exc), exc.detail, details)


def validation_status(exc: ValidationError) -> grpc.Status:
    issues = exc.errors(include_input=False, include_url=False)
    message = "; ".join(
        f"{'.'.join(map(str, issue['loc'])) or 'request'}: {issue['msg']}" for issue in issues
    )
    if issues and all(issue["type"] == InvalidInterval.code for issue in issues):
        # The schemas' "end after start" rule: the contract's `invalid_interval`.
        return rich_status(InvalidInterval(str(issues[0]["msg"])))
    return _status(grpc.StatusCode.INVALID_ARGUMENT, message or "Invalid request", [])


def _status(code: grpc.StatusCode, message: str, details: list[any_pb2.Any]) -> grpc.Status:
    # grpc.StatusCode and google.rpc.Code share their numbers.
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=details)
    )


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as in the JSON body
    return str(value)


def status_for(exc: Exception) -> grpc.Status:
    """The status that answers ``exc`` (logged when it is unexpected)."""
    if isinstance(exc, DomainError):
        return rich_status(exc)
    if isinstance(exc, ValidationError):
        return validation_status(exc)
    if isinstance(exc, InvalidArgument):
        return _status(grpc.StatusCode.INVALID_ARGUMENT, str(exc), [])
    if isinstance(exc, NotImplementedError):
        return _status(grpc.StatusCode.UNIMPLEMENTED, "Not implemented by this server", [])
    log.error("gRPC call failed", exc_info=exc)
    return _status(grpc.StatusCode.INTERNAL, "Internal server error", [])


Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], AsyncIterator[Any]]


Admit = Callable[[Context], Awaitable[None]]


def _guard_unary(method: str, behavior: UnaryBehavior, admit: Admit | None) -> UnaryBehavior:
    async def guarded(request: Any, context: Context) -> Any:
        started, code = time.perf_counter(), grpc.StatusCode.UNKNOWN
        try:
            if admit is not None:
                await admit(context)  # the rate limit: raises RateLimited past it
            answer = await behavior(request, context)
            code = grpc.StatusCode.OK
            return answer
        except asyncio.CancelledError:  # the client went away, or its deadline passed
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:  # each kind is answered by status_for
            status = status_for(exc)
            code = status.code
            await context.abort(status.code, status.details, status.trailing_metadata)
        finally:
            metrics.observe(method, code, started)

    return guarded


def _guard_stream(method: str, behavior: StreamBehavior) -> StreamBehavior:
    async def guarded(request: Any, context: Context) -> AsyncIterator[Any]:
        started, code = time.perf_counter(), grpc.StatusCode.UNKNOWN
        try:
            async for message in behavior(request, context):
                yield message
            code = grpc.StatusCode.OK
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:  # as above
            status = status_for(exc)
            code = status.code
            await context.abort(status.code, status.details, status.trailing_metadata)
        finally:
            metrics.observe(method, code, started)

    return guarded


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Wraps our services' unary-unary and unary-stream handlers in the mapping above;
    ``admit`` is asked first on every unary call (streams are not counted)."""

    def __init__(self, admit: Admit | None = None) -> None:
        self._admit = admit

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Req, Resp] | None"]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> "grpc.RpcMethodHandler[Req, Resp] | None":
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(_OURS):
            return handler  # health and reflection answer for themselves
        # grpc.aio runs our servicers' coroutines and async generators through these
        # (the stubs type them as the synchronous API's callables).
        if handler.unary_unary is not None:
            unary = cast(UnaryBehavior, handler.unary_unary)
            return grpc.unary_unary_rpc_method_handler(
                cast(Any, _guard_unary(handler_call_details.method, unary, self._admit)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream = cast(StreamBehavior, handler.unary_stream)
            return grpc.unary_stream_rpc_method_handler(
                cast(Any, _guard_stream(handler_call_details.method, stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def stored_error(status_code: int, body: dict[str, Any]) -> DomainError:
    """An error answer stored under an Idempotency-Key (``{detail, code, ...}`` and its
    HTTP status), to be replayed as the same status. (A plain DomainError with the
    stored status and code: not a subclass, which every error type's tests would count.)"""
    extra = {k: v for k, v in body.items() if k not in ("detail", "code")}
    error = DomainError(str(body.get("detail", "")), extra=extra)
    error.status_code = status_code
    error.code = str(body.get("code", "error"))
    return error
