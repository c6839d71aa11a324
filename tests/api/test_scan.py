"""Seat codes (api.md v2, "Reservations: extend, scan, suggestions"): the code formula,
``POST /seats/{id}/scan`` on a frozen clock (check-in, walk-in, conflicts), and 404 for a
wrong code exactly as for an unknown seat."""

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ClientFactory
from tests.factories import (
    DAY,
    HOUR,
    MINUTE,
    RULES,
    SECOND,
    TEST_JWT_SECRET,
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    assert_error,
    at,
    iso,
    reservation_row,
    reservation_status,
)

NOW = at(8)  # Dec 1, 08:00 UTC
SECRET = "seat-code-secret-for-tests-" + "y" * 20


def expected_code(secret: str, seat_id: int) -> str:
    """The contract's formula, computed here without the app's code."""
    mac = hmac.new(secret.encode(), f"seat:{seat_id}".encode(), hashlib.sha256)  # UTF-8
    return base64.b32encode(mac.digest()).decode("ascii").rstrip("=")[:10]


def k_of(seat_id: int) -> str:
    return expected_code(SECRET, seat_id)


@dataclass(frozen=True)
class Library:
    branch: int
    a1: int
    a2: int
    maintenance: int
    closed: int


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    return await make_client(clock=clock, SEAT_CODE_SECRET=SECRET, **RULES)


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    main = await add_branch(db, "Main")
    return Library(
        branch=main,
        a1=await add_seat(db, main, "A1"),
        a2=await add_seat(db, main, "A2"),
        maintenance=await add_seat(db, main, "B1", status="MAINTENANCE"),
        closed=await add_seat(db, main, "B2", status="CLOSED"),
    )


async def scan(
    api: httpx.AsyncClient, student: Student, seat_id: int, k: str | None = None
) -> httpx.Response:
    body = {"k": k_of(seat_id) if k is None else k}
    return await api.post(f"/seats/{seat_id}/scan", json=body, headers=student.headers)


