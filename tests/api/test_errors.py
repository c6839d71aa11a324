"""Every error is JSON (api.md, Conventions): {detail, code}, FastAPI's shape for 422,
a request id on every response, and nothing internal in a 500."""

import logging
import re
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.db.pool import connection
from app.deps import Conn
from app.errors import (
    DatabaseUnavailable,
    DomainError,
    InternalError,
    QuotaExceeded,
    RateLimited,
    Suspended,
)
from app.logs import request_id_var
from tests.conftest import ClientFactory

GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def with_route(path: str, endpoint: Callable[[], Any]) -> Callable[[FastAPI], None]:
    """An ``app_hook`` adding a test-only GET route."""

    def hook(app: FastAPI) -> None:
        app.add_api_route(path, endpoint, methods=["GET"])

    return hook


def raising(exc: BaseException) -> Callable[[], Any]:
    async def endpoint() -> None:
        raise exc

    return endpoint


def assert_json(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


async def test_unknown_route_is_json_404_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    assert assert_json(response) == {"detail": "Not Found", "code": "not_found"}


async def test_wrong_method_is_json_405_method_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert assert_json(response) == {
        "detail": "Method Not Allowed",
        "code": "method_not_allowed",
    }
    assert response.headers["Allow"] == "GET"


async def test_broken_json_body_is_422_in_fastapi_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login",
        content=b'{"student_id": "S1000001", "password": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    body = assert_json(response)
    assert set(body) == {"detail"}
    [error] = body["detail"]
    assert error["type"] == "json_invalid"
    assert error["loc"][0] == "body"


async def test_unexpected_exception_is_json_500_naming_only_the_request_id(
    make_client: ClientFactory,
) -> None:
    client = await make_client(
        app_hook=with_route("/test/boom", raising(RuntimeError("secret internals")))
    )
    response = await client.get("/test/boom")
    assert response.status_code == 500
    body = assert_json(response)
    assert body == {
        "detail": "Internal server error",
        "code": "internal_error",
        "request_id": response.headers["X-Request-ID"],
    }
    assert GENERATED_REQUEST_ID.match(body["request_id"])
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


async def test_unexpected_exception_is_logged_with_the_request_id(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    class StampRequestId(logging.Filter):
        # What app.logs.configure_logging's handler does: read the id of the current request.
        def filter(self, record: logging.LogRecord) -> bool:
            record.request_id = request_id_var.get()
            return True

    caplog.handler.addFilter(StampRequestId())
    client = await make_client(
        app_hook=with_route("/test/boom", raising(RuntimeError("secret internals")))
    )
    response = await client.get("/test/boom", headers={"X-Request-ID": "req-500-log"})
    assert response.json()["request_id"] == "req-500-log"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.request_id == "req-500-log"  # type: ignore[attr-defined]
    assert "/test/boom" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def failing_with_a_connection(exc: BaseException) -> Callable[..., Any]:
    """A route that takes a pooled connection, uses it, then meets ``exc``."""

    async def endpoint(conn: Conn) -> None:
        await conn.fetchval("SELECT 1")
        raise exc

    return endpoint


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(
            asyncpg.CannotConnectNowError("the database system is starting up"),
            id="cannot-connect-now",
        ),
        pytest.param(
            asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
            id="connection-lost",
        ),
        pytest.param(asyncpg.AdminShutdownError("terminating connection"), id="admin-shutdown"),
    ],
)
async def test_database_unreachable_in_a_route_is_json_503_service_unavailable(
    make_client: ClientFactory, exc: BaseException
) -> None:
    client = await make_client(app_hook=with_route("/test/db-down", failing_with_a_connection(exc)))
    response = await client.get("/test/db-down")
    assert response.status_code == 503
    body = assert_json(response)
    assert body["code"] == "service_unavailable"
    assert set(body) == {"detail", "code"}
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(raising(ConnectionRefusedError(111, "Connect call failed")), id="no-conn"),
        pytest.param(
            failing_with_a_connection(FileNotFoundError(2, "No such file")), id="with-conn"
        ),
        pytest.param(failing_with_a_connection(TimeoutError()), id="timeout-with-conn"),
    ],
)
async def test_a_stray_os_error_is_a_500_not_a_database_outage(
    make_client: ClientFactory, endpoint: Callable[..., Any]
) -> None:
    # Only errors met while taking or using a database connection mean "database down";
    # a file, or another service's socket, failing is our bug, not a reason to retry.
    client = await make_client(app_hook=with_route("/test/stray", endpoint))
    response = await client.get("/test/stray")
    assert response.status_code == 500
    assert assert_json(response)["code"] == "internal_error"


