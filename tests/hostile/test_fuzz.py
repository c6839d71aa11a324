"""Bad input, by hand (issue 7, "Hostile input"): whatever a client sends, the answer is a
4xx JSON body with a `detail` (api.md, Conventions: "Never a 500 for bad input"), a
domain error names its `code`, and a FastAPI validation error keeps its list shape.

Bodies are sent as raw bytes so that they can be what no JSON library writes by
default: NaN, Infinity, lone surrogates, broken or nested beyond reason.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from app.models import Role
from tests.conftest import ClientFactory, bearer
from tests.factories import FrozenClock, Student, add_branch, add_seat, add_student

# Dec 1, 08:00 UTC; the bookings below are for 10:00-11:00.
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
START, END = "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"
MAX_BODY_BYTES = 65536  # the default (app/settings.py)
MEGABYTE = 1024 * 1024
INT64_MAX = 2**63 - 1
SEAT = 1  # identities restart at 1 for every test: the seeded seat's id

REGISTER = {"student_id": "S2000001", "name": "Fuzz Student", "password": "correct horse"}
LOGIN = {"student_id": "S9999999", "password": "correct horse"}  # nobody: checked all the same
BOOKING = {"seat_id": SEAT, "start_time": START, "end_time": END}
SEAT_PATCH = {"status": "MAINTENANCE"}

BODY_ENDPOINTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "register": ("POST", "/auth/register", REGISTER),
    "login": ("POST", "/auth/login", LOGIN),
    "reservation": ("POST", "/reservations", BOOKING),
    "waitlist": ("POST", "/waitlist", BOOKING),
    "seat-patch": ("PATCH", f"/admin/seats/{SEAT}", SEAT_PATCH),
}


def raw(value: Any) -> bytes:
    """JSON as Python's lax parser reads it: NaN and Infinity allowed, lone surrogates and
    NUL written as escapes."""
    return json.dumps(value, allow_nan=True).encode()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@dataclass(frozen=True)
class Probe:
    """One hostile request and the refusal it must get. ``status`` None: any 4xx (the
    contract names none). ``code`` None: FastAPI's validation shape (``detail`` a list)."""

    method: str
    path: str
    content: bytes | None = None
    params: dict[str, str] | None = None
    content_type: str | None = "application/json"
    status: int | None = 422
    code: str | None = None
    headers: dict[str, str] | None = None


def body_probe(
    endpoint: str, content: bytes, *, status: int | None = 422, code: str | None = None, **kw: Any
) -> Probe:
    method, path, _ = BODY_ENDPOINTS[endpoint]
    return Probe(method, path, content, status=status, code=code, **kw)


def field_probe(
    endpoint: str, field: str, value: Any, *, status: int | None = 422, code: str | None = None
) -> Probe:
    method, path, base = BODY_ENDPOINTS[endpoint]
    return Probe(method, path, raw({**base, field: value}), status=status, code=code)


def whole_body_probes() -> list[Any]:
    """The same malformed bodies for every endpoint that takes one."""
    probes = []
    for endpoint, (_, _, base) in BODY_ENDPOINTS.items():
        field = next(iter(base))
        cases: dict[str, Probe] = {
            "broken-json": body_probe(endpoint, b'{"' + field.encode() + b'": '),
            "empty-body": body_probe(endpoint, b""),
            "array-body": body_probe(endpoint, raw([base])),
            "null-body": body_probe(endpoint, b"null"),
            "string-body": body_probe(endpoint, raw(json.dumps(base))),
            "nan-body": body_probe(endpoint, b"NaN"),
            "text-plain": body_probe(endpoint, raw(base), content_type="text/plain"),
            "form-encoded": body_probe(
                endpoint,
                b"&".join(f"{k}={v}".encode() for k, v in base.items()),
                content_type="application/x-www-form-urlencoded",
            ),
            "1mb-field": field_probe(
                endpoint, field, "x" * MEGABYTE, status=413, code="payload_too_large"
            ),
            "body-over-limit": body_probe(
                endpoint,
                raw({**base, "padding": "x" * MAX_BODY_BYTES}),
                status=413,
                code="payload_too_large",
            ),
            "nested-10-levels-in-a-field": field_probe(endpoint, field, json.loads(nested(10))),
            # Decodable, but deeper than the parser recurses: a 4xx all the same.
            "nested-20000-levels": body_probe(endpoint, nested(20_000), status=None),
            "not-utf8": body_probe(
                endpoint, b'{"' + field.encode() + b'": "\xff\xfe"}', status=None
            ),
        }
        probes += [pytest.param(probe, id=f"{endpoint}-{name}") for name, probe in cases.items()]
    return probes