def scanned(response: httpx.Response, status: int, action: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["action"] == action
    reservation: dict[str, Any] = body["reservation"]
    return reservation


# The code


async def test_the_code_is_the_documented_hmac_and_matches_in_any_case(
    api: httpx.AsyncClient, library: Library, alice: Student, admin: Student
) -> None:
    response = await api.get(f"/admin/seats/{library.a1}/code", headers=admin.headers)
    assert response.status_code == 200, response.text
    k = expected_code(SECRET, library.a1)
    assert len(k) == 10 and k == k.upper()
    assert response.json() == {
        "seat_id": library.a1,
        "k": k,
        "url": f"http://testserver/s/{library.a1}?k={k}",
    }
    walk_in = scanned(await scan(api, alice, library.a1, k.lower()), 201, "walk_in")
    assert walk_in["seat_id"] == library.a1


async def test_the_default_secret_is_derived_from_jwt_secret_and_is_not_it(
    make_client: ClientFactory, library: Library, admin: Student
) -> None:
    api = await make_client()  # no SEAT_CODE_SECRET
    derived = hmac.new(TEST_JWT_SECRET.encode(), b"dlsms seat codes", hashlib.sha256).hexdigest()
    response = await api.get(f"/admin/seats/{library.a1}/code", headers=admin.headers)
    assert response.json()["k"] == expected_code(derived, library.a1)
    assert response.json()["k"] != expected_code(TEST_JWT_SECRET, library.a1)


async def test_a_wrong_or_missing_code_answers_like_an_unknown_seat(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    unknown = 999_999
    answers = [
        await scan(api, alice, unknown),  # the right code of a seat that doesn't exist
        await scan(api, alice, library.a1, "A" * 10),
        await scan(api, alice, library.a1, k_of(library.a2)),  # another seat's code
        await scan(api, alice, library.a1, k_of(library.a1)[:9]),
        await scan(api, alice, library.a1, k_of(library.a1) + "A"),
        await scan(api, alice, library.a1, ""),
        await scan(api, alice, library.a1, "é" * 10),
        await api.post(f"/seats/{library.a1}/scan", json={}, headers=alice.headers),
        await api.post(f"/seats/{library.a1}/scan", json={"k": None}, headers=alice.headers),
        await api.post(f"/seats/{library.a1}/scan", headers=alice.headers),  # no body
    ]
    bodies = [assert_error(response, 404, "not_found") for response in answers]
    assert all(body == bodies[0] for body in bodies), bodies
    # A wrong code on a seat under maintenance says nothing about the seat either.
    assert (await scan(api, alice, library.maintenance, "A" * 10)).json() == bodies[0]


async def test_scanning_needs_a_token(api: httpx.AsyncClient, library: Library) -> None:
    response = await api.post(f"/seats/{library.a1}/scan", json={"k": k_of(library.a1)})
    assert_error(response, 401, "not_authenticated")


# Checking in


async def test_scan_checks_in_own_reservation_whose_window_is_open(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    rid = await add_reservation(
        db, user_id=alice.id, seat_id=library.a1, start=NOW + 10 * MINUTE, end=NOW + HOUR
    )
    reservation = scanned(await scan(api, alice, library.a1), 200, "checked_in")
    assert (reservation["id"], reservation["status"]) == (rid, "CHECKED_IN")
    assert reservation["checked_in_at"] == iso(NOW)
    # The same scan again (a reload, a second tap) answers the same, changing nothing.
    again = scanned(await scan(api, alice, library.a1), 200, "checked_in")
    assert again == reservation
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1


async def test_scan_before_the_window_opens_walks_in_until_own_booking_starts(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
) -> None:
    # Alice's own booking at 09:00 (window opens 08:45). At 08:00 the seat is free: the
    # walk-in runs up to her booking (half-open, so no overlap with it) and leaves it be.
    later = await add_reservation(
        db, user_id=alice.id, seat_id=library.a1, start=NOW + HOUR, end=NOW + 2 * HOUR
    )
    walk_in = scanned(await scan(api, alice, library.a1), 201, "walk_in")
    assert (walk_in["start_time"], walk_in["end_time"]) == (iso(NOW), iso(NOW + HOUR))
    assert walk_in["status"] == "CHECKED_IN"
    assert await reservation_status(db, later) == "CONFIRMED"
    # Once its window opens, a scan checks in the booking, not the walk-in.
    clock.set(NOW + 50 * MINUTE)
    checked = scanned(await scan(api, alice, library.a1), 200, "checked_in")
    assert (checked["id"], checked["status"]) == (later, "CHECKED_IN")


async def test_scan_after_the_check_in_deadline_is_a_conflict_with_free_at(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    # Not yet swept to NO_SHOW: the reservation still holds the seat until it ends.
    await add_reservation(
        db, user_id=alice.id, seat_id=library.a1, start=NOW - 30 * MINUTE, end=NOW + HOUR
    )
    body = assert_error(await scan(api, alice, library.a1), 409, "seat_conflict")
    assert body["free_at"] == iso(NOW + HOUR)


# Walking in


async def test_walk_in_lasts_max_reservation_hours_when_nothing_follows(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    walk_in = scanned(await scan(api, alice, library.a1), 201, "walk_in")
    assert (walk_in["start_time"], walk_in["end_time"]) == (iso(NOW), iso(NOW + 4 * HOUR))
    assert (walk_in["status"], walk_in["checked_in_at"]) == ("CHECKED_IN", iso(NOW))
    assert walk_in["user_id"] == alice.id
    row = await reservation_row(db, walk_in["id"])
    assert (row["status"], row["checked_in_at"]) == ("CHECKED_IN", NOW)


async def test_walk_in_ends_when_the_seats_next_reservation_starts(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
) -> None:
    await add_reservation(
        db, user_id=bob.id, seat_id=library.a1, start=NOW + 90 * MINUTE, end=NOW + 3 * HOUR
    )
    # A cancelled one earlier does not count.
    await add_reservation(
        db,
        user_id=bob.id,
        seat_id=library.a1,
        start=NOW + HOUR,
        end=NOW + 80 * MINUTE,
        status="CANCELLED",
    )
    walk_in = scanned(await scan(api, alice, library.a1), 201, "walk_in")
    assert walk_in["end_time"] == iso(NOW + 90 * MINUTE)


async def test_walk_in_overlapping_own_reservation_elsewhere_is_user_overlap(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    await add_reservation(
        db, user_id=alice.id, seat_id=library.a2, start=NOW + 2 * HOUR, end=NOW + 3 * HOUR
    )
    assert_error(await scan(api, alice, library.a1), 409, "user_overlap")
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1


async def test_suspended_student_cannot_walk_in(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    for days in (1, 2, 3):
        start = NOW - days * DAY
        await add_reservation(
            db,
            user_id=alice.id,
            seat_id=library.a2,
            start=start,
            end=start + HOUR,
            status="NO_SHOW",
        )
    body = assert_error(await scan(api, alice, library.a1), 403, "suspended")
    assert body["suspended_until"] == iso(NOW - DAY + 7 * DAY)
    assert await db.fetchval("SELECT count(*) FROM reservations WHERE status <> 'NO_SHOW'") == 0


async def test_walk_in_follows_max_reservation_hours_setting(
    make_client: ClientFactory, clock: FrozenClock, library: Library, alice: Student
) -> None:
    api = await make_client(clock=clock, SEAT_CODE_SECRET=SECRET, MAX_RESERVATION_HOURS=1.5)
    walk_in = scanned(await scan(api, alice, library.a1), 201, "walk_in")
    assert walk_in["end_time"] == iso(NOW + 90 * MINUTE)


# Refusals


@pytest.mark.parametrize("which", ["maintenance", "closed"])
async def test_a_seat_not_active_is_unavailable(
    api: httpx.AsyncClient, library: Library, alice: Student, which: str
) -> None:
    assert_error(await scan(api, alice, getattr(library, which)), 409, "seat_unavailable")


async def test_a_taken_seat_is_a_conflict_saying_when_it_frees_up(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student, bob: Student
) -> None:
    # Back to back: the seat frees up at the end of the second one, not the first.
    await add_reservation(
        db,
        user_id=bob.id,
        seat_id=library.a1,
        start=NOW - HOUR,
        end=NOW + HOUR,
        status="CHECKED_IN",
    )
    await add_reservation(
        db, user_id=bob.id, seat_id=library.a1, start=NOW + HOUR, end=NOW + 2 * HOUR
    )
    await add_reservation(
        db, user_id=bob.id, seat_id=library.a1, start=NOW + 3 * HOUR, end=NOW + 4 * HOUR
    )
    body = assert_error(await scan(api, alice, library.a1), 409, "seat_conflict")
    assert body["free_at"] == iso(NOW + 2 * HOUR)
    assert await db.fetchval("SELECT count(*) FROM reservations WHERE user_id = $1", alice.id) == 0


async def test_free_at_is_null_when_the_seat_stays_taken_past_the_branch_day(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    alice: Student,
    bob: Student,
    carol: Student,
    dave: Student,
) -> None:
    # Berlin is UTC+1 in December: its day of Dec 1 ends at 23:00 UTC.
    berlin = await add_branch(db, "Berlin", "Europe/Berlin")
    taken_late, taken_past = await add_seat(db, berlin, "L1"), await add_seat(db, berlin, "L2")
    await add_reservation(
        db,
        user_id=carol.id,
        seat_id=taken_late,
        start=NOW - HOUR,
        end=at(22, 30),
        status="CHECKED_IN",
    )
    await add_reservation(
        db, user_id=bob.id, seat_id=taken_past, start=at(23) - 2 * HOUR, end=at(23, 30)
    )
    await add_reservation(
        db, user_id=alice.id, seat_id=taken_past, start=NOW - HOUR, end=at(21), status="CHECKED_IN"
    )
    late = assert_error(await scan(api, dave, taken_late), 409, "seat_conflict")
    assert late["free_at"] == iso(at(22, 30))
    past = assert_error(await scan(api, dave, taken_past), 409, "seat_conflict")
    assert past["free_at"] is None


# Staff: codes, QR codes, the branch sheet


async def test_students_cannot_read_codes(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    for path in (
        f"/admin/seats/{library.a1}/code",
        f"/admin/seats/{library.a1}/qr.svg",
        "/admin/branches/Main/codes",
    ):
        assert_error(await api.get(path, headers=alice.headers), 403, "forbidden")
        assert_error(await api.get(path), 401, "not_authenticated")


async def test_unknown_seat_or_branch_has_no_code(api: httpx.AsyncClient, admin: Student) -> None:
    for path in ("/admin/seats/999/code", "/admin/seats/999/qr.svg", "/admin/branches/Nope/codes"):
        assert_error(await api.get(path, headers=admin.headers), 404, "not_found")


async def test_qr_code_is_an_svg_image(
    api: httpx.AsyncClient, library: Library, admin: Student
) -> None:
    response = await api.get(f"/admin/seats/{library.a1}/qr.svg", headers=admin.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert "private" in response.headers["cache-control"]
    assert response.text.startswith("<svg")
    root = ET.fromstring(response.content)  # noqa: S314 (our own server's answer)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    _, _, width, height = root.attrib["viewBox"].split()
    # A version-2+ QR code (25+ modules) with its 4-module quiet zone on each side, square.
    assert width == height and int(width) >= 25 + 8
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert paths and all(p.attrib["d"].startswith("M") for p in paths)


async def test_url_uses_public_url_when_set(
    make_client: ClientFactory, library: Library, admin: Student
) -> None:
    api = await make_client(SEAT_CODE_SECRET=SECRET, PUBLIC_URL="https://seats.example.edu/lib/")
    response = await api.get(f"/admin/seats/{library.a1}/code", headers=admin.headers)
    k = k_of(library.a1)
    assert response.json()["url"] == f"https://seats.example.edu/lib/s/{library.a1}?k={k}"


async def test_url_follows_the_request_host_and_trusted_proxy_scheme(
    api: httpx.AsyncClient, library: Library, admin: Student
) -> None:
    path = f"/admin/seats/{library.a1}/code"
    k = k_of(library.a1)
    direct = await api.get(path, headers={**admin.headers, "Host": "lib.example:8443"})
    assert direct.json()["url"] == f"http://lib.example:8443/s/{library.a1}?k={k}"
    # The test client's peer is 127.0.0.1, trusted by default (FORWARDED_ALLOW_IPS).
    proxied = await api.get(
        path, headers={**admin.headers, "Host": "lib.example", "X-Forwarded-Proto": "https"}
    )
    assert proxied.json()["url"] == f"https://lib.example/s/{library.a1}?k={k}"


async def test_branch_sheet_lists_every_seat_with_code_and_url(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student
) -> None:
    other = await add_branch(db, "Other")
    await add_seat(db, other, "Z9")
    upstairs = await add_seat(db, library.branch, "C1", area="Group")
    response = await api.get("/admin/branches/Main/codes", headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    order = [upstairs, library.a1, library.a2, library.maintenance, library.closed]
    assert body["total"] == 5
    assert [item["seat_id"] for item in body["items"]] == order  # by area, then label
    for item in body["items"]:
        k = k_of(item["seat_id"])
        assert item["k"] == k and item["url"] == f"http://testserver/s/{item['seat_id']}?k={k}"
    assert body["items"][0] | {"k": "", "url": ""} == {
        "seat_id": upstairs,
        "label": "C1",
        "area": "Group",
        "k": "",
        "url": "",
    }
    page = await api.get("/admin/branches/Main/codes?limit=2&offset=4", headers=admin.headers)
    assert [item["seat_id"] for item in page.json()["items"]] == order[4:]
    beyond = await api.get("/admin/branches/Main/codes?offset=10", headers=admin.headers)
    assert beyond.json() == {"items": [], "total": 5}


async def test_openapi_documents_the_scan_answers(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    scan_op = schema["paths"]["/seats/{seat_id}/scan"]["post"]
    assert {"200", "201", "401", "403", "404", "409", "422"} <= set(scan_op["responses"])
    conflict = scan_op["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
    assert "free_at" in schema["components"]["schemas"][conflict.rsplit("/", 1)[1]]["properties"]
    qr = schema["paths"]["/admin/seats/{seat_id}/qr.svg"]["get"]["responses"]["200"]
    assert "image/svg+xml" in qr["content"]
    assert "/admin/branches/{name}/codes" in schema["paths"]


async def test_a_booking_starting_within_a_minute_takes_the_seat_now(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    carol: Student,
) -> None:
    # A walk-in of under a minute is no walk-in (and each request's clock read differs by
    # a few milliseconds from a concurrent one's: see the races in tests/concurrency).
    await add_reservation(
        db, user_id=bob.id, seat_id=library.a1, start=NOW + 30 * SECOND, end=NOW + HOUR
    )
    body = assert_error(await scan(api, alice, library.a1), 409, "seat_conflict")
    assert body["free_at"] == iso(NOW + HOUR)
    await add_reservation(
        db, user_id=carol.id, seat_id=library.a2, start=NOW + MINUTE, end=NOW + HOUR
    )
    walk_in = scanned(await scan(api, alice, library.a2), 201, "walk_in")
    assert walk_in["end_time"] == iso(NOW + MINUTE)