async def test_taking_a_connection_from_an_unreachable_server_is_database_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{port}/x", min_size=0)
    try:
        with pytest.raises(DatabaseUnavailable):
            async with connection(pool):
                pass
    finally:
        await pool.close()


async def test_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "client-id_1.2:3"})
    assert response.headers["X-Request-ID"] == "client-id_1.2:3"


async def test_every_response_gets_its_own_generated_request_id(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health")).headers["X-Request-ID"]
    second = (await client.get("/no/such/route")).headers["X-Request-ID"]
    assert GENERATED_REQUEST_ID.match(first)
    assert GENERATED_REQUEST_ID.match(second)
    assert first != second


@pytest.mark.parametrize(
    "unsafe",
    [
        pytest.param("has spaces in it", id="spaces"),
        pytest.param("x" * 300, id="300-chars"),
        pytest.param('id"><script>', id="markup"),
    ],
)
async def test_unsafe_client_request_id_is_replaced(client: httpx.AsyncClient, unsafe: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": unsafe})
    assert response.status_code == 200
    assert GENERATED_REQUEST_ID.match(response.headers["X-Request-ID"])


def domain_error(error_type: type[DomainError]) -> DomainError:
    if error_type is Suspended:
        return Suspended(datetime(2026, 12, 1, 9, 30, tzinfo=UTC))
    if error_type is RateLimited:
        return RateLimited(30)
    if error_type is InternalError:
        return InternalError("req-1")
    if error_type is QuotaExceeded:
        return QuotaExceeded("Over the quota", quota="max_bookings_per_day", limit=2, used=2)
    return error_type()


DOMAIN_ERRORS = DomainError.__subclasses__()


def test_domain_error_codes_are_distinct() -> None:
    codes = [error_type.code for error_type in DOMAIN_ERRORS]
    assert len(codes) > 10
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("error_type", DOMAIN_ERRORS, ids=lambda t: t.__name__)
async def test_domain_error_renders_as_detail_and_code_with_its_status(
    make_client: ClientFactory, error_type: type[DomainError]
) -> None:
    error = domain_error(error_type)
    client = await make_client(app_hook=with_route("/test/domain-error", raising(error)))
    response = await client.get("/test/domain-error")
    assert response.status_code == error_type.status_code
    body = assert_json(response)
    assert body.pop("code") == error_type.code
    assert body.pop("detail") == error.detail
    assert set(body) == set(error.extra)  # nothing beyond what the error declares
    for name, value in (error.headers or {}).items():
        assert response.headers[name] == value


async def test_suspended_error_names_the_end_of_the_suspension(
    make_client: ClientFactory,
) -> None:
    error = Suspended(datetime(2026, 12, 1, 9, 30, tzinfo=UTC))
    client = await make_client(app_hook=with_route("/test/suspended", raising(error)))
    body = (await client.get("/test/suspended")).json()
    assert body["code"] == "suspended"
    assert body["suspended_until"] == "2026-12-01T09:30:00Z"


async def test_rate_limited_error_sets_retry_after(make_client: ClientFactory) -> None:
    client = await make_client(app_hook=with_route("/test/limited", raising(RateLimited(17))))
    response = await client.get("/test/limited")
    assert response.json()["code"] == "rate_limited"
    assert response.headers["Retry-After"] == "17"


async def test_a_body_over_the_limit_is_413_json_before_it_is_read(
    make_client: ClientFactory,
) -> None:
    client = await make_client(MAX_BODY_BYTES=2048)
    body = b'{"student_id": "S1", "name": "' + b"x" * 4096 + b'", "password": "12345678"}'

    response = await client.post(
        "/auth/register", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_a_chunked_body_over_the_limit_is_413_json(make_client: ClientFactory) -> None:
    client = await make_client(MAX_BODY_BYTES=2048)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"student_id": "S1", "name": "'
        for _ in range(10):
            yield b"x" * 1024
        yield b'", "password": "12345678"}'

    response = await client.post(
        "/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_a_body_under_the_limit_is_served(make_client: ClientFactory) -> None:
    client = await make_client(MAX_BODY_BYTES=2048)

    response = await client.post(
        "/auth/register",
        json={"student_id": "S1000009", "name": "Ada", "password": "correct horse"},
    )

    assert response.status_code == 201