# Values that no integer id field may take (api.md: "Ids are positive integers (64-bit)").
BAD_IDS: dict[str, Any] = {
    "2**63": 2**63,
    "10**30": 10**30,
    "-1": -1,
    "0": 0,
    "1e3-string": "1e3",
    "0x10-string": "0x10",
    "word": "abc",
    "fraction": 1.5,
    "nan": float("nan"),
    "infinity": float("inf"),
    "array": [SEAT],
    "object": {"id": SEAT},
    "null": None,
}

# Times the contract refuses with 422: no offset, a year Python cannot hold, not a time.
BAD_TIMES: dict[str, Any] = {
    "no-offset": "2026-12-01T10:00:00",
    "year-0": "0000-12-01T10:00:00Z",
    "year-10000": "10000-12-01T10:00:00Z",
    "date-only": "2026-12-01",
    "words": "tomorrow at ten",
    "empty": "",
    "trailing-nul": START + "\u0000",
    "object": {"date": START},
    "array": [START],
    "nan": float("nan"),
    "infinity": float("inf"),
    "huge-number": 1e308,
}


def field_probes() -> list[Any]:
    probes: list[Any] = []

    def add(name: str, probe: Probe) -> None:
        probes.append(pytest.param(probe, id=name))

    for endpoint in ("reservation", "waitlist"):
        for name, value in BAD_IDS.items():
            add(f"{endpoint}-seat_id-{name}", field_probe(endpoint, "seat_id", value))
        # Well-formed 64-bit ids that name no seat, past 32 bits too.
        for name, value in {"2**31": 2**31, "int64-max": INT64_MAX}.items():
            probe = field_probe(endpoint, "seat_id", value, status=404, code="not_found")
            add(f"{endpoint}-seat_id-{name}", probe)
        for field in ("start_time", "end_time"):
            for name, value in BAD_TIMES.items():
                add(f"{endpoint}-{field}-{name}", field_probe(endpoint, field, value))
        # Times at the edges of what datetime holds: outside 1970..9000, a validation 422.
        for name, start, end in [
            ("year-1-east-of-utc", "0001-01-01T00:00:00+14:00", "0001-01-01T01:00:00+14:00"),
            ("year-9999-west-of-utc", "9999-12-31T22:00:00-14:00", "9999-12-31T23:00:00-14:00"),
        ]:
            probe = Probe(
                *BODY_ENDPOINTS[endpoint][:2],
                raw({**BOOKING, "start_time": start, "end_time": end}),
            )
            add(f"{endpoint}-{name}", probe)
    add("waitlist-branch-and-seat", field_probe("waitlist", "branch", "Main"))
    add("waitlist-branch-201-chars", field_probe("waitlist", "branch", "b" * 201))

    text_fields = [
        ("register", "student_id"),
        ("register", "name"),
        ("register", "password"),
        ("login", "student_id"),
        ("login", "password"),
        ("seat-patch", "area"),
        ("seat-patch", "label"),
    ]
    wrong_types = {
        "number": 12345678,
        "array": ["correct horse"],
        "object": {"value": "correct horse"},
        "null": None,
        "60kb": "x" * 60_000,
    }
    for endpoint, field in text_fields:
        for name, value in wrong_types.items():
            if endpoint == "seat-patch" and name == "null":
                continue  # null means "leave it as it is" in a patch
            add(f"{endpoint}-{field}-{name}", field_probe(endpoint, field, value))
        # PostgreSQL text cannot hold NUL, nor UTF-8 a lone surrogate: refused, not a 500.
        # (A NUL in a new password is fine: it is hashed, never stored.)
        hostile = {"nul": "correct\u0000horse", "lone-surrogate": "correct \ud800 horse"}
        if (endpoint, field) == ("register", "password"):
            del hostile["nul"]
        for name, value in hostile.items():
            add(f"{endpoint}-{field}-{name}", field_probe(endpoint, field, value, status=None))
    add("register-email-nul", field_probe("register", "email", "a\u0000@example.edu", status=None))
    add("register-blank-name", field_probe("register", "name", "   "))

    for name, value in {"status-unknown": "BROKEN", "status-lowercase": "maintenance"}.items():
        add(f"seat-patch-{name}", field_probe("seat-patch", "status", value))
    add("seat-patch-has_power-word", field_probe("seat-patch", "has_power", "maybe"))
    add("seat-patch-has_power-2", field_probe("seat-patch", "has_power", 2))
    add("seat-patch-unknown-field", field_probe("seat-patch", "branch_id", 2))
    add("seat-patch-label-51-chars", field_probe("seat-patch", "label", "L" * 51))
    for name, key in {"empty": "", "spaces": "has spaces", "256-chars": "k" * 256}.items():
        probe = Probe("POST", "/reservations", raw(BOOKING), headers={"Idempotency-Key": key})
        add(f"reservation-idempotency-key-{name}", probe)
    return probes


def path_id_probes() -> list[Any]:
    probes = []
    paths = [
        ("PATCH", "/admin/seats/{}", raw(SEAT_PATCH)),
        ("GET", "/seats/{}", None),
        ("GET", "/reservations/{}", None),
        ("DELETE", "/waitlist/{}", None),
        ("POST", "/notifications/{}/read", None),
    ]
    bad = {"2**63": 2**63, "10**30": 10**30, "-1": -1, "0": 0, "1e3": "1e3", "0x10": "0x10"}
    for method, template, content in paths:
        for name, value in bad.items():
            probe = Probe(method, template.format(value), content)
            probes.append(pytest.param(probe, id=f"{method}-{template}-{name}"))
        # The largest id there may be is well-formed, and missing.
        probe = Probe(method, template.format(INT64_MAX), content, status=404, code="not_found")
        probes.append(pytest.param(probe, id=f"{method}-{template}-int64-max"))
    return probes


def seat_query_probes() -> list[Any]:
    queries: dict[str, tuple[dict[str, str], str | None]] = {
        "limit-0": ({"limit": "0"}, None),
        "limit-501": ({"limit": "501"}, None),
        "limit-negative": ({"limit": "-1"}, None),
        "limit-10**30": ({"limit": str(10**30)}, None),
        "limit-1e3": ({"limit": "1e3"}, None),
        "limit-0x10": ({"limit": "0x10"}, None),
        "limit-empty": ({"limit": ""}, None),
        "offset-negative": ({"offset": "-1"}, None),
        "offset-2**63": ({"offset": str(2**63)}, None),
        "has_power-word": ({"has_power": "maybe"}, None),
        "status-unknown": ({"status": "BROKEN"}, None),
        "available_only-2": ({"available_only": "2"}, None),
        "branch-201-chars": ({"branch": "b" * 201}, None),
        "start-without-end": ({"start_time": START}, "invalid_interval"),
        "end-before-start": ({"start_time": END, "end_time": START}, "invalid_interval"),
        "start-without-offset": ({"start_time": "2026-12-01T10:00:00", "end_time": END}, None),
        "start-year-0": ({"start_time": "0000-12-01T10:00:00Z", "end_time": END}, None),
        "end-year-10000": ({"start_time": START, "end_time": "10000-12-01T10:00:00Z"}, None),
        "start-nan": ({"start_time": "NaN", "end_time": END}, None),
    }
    return [
        pytest.param(Probe("GET", "/seats", params=params, content_type=None, code=code), id=name)
        for name, (params, code) in queries.items()
    ] + [
        pytest.param(
            Probe("GET", "/seats", params={"branch": "Main\u0000"}, content_type=None, status=None),
            id="branch-nul",
        )
    ]


@dataclass(frozen=True)
class Callers:
    student: Student
    admin: Student


@pytest.fixture
async def callers(db: asyncpg.Connection) -> Callers:
    branch = await add_branch(db, "Main")
    assert await add_seat(db, branch, "A1") == SEAT
    student = await add_student(db, "S1000001")
    admin = await add_student(db, "A0000001", role=Role.ADMIN)
    return Callers(student, admin)


@pytest.fixture
async def api(make_client: ClientFactory) -> httpx.AsyncClient:
    # A high limit: the probes fail many logins from one address, and must reach the parser.
    return await make_client(clock=FrozenClock(NOW), LOGIN_RATE_LIMIT=10_000)


async def send(api: httpx.AsyncClient, probe: Probe, callers: Callers) -> httpx.Response:
    caller = callers.admin if probe.path.startswith("/admin/") else callers.student
    headers = {**caller.headers, **(probe.headers or {})}
    if probe.content_type is not None:
        headers["Content-Type"] = probe.content_type
    return await api.request(
        probe.method, probe.path, content=probe.content, params=probe.params, headers=headers
    )


def assert_refused(response: httpx.Response, probe: Probe) -> None:
    assert response.status_code < 500, response.text
    if probe.status is None:
        assert 400 <= response.status_code < 500, response.text
    else:
        assert response.status_code == probe.status, response.text
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    assert isinstance(body, dict), body
    assert body["detail"], body
    if probe.code is not None:
        assert body["code"] == probe.code, body
    elif probe.status == 422:
        assert isinstance(body["detail"], list), body  # FastAPI's validation shape


@pytest.mark.parametrize(
    "probe", [*whole_body_probes(), *field_probes(), *path_id_probes(), *seat_query_probes()]
)
async def test_bad_input_is_refused_with_a_json_4xx(
    api: httpx.AsyncClient, callers: Callers, probe: Probe
) -> None:
    assert_refused(await send(api, probe, callers), probe)


async def test_a_body_that_is_not_utf8_is_a_422_like_broken_json(
    api: httpx.AsyncClient, callers: Callers
) -> None:
    # JSON is UTF-8 (RFC 8259, section 8.1): bytes that are not are malformed input, which
    # api.md answers with FastAPI's 422, as it does a broken document.
    probe = body_probe("register", b'{"student_id": "\xff\xfe", "name": "A", "password": "x"}')
    assert_refused(await send(api, probe, callers), probe)


EXTREME_TIMES = {
    "year-1-east-of-utc": ("0001-01-01T00:00:00+14:00", "0001-01-01T01:00:00+14:00"),
    "year-9999-west-of-utc": ("9999-12-31T22:00:00-14:00", "9999-12-31T23:00:00-14:00"),
    "all-of-time": ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
}
INTERVAL_QUERIES = ["/seats", f"/seats/{SEAT}/availability", "/admin/stats", "/admin/reservations"]


@pytest.mark.parametrize("path", INTERVAL_QUERIES)
@pytest.mark.parametrize(("start", "end"), EXTREME_TIMES.values(), ids=EXTREME_TIMES.keys())
async def test_an_interval_at_the_ends_of_the_calendar_is_answered_without_a_5xx(
    api: httpx.AsyncClient, callers: Callers, path: str, start: str, end: str
) -> None:
    # Well-formed times that Python holds, but not once moved to UTC or widened: the
    # contract names no limit, so any answer but a 5xx (an empty one, or a 422).
    probe = Probe("GET", path, params={"start_time": start, "end_time": end}, content_type=None)
    response = await send(api, probe, callers)
    assert response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("query", ["date=0001-01-01", "date=9999-12-31"])
async def test_a_seat_day_at_the_ends_of_the_calendar_is_answered_without_a_5xx(
    api: httpx.AsyncClient, callers: Callers, query: str
) -> None:
    response = await api.get(f"/seats/{SEAT}?{query}")
    assert response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"


async def test_a_query_that_is_not_utf8_finds_nothing_rather_than_failing(
    api: httpx.AsyncClient, callers: Callers
) -> None:
    response = await api.get("/seats?branch=%ff%fe&area=%c0%80")
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "total": 0}


async def test_unknown_body_fields_are_ignored_and_never_trusted(
    api: httpx.AsyncClient, db: asyncpg.Connection, callers: Callers
) -> None:
    other = await add_student(db, "S1000002")
    account = {**REGISTER, "role": "admin", "id": 1, "created_at": "2000-01-01T00:00:00Z"}
    registered = await api.post("/auth/register", json=account)
    assert registered.status_code == 201, registered.text
    assert registered.json()["role"] == "student"
    assert registered.json()["id"] != 1
    assert registered.json()["created_at"] != "2000-01-01T00:00:00Z"
    booking = {**BOOKING, "user_id": other.id, "status": "CHECKED_IN", "id": 1}
    booked = await api.post("/reservations", json=booking, headers=callers.student.headers)
    assert booked.status_code == 201, booked.text
    assert booked.json()["user_id"] == callers.student.id
    assert booked.json()["status"] == "CONFIRMED"


async def test_any_unicode_text_is_kept_exactly(client: httpx.AsyncClient) -> None:
    # On the real clock: a token the app mints at a frozen future time is not valid yet.
    name = "Zoë Ångström 李小龍 🦄 \u202eevil\u202c e\u0301 \U0001f469\u200d\U0001f52c"
    password = "pässwörd 🔑"
    account = {"student_id": "S2000009", "name": name, "password": password}
    registered = await client.post("/auth/register", json=account)
    assert registered.status_code == 201, registered.text
    assert registered.json()["name"] == name
    login = await client.post("/auth/login", json={"student_id": "S2000009", "password": password})
    assert login.status_code == 200, login.text
    me = await client.get("/auth/me", headers=bearer(login.json()["access_token"]))
    assert me.json()["name"] == name


LISTINGS_AT_THE_LIMIT = [
    f"/seats?offset={INT64_MAX}&limit=500",
    f"/reservations?scope=all&offset={INT64_MAX}",
    f"/waitlist?offset={INT64_MAX}",
    f"/notifications?offset={INT64_MAX}",
    f"/admin/reservations?seat_id={INT64_MAX}&user_id={INT64_MAX}&offset={INT64_MAX}",
    f"/admin/audit?offset={INT64_MAX}",
]


@pytest.mark.parametrize("path", LISTINGS_AT_THE_LIMIT)
async def test_a_listing_past_the_largest_offset_or_id_is_empty(
    api: httpx.AsyncClient, callers: Callers, path: str
) -> None:
    caller = callers.admin if path.startswith("/admin/") else callers.student
    response = await api.get(path, headers=caller.headers)
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []
