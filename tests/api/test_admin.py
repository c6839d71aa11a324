"""Administration (api.md, "Administration"): branches, seats, the closing cascade, anyone's
reservations, the desk check-in and the audit log, through the HTTP API on a frozen clock.
Statistics are in test_stats.py."""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.models import Role
from app.services import waitlist as waitlist_service
from tests.conftest import ClientFactory, bearer
from tests.factories import (
    CLAIM,
    EARLY,
    GRACE,
    MINUTE,
    RESERVATION_FIELDS,
    RULES,
    SECOND,
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    assert_error,
    assert_validation_error,
    at,
    eventually,
    iso,
    joined,
    my_entries,
    my_notifications,
    reservation_row,
    reservation_status,
    reserve,
)

# Dec 1, 09:30 UTC.
NOW = at(9, 30)

SEAT_FIELDS = {"id", "branch", "area", "label", "has_power", "has_monitor", "status", "available"}
AUDIT_FIELDS = {"id", "actor_id", "action", "entity", "entity_id", "before", "after", "created_at"}


@dataclass(frozen=True)
class Library:
    main: int
    science: int
    a1: int
    a2: int
    s1: int


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    return await make_client(clock=clock, **RULES)


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    main = await add_branch(db, "Main")
    science = await add_branch(db, "Science", "Europe/Berlin")
    return Library(
        main=main,
        science=science,
        a1=await add_seat(db, main, "A1", area="Quiet"),
        a2=await add_seat(db, main, "A2", area="Quiet", power=True),
        s1=await add_seat(db, science, "S1", area="Lab", monitor=True),
    )


def seat_ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [seat["id"] for seat in response.json()["items"]]


async def audit_rows(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM audit_log")
    return count


async def seat_row(db: asyncpg.Connection, seat_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT s.area, s.label, s.has_power, s.has_monitor, s.status, b.name AS branch "
        "FROM seats s JOIN branches b ON b.id = s.branch_id WHERE s.id = $1",
        seat_id,
    )
    assert row is not None
    return dict(row)


# Who may call what

# Each admin route with a request an admin would get a 2xx for (see the fixture below).
ADMIN_ROUTES = [
    ("POST", "/admin/branches", {"name": "Annex"}),
    ("POST", "/admin/seats", {"branch": "Main", "area": "Quiet", "label": "Z9"}),
    ("PATCH", "/admin/seats/{seat_id}", {"status": "CLOSED"}),
    ("GET", "/admin/reservations", None),
    ("POST", "/admin/reservations/{reservation_id}/checkin", None),
    ("GET", "/admin/stats?start_time=2026-12-01T00:00:00Z&end_time=2026-12-02T00:00:00Z", None),
    ("GET", "/admin/audit", None),
    ("GET", "/admin/users?student_id=S0000001", None),
]
ROUTE_IDS = [f"{method} {path.split('?')[0]}" for method, path, _ in ADMIN_ROUTES]


@pytest.fixture
async def desk_booking(db: asyncpg.Connection, library: Library, alice: Student) -> int:
    """Alice's booking on A1 at 09:40, inside its check-in window at NOW."""
    return await add_reservation(
        db, user_id=alice.id, seat_id=library.a1, start=at(9, 40), end=at(11)
    )


async def call(
    api: httpx.AsyncClient,
    route: tuple[str, str, dict[str, Any] | None],
    headers: dict[str, str],
    **ids: int,
) -> httpx.Response:
    method, path, body = route
    return await api.request(method, path.format(**ids), json=body, headers=headers)


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=ROUTE_IDS)
async def test_a_student_is_forbidden_on_every_admin_route_and_changes_nothing(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    admin: Student,
    desk_booking: int,
    route: tuple[str, str, dict[str, Any] | None],
) -> None:
    ids = {"seat_id": library.a2, "reservation_id": desk_booking}

    response = await call(api, route, alice.headers, **ids)

    assert_error(response, 403, "forbidden")
    assert await db.fetchval("SELECT count(*) FROM branches") == 2
    assert await db.fetchval("SELECT count(*) FROM seats") == 3
    assert (await seat_row(db, library.a2))["status"] == "ACTIVE"
    assert await reservation_status(db, desk_booking) == "CONFIRMED"
    assert await audit_rows(db) == 0
    # The very same request is one an admin is allowed to make.
    allowed = await call(api, route, admin.headers, **ids)
    assert allowed.status_code in (200, 201), allowed.text


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=ROUTE_IDS)
async def test_every_admin_route_needs_a_valid_token(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    desk_booking: int,
    route: tuple[str, str, dict[str, Any] | None],
) -> None:
    ids = {"seat_id": library.a2, "reservation_id": desk_booking}

    missing = await call(api, route, {}, **ids)
    garbage = await call(api, route, bearer("not.a.jwt"), **ids)

    assert_error(missing, 401, "not_authenticated")
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert_error(garbage, 401, "invalid_token")
    assert await audit_rows(db) == 0


# POST /admin/branches


async def test_create_branch_answers_the_branch_in_utc_by_default(
    api: httpx.AsyncClient, admin: Student
) -> None:
    response = await api.post("/admin/branches", json={"name": "Annex"}, headers=admin.headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "name", "timezone", "created_at"}
    assert body["name"] == "Annex"
    assert body["timezone"] == "UTC"
    assert body["created_at"] == iso(NOW)
    branches = (await api.get("/branches")).json()
    assert [b["name"] for b in branches] == ["Annex"]
    assert branches[0]["total_seats"] == 0


async def test_create_branch_keeps_the_given_iana_time_zone(
    api: httpx.AsyncClient, db: asyncpg.Connection, admin: Student
) -> None:
    response = await api.post(
        "/admin/branches",
        json={"name": "Berlin Annex", "timezone": "Europe/Berlin"},
        headers=admin.headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["timezone"] == "Europe/Berlin"
    stored = await db.fetchval("SELECT timezone FROM branches WHERE id = $1", response.json()["id"])
    assert stored == "Europe/Berlin"


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "", "UTC ", "Europe/../UTC", 7])
async def test_create_branch_with_a_bad_time_zone_is_refused(
    api: httpx.AsyncClient, db: asyncpg.Connection, admin: Student, timezone: object
) -> None:
    response = await api.post(
        "/admin/branches", json={"name": "Annex", "timezone": timezone}, headers=admin.headers
    )

    assert_validation_error(response, "body", "timezone")
    assert await db.fetchval("SELECT count(*) FROM branches") == 0


@pytest.mark.parametrize("name", ["Main", "  Main  "])
async def test_create_branch_with_a_taken_name_is_already_exists(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student, name: str
) -> None:
    response = await api.post("/admin/branches", json={"name": name}, headers=admin.headers)

    assert_error(response, 409, "already_exists")
    assert await db.fetchval("SELECT count(*) FROM branches") == 2


async def test_create_branch_name_is_limited_to_200_characters(
    api: httpx.AsyncClient, db: asyncpg.Connection, admin: Student
) -> None:
    too_long = await api.post("/admin/branches", json={"name": "B" * 201}, headers=admin.headers)
    empty = await api.post("/admin/branches", json={"name": "   "}, headers=admin.headers)
    longest = await api.post("/admin/branches", json={"name": "B" * 200}, headers=admin.headers)

    assert_validation_error(too_long, "body", "name")
    assert_validation_error(empty, "body", "name")
    assert longest.status_code == 201, longest.text
    assert await db.fetchval("SELECT count(*) FROM branches") == 1


# POST /admin/seats


async def test_create_seat_answers_an_active_available_seat_listed_with_the_others(
    api: httpx.AsyncClient, library: Library, admin: Student
) -> None:
    response = await api.post(
        "/admin/seats",
        json={
            "branch": "Main",
            "area": "Computers",
            "label": "C1",
            "has_power": True,
            "has_monitor": False,
        },
        headers=admin.headers,
    )

    assert response.status_code == 201, response.text
    seat = response.json()
    assert set(seat) == SEAT_FIELDS
    assert seat == {
        "id": seat["id"],
        "branch": "Main",
        "area": "Computers",
        "label": "C1",
        "has_power": True,
        "has_monitor": False,
        "status": "ACTIVE",
        "available": True,
    }
    listed = (await api.get("/seats", params={"branch": "Main", "available_only": "true"})).json()
    assert {**seat, "state": "free"} in listed["items"]
    assert listed["total"] == 3
    detail = await api.get(f"/seats/{seat['id']}")
    assert detail.status_code == 200
    assert {k: detail.json()[k] for k in SEAT_FIELDS} == seat


async def test_create_seat_without_equipment_flags_has_neither(
    api: httpx.AsyncClient, library: Library, admin: Student
) -> None:
    response = await api.post(
        "/admin/seats",
        json={"branch": "Science", "area": "Lab", "label": "S2"},
        headers=admin.headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["has_power"] is False
    assert response.json()["has_monitor"] is False


async def test_create_seat_in_an_unknown_branch_is_not_found(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student
) -> None:
    response = await api.post(
        "/admin/seats",
        json={"branch": "Nowhere", "area": "Quiet", "label": "N1"},
        headers=admin.headers,
    )

    assert_error(response, 404, "not_found")
    assert await db.fetchval("SELECT count(*) FROM seats") == 3


@pytest.mark.parametrize("label", ["A1", " A1 "])
async def test_a_label_is_unique_within_its_branch_only(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student, label: str
) -> None:
    same_branch = await api.post(
        "/admin/seats",
        json={"branch": "Main", "area": "Other", "label": label},
        headers=admin.headers,
    )
    other_branch = await api.post(
        "/admin/seats",
        json={"branch": "Science", "area": "Quiet", "label": label},
        headers=admin.headers,
    )

    assert_error(same_branch, 409, "already_exists")
    assert other_branch.status_code == 201, other_branch.text
    assert other_branch.json()["label"] == "A1"
    assert await db.fetchval("SELECT count(*) FROM seats WHERE label = 'A1'") == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [("label", "L" * 51), ("area", "A" * 101), ("label", " ")],
)
async def test_create_seat_with_overlong_or_empty_text_is_refused(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    admin: Student,
    field: str,
    value: str,
) -> None:
    body = {"branch": "Main", "area": "Quiet", "label": "Z1", field: value}

    response = await api.post("/admin/seats", json=body, headers=admin.headers)

    assert_validation_error(response, "body", field)
    assert await db.fetchval("SELECT count(*) FROM seats") == 3


async def test_create_seat_accepts_the_longest_label_and_area(
    api: httpx.AsyncClient, library: Library, admin: Student
) -> None:
    body = {"branch": "Main", "area": "A" * 100, "label": "L" * 50}

    response = await api.post("/admin/seats", json=body, headers=admin.headers)

    assert response.status_code == 201, response.text
    assert response.json()["label"] == "L" * 50


# PATCH /admin/seats/{id}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("area", "Group study"),
        ("label", "A9"),
        ("has_power", True),
        ("has_monitor", True),
        ("status", "MAINTENANCE"),
        ("status", "CLOSED"),
    ],
)
async def test_patch_seat_changes_only_the_given_field(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    admin: Student,
    field: str,
    value: object,
) -> None:
    before = (await api.get(f"/seats/{library.a1}")).json()

    response = await api.patch(
        f"/admin/seats/{library.a1}", json={field: value}, headers=admin.headers
    )

    assert response.status_code == 200, response.text
    expected = {k: before[k] for k in SEAT_FIELDS} | {field: value}
    expected["available"] = expected["status"] == "ACTIVE"
    assert response.json() == expected
    after = (await api.get(f"/seats/{library.a1}")).json()
    assert {k: after[k] for k in SEAT_FIELDS} == expected
    assert await seat_row(db, library.a2) == {
        "area": "Quiet",
        "label": "A2",
        "has_power": True,
        "has_monitor": False,
        "status": "ACTIVE",
        "branch": "Main",
    }


async def test_patch_seat_changes_several_fields_at_once(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student
) -> None:
    response = await api.patch(
        f"/admin/seats/{library.s1}",
        json={"area": "Reading", "label": "R1", "has_power": True, "has_monitor": False},
        headers=admin.headers,
    )

    assert response.status_code == 200, response.text
    assert await seat_row(db, library.s1) == {
        "area": "Reading",
        "label": "R1",
        "has_power": True,
        "has_monitor": False,
        "status": "ACTIVE",
        "branch": "Science",
    }


async def test_patch_an_unknown_seat_is_not_found(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student
) -> None:
    response = await api.patch(
        "/admin/seats/999999", json={"status": "CLOSED"}, headers=admin.headers
    )

    assert_error(response, 404, "not_found")
    assert await audit_rows(db) == 0


async def test_patch_a_malformed_seat_id_is_a_validation_error(
    api: httpx.AsyncClient, library: Library, admin: Student
) -> None:
    for seat_id in ["abc", "0", "-1", str(2**63)]:
        response = await api.patch(
            f"/admin/seats/{seat_id}", json={"status": "CLOSED"}, headers=admin.headers
        )

        assert_validation_error(response, "path", "seat_id")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"branch": "Science"}, ("body", "branch")),
        ({"status": "BROKEN"}, ("body", "status")),
        ({"has_power": "maybe"}, ("body", "has_power")),
        ({"label": "L" * 51}, ("body", "label")),
        ({"area": "A" * 101}, ("body", "area")),
    ],
)
async def test_patch_seat_with_a_bad_body_is_refused_and_changes_nothing(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    admin: Student,
    body: dict[str, Any],
    loc: tuple[str, ...],
) -> None:
    before = await seat_row(db, library.a1)

    response = await api.patch(f"/admin/seats/{library.a1}", json=body, headers=admin.headers)

    assert_validation_error(response, *loc)
    assert await seat_row(db, library.a1) == before


async def test_patch_seat_to_a_label_taken_in_its_branch_is_already_exists(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student
) -> None:
    clash = await api.patch(
        f"/admin/seats/{library.a1}",
        json={"label": "A2", "status": "MAINTENANCE"},
        headers=admin.headers,
    )
    elsewhere = await api.patch(
        f"/admin/seats/{library.s1}", json={"label": "A2"}, headers=admin.headers
    )

    assert_error(clash, 409, "already_exists")
    # Nothing of the refused patch was kept, the status change included.
    assert await seat_row(db, library.a1) == {
        "area": "Quiet",
        "label": "A1",
        "has_power": False,
        "has_monitor": False,
        "status": "ACTIVE",
        "branch": "Main",
    }
    assert elsewhere.status_code == 200, elsewhere.text
    assert elsewhere.json()["label"] == "A2"


# The closing cascade


@dataclass(frozen=True)
class Scene:
    """Seat A1 around NOW (09:30), and one booking on A2:

    A1 [07:30, 09:30) CHECKED_IN   ``ended``     (ended at NOW; the sweep has not run)
    A1 [09:30, 11:00) CHECKED_IN   ``in_use``    (checked in at 09:20)
    A1 [11:00, 12:00) HELD         ``held``      the offer to ``first``'s waitlist entry
    A1 [12:00, 13:00) CONFIRMED    ``later``
    A2 [10:00, 11:00) CONFIRMED    ``elsewhere``
    The A1 queue for [11:00, 12:00): ``first`` (OFFERED), ``second`` (WAITING, position 1).
    """

    seat: int
    other_seat: int
    ended: int
    in_use: int
    held: int
    later: int
    elsewhere: int
    first_entry: int
    second_entry: int
    people: dict[str, Student]


@pytest.fixture
async def scene(api: httpx.AsyncClient, db: asyncpg.Connection, library: Library) -> Scene:
    people = {
        name: await add_student(db, f"S00001{n:02d}")
        for n, name in enumerate(
            ["ended", "in_use", "later", "releaser", "first", "second", "elsewhere"]
        )
    }
    seat = library.a1

    async def add(
        who: str, start: datetime, end: datetime, status: str = "CONFIRMED", **extra: Any
    ) -> int:
        extra.setdefault("seat_id", seat)
        return await add_reservation(
            db, user_id=people[who].id, start=start, end=end, status=status, **extra
        )

    ended = await add("ended", at(7, 30), at(9, 30), "CHECKED_IN")
    in_use = await add("in_use", at(9, 30), at(11), "CHECKED_IN", checked_in_at=at(9, 20))
    released = await add("releaser", at(11), at(12))
    later = await add("later", at(12), at(13))
    elsewhere = await add("elsewhere", at(10), at(11), seat_id=library.a2)
    first = await joined(api, people["first"], seat_id=seat, start=at(11), end=at(12))
    second = await joined(api, people["second"], seat_id=seat, start=at(11), end=at(12))
    # The booker gives the slot up: it is offered to the head of the queue.
    cancelled = await api.delete(f"/reservations/{released}", headers=people["releaser"].headers)
    assert cancelled.status_code == 200, cancelled.text
    offered = (await my_entries(api, people["first"]))[first["id"]]
    assert offered["status"] == "OFFERED"
    assert (await my_entries(api, people["second"]))[second["id"]]["position"] == 1
    return Scene(
        seat=seat,
        other_seat=library.a2,
        ended=ended,
        in_use=in_use,
        held=offered["reservation_id"],
        later=later,
        elsewhere=elsewhere,
        first_entry=first["id"],
        second_entry=second["id"],
        people=people,
    )


async def close_seat(
    api: httpx.AsyncClient, admin: Student, seat_id: int, status: str
) -> dict[str, Any]:
    response = await api.patch(
        f"/admin/seats/{seat_id}", json={"status": status}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("status", ["MAINTENANCE", "CLOSED"])
async def test_closing_a_seat_cancels_its_reservations_that_have_not_ended(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student, status: str
) -> None:
    seat = await close_seat(api, admin, scene.seat, status)

    assert seat["status"] == status
    assert seat["available"] is False
    reasons = set()
    for reservation_id in (scene.in_use, scene.held, scene.later):
        row = await reservation_row(db, reservation_id)
        assert row["status"] == "CANCELLED", reservation_id
        assert row["cancelled_at"] == NOW
        assert row["cancel_reason"]
        reasons.add(row["cancel_reason"])
    assert len(reasons) == 1
    # The one checked in keeps its check-in time (it did start).
    assert (await reservation_row(db, scene.in_use))["checked_in_at"] == at(9, 20)
    # Ended at NOW (half-open): not the seat's any more; and another seat's booking.
    assert await reservation_status(db, scene.ended) == "CHECKED_IN"
    assert await reservation_status(db, scene.elsewhere) == "CONFIRMED"
    listed = await api.get(
        "/admin/reservations", params={"seat_id": scene.seat}, headers=admin.headers
    )
    statuses = {r["id"]: r["status"] for r in listed.json()["items"]}
    assert statuses[scene.in_use] == statuses[scene.later] == "CANCELLED"
    cancelled = next(r for r in listed.json()["items"] if r["id"] == scene.later)
    assert cancelled["cancel_reason"] in reasons
    assert cancelled["cancelled_at"] == iso(NOW)


async def test_closing_a_seat_ends_a_stay_under_way_at_the_closing_time(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    scene: Scene,
    admin: Student,
    clock: FrozenClock,
) -> None:
    clock.set(at(10))  # half an hour into the checked-in stay [09:30, 11:00)

    await close_seat(api, admin, scene.seat, "MAINTENANCE")

    row = await reservation_row(db, scene.in_use)
    assert (row["status"], row["end_time"]) == ("CANCELLED", at(10))
    assert (await reservation_row(db, scene.later))["end_time"] == at(13)  # not begun: kept


async def test_an_empty_patch_changes_nothing_and_writes_no_audit_row(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student
) -> None:
    before = await seat_row(db, library.a1)

    response = await api.patch(f"/admin/seats/{library.a1}", json={}, headers=admin.headers)

    assert response.status_code == 200, response.text
    assert response.json()["label"] == before["label"]
    assert response.json()["available"] is True
    assert await seat_row(db, library.a1) == before
    assert await audit_rows(db) == 0


@pytest.mark.parametrize("status", ["MAINTENANCE", "CLOSED"])
async def test_closing_a_seat_tells_each_owner_once_with_the_reason(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student, status: str
) -> None:
    await close_seat(api, admin, scene.seat, status)

    for who, reservation_id in [("in_use", scene.in_use), ("later", scene.later),
                                ("first", scene.held)]:  # fmt: skip
        told = await my_notifications(api, scene.people[who], kind="reservation.cancelled")
        reason = (await reservation_row(db, reservation_id))["cancel_reason"]
        assert [n["data"] for n in told] == [
            {"reservation_id": reservation_id, "seat_id": scene.seat, "reason": reason}
        ], who
        assert told[0]["created_at"] == iso(NOW)
        assert told[0]["read_at"] is None
    for who in ("ended", "releaser", "second", "elsewhere"):
        untold = await my_notifications(api, scene.people[who], kind="reservation.cancelled")
        assert untold == [], who


async def test_closing_a_seat_withdraws_its_offer_and_the_entry_waits_at_its_old_place(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    await close_seat(api, admin, scene.seat, "MAINTENANCE")

    first = (await my_entries(api, scene.people["first"]))[scene.first_entry]
    second = (await my_entries(api, scene.people["second"]))[scene.second_entry]
    assert first["status"] == "WAITING"
    assert first["position"] == 1
    assert first["reservation_id"] is None
    assert first["offer_expires_at"] is None
    assert second["status"] == "WAITING"
    assert second["position"] == 2
    assert await reservation_status(db, scene.held) == "CANCELLED"
    # The withdrawn offer is not offered to anyone else: the seat is closed.
    assert await db.fetchval("SELECT count(*) FROM reservations WHERE status = 'HELD'") == 0


async def test_a_closed_seat_drops_out_of_availability_and_cannot_be_booked(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    await close_seat(api, admin, scene.seat, "CLOSED")
    booker = scene.people["later"]

    free_now = await api.get("/seats", params={"available_only": "true"})
    free_later = await api.get(
        "/seats",
        params={"available_only": "true", "start_time": iso(at(14)), "end_time": iso(at(15))},
    )
    availability = await api.get(
        f"/seats/{scene.seat}/availability",
        params={"start_time": iso(at(14)), "end_time": iso(at(15))},
    )
    booking = await reserve(api, booker, scene.seat, at(14), at(15))
    # Nobody can have it for that time, so waiting for it is allowed (not slot_available).
    waiting = await api.post(
        "/waitlist",
        json={"seat_id": scene.seat, "start_time": iso(at(14)), "end_time": iso(at(15))},
        headers=booker.headers,
    )

    assert scene.seat not in seat_ids(free_now)
    assert scene.other_seat in seat_ids(free_now)
    assert scene.seat not in seat_ids(free_later)
    assert scene.other_seat in seat_ids(free_later)
    assert availability.status_code == 200
    assert availability.json()["available"] is False
    assert_error(booking, 409, "seat_unavailable")
    assert waiting.status_code == 201, waiting.text
    assert waiting.json()["status"] == "WAITING"
    assert (await api.get(f"/seats/{scene.seat}")).json()["status"] == "CLOSED"


async def test_reopening_a_seat_offers_it_to_the_oldest_waiting_entry_and_allows_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    await close_seat(api, admin, scene.seat, "MAINTENANCE")
    first, second = scene.people["first"], scene.people["second"]

    reopened = await close_seat(api, admin, scene.seat, "ACTIVE")

    assert reopened["status"] == "ACTIVE"
    assert reopened["available"] is True  # its next booking starts at 11:00
    entry = (await my_entries(api, first))[scene.first_entry]
    assert entry["status"] == "OFFERED"
    assert entry["offer_expires_at"] == iso(NOW + CLAIM)
    offer = await reservation_row(db, entry["reservation_id"])
    assert entry["reservation_id"] != scene.held
    assert offer["status"] == "HELD"
    assert (offer["user_id"], offer["seat_id"]) == (first.id, scene.seat)
    assert (offer["start_time"], offer["end_time"]) == (at(11), at(12))
    offers = await my_notifications(api, first, kind="waitlist.offer")
    assert offers[0]["data"] == {
        "entry_id": scene.first_entry,
        "reservation_id": entry["reservation_id"],
        "seat_id": scene.seat,
        "start_time": iso(at(11)),
        "end_time": iso(at(12)),
        "offer_expires_at": iso(NOW + CLAIM),
    }
    assert len(offers) == 2  # the first offer, then this one
    waiting = (await my_entries(api, second))[scene.second_entry]
    assert (waiting["status"], waiting["position"]) == ("WAITING", 1)
    assert await my_notifications(api, second, kind="waitlist.offer") == []
    # Bookable again, and the new offer can be claimed.
    rebooked = await reserve(api, scene.people["later"], scene.seat, at(12), at(13))
    assert rebooked.status_code == 201, rebooked.text
    claimed = await api.post(f"/waitlist/{scene.first_entry}/claim", headers=first.headers)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["reservation"]["status"] == "CONFIRMED"


async def test_changing_a_closed_seat_between_maintenance_and_closed_keeps_it_closed(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    await close_seat(api, admin, scene.seat, "MAINTENANCE")

    closed = await close_seat(api, admin, scene.seat, "CLOSED")

    assert (closed["status"], closed["available"]) == ("CLOSED", False)
    assert await db.fetchval("SELECT count(*) FROM reservations WHERE status = 'HELD'") == 0
    # Owners were told once, when the seat first closed.
    told = await my_notifications(api, scene.people["later"], kind="reservation.cancelled")
    assert len(told) == 1


# GET /admin/reservations


@dataclass(frozen=True)
class Bookings:
    alice_early: int  # A1 [08:00, 09:00) COMPLETED
    alice_a2: int  # A2 [10:00, 11:00) CONFIRMED
    bob_a1: int  # A1 [10:30, 12:00) CONFIRMED
    bob_s1: int  # S1 [13:00, 14:00) CANCELLED
    alice_s1: int  # S1 [14:00, 15:00) CONFIRMED


@pytest.fixture
async def bookings(
    db: asyncpg.Connection, library: Library, alice: Student, bob: Student
) -> Bookings:
    async def add(who: Student, seat: int, start: datetime, end: datetime, status: str) -> int:
        return await add_reservation(
            db, user_id=who.id, seat_id=seat, start=start, end=end, status=status
        )

    return Bookings(
        alice_early=await add(alice, library.a1, at(8), at(9), "COMPLETED"),
        alice_a2=await add(alice, library.a2, at(10), at(11), "CONFIRMED"),
        bob_a1=await add(bob, library.a1, at(10, 30), at(12), "CONFIRMED"),
        bob_s1=await add(bob, library.s1, at(13), at(14), "CANCELLED"),
        alice_s1=await add(alice, library.s1, at(14), at(15), "CONFIRMED"),
    )


async def admin_list(
    api: httpx.AsyncClient, admin: Student, params: dict[str, Any]
) -> tuple[list[int], int]:
    response = await api.get("/admin/reservations", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return [r["id"] for r in body["items"]], body["total"]


async def test_admin_lists_every_users_reservations_latest_start_first(
    api: httpx.AsyncClient,
    library: Library,
    bookings: Bookings,
    admin: Student,
    alice: Student,
    bob: Student,
) -> None:
    response = await api.get("/admin/reservations", headers=admin.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    b = bookings
    assert [r["id"] for r in body["items"]] == [
        b.alice_s1, b.bob_s1, b.bob_a1, b.alice_a2, b.alice_early,
    ]  # fmt: skip
    assert body["total"] == 5
    first = body["items"][0]
    assert set(first) >= RESERVATION_FIELDS
    assert first["user_id"] == alice.id
    assert first["seat"] == {"id": library.s1, "branch": "Science", "area": "Lab", "label": "S1"}
    assert (first["start_time"], first["end_time"]) == (iso(at(14)), iso(at(15)))
    assert {r["user_id"] for r in body["items"]} == {alice.id, bob.id}


# (filters, the bookings found in order). Seats and users by name, times as datetimes.
FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"seat": "a1"}, ["bob_a1", "alice_early"]),
    ({"user": "alice"}, ["alice_s1", "alice_a2", "alice_early"]),
    ({"status": "CONFIRMED"}, ["alice_s1", "bob_a1", "alice_a2"]),
    ({"status": "CANCELLED"}, ["bob_s1"]),
    ({"status": "NO_SHOW"}, []),
    ({"user": "alice", "status": "CONFIRMED"}, ["alice_s1", "alice_a2"]),
    ({"seat": "a1", "user": "alice"}, ["alice_early"]),
    # Overlap with [start, end): 09:00-10:30 touches the 08-09 and 10:30-12 ones only at an
    # end, so only the 10-11 one overlaps.
    ({"start_time": at(9), "end_time": at(10, 30)}, ["alice_a2"]),
    ({"start_time": at(8, 30), "end_time": at(13)}, ["bob_a1", "alice_a2", "alice_early"]),
    ({"start_time": at(14, 59), "end_time": at(23)}, ["alice_s1"]),
    ({"start_time": at(15), "end_time": at(16)}, []),
    ({"start_time": at(8), "end_time": at(16), "seat": "s1"}, ["alice_s1", "bob_s1"]),
]


async def test_admin_reservation_filters_combine(
    api: httpx.AsyncClient, library: Library, bookings: Bookings, admin: Student, alice: Student
) -> None:
    for query, expected in FILTER_CASES:
        params: dict[str, Any] = {}
        if "seat" in query:
            params["seat_id"] = getattr(library, query["seat"])
        if "user" in query:
            params["user_id"] = alice.id
        if "status" in query:
            params["status"] = query["status"]
        for key in ("start_time", "end_time"):
            if key in query:
                params[key] = iso(query[key])

        found, total = await admin_list(api, admin, params)

        assert found == [getattr(bookings, name) for name in expected], query
        assert total == len(expected), query


async def test_admin_reservation_filter_by_an_unknown_user_or_seat_finds_nothing(
    api: httpx.AsyncClient, bookings: Bookings, admin: Student
) -> None:
    assert await admin_list(api, admin, {"user_id": 999999}) == ([], 0)
    assert await admin_list(api, admin, {"seat_id": 999999}) == ([], 0)


async def test_admin_reservations_page_with_limit_and_offset(
    api: httpx.AsyncClient, bookings: Bookings, admin: Student
) -> None:
    b = bookings

    assert await admin_list(api, admin, {"limit": 2}) == ([b.alice_s1, b.bob_s1], 5)
    assert await admin_list(api, admin, {"limit": 2, "offset": 2}) == ([b.bob_a1, b.alice_a2], 5)
    assert await admin_list(api, admin, {"limit": 2, "offset": 4}) == ([b.alice_early], 5)
    assert await admin_list(api, admin, {"offset": 10}) == ([], 5)
    assert await admin_list(api, admin, {"limit": 500}) == (
        [b.alice_s1, b.bob_s1, b.bob_a1, b.alice_a2, b.alice_early],
        5,
    )


async def test_admin_reservations_with_half_or_inverted_interval_is_invalid_interval(
    api: httpx.AsyncClient, admin: Student
) -> None:
    for params in [
        {"start_time": iso(at(9))},
        {"end_time": iso(at(10))},
        {"start_time": iso(at(10)), "end_time": iso(at(10))},
        {"start_time": iso(at(11)), "end_time": iso(at(10))},
    ]:
        response = await api.get("/admin/reservations", params=params, headers=admin.headers)

        assert_error(response, 422, "invalid_interval")


async def test_admin_reservations_with_malformed_query_is_a_validation_error(
    api: httpx.AsyncClient, admin: Student
) -> None:
    naive: dict[str, str | int] = {
        "start_time": "2026-12-01T09:00:00",
        "end_time": "2026-12-01T10:00:00Z",
    }
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"status": "LOST"}, "status"),
        ({"seat_id": 0}, "seat_id"),
        ({"user_id": "abc"}, "user_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        (naive, "start_time"),
    ]
    for params, field in cases:
        response = await api.get("/admin/reservations", params=params, headers=admin.headers)

        assert_validation_error(response, "query", field)


# POST /admin/reservations/{id}/checkin


async def test_desk_check_in_checks_in_a_students_reservation(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    admin: Student,
    desk_booking: int,
) -> None:
    response = await api.post(f"/admin/reservations/{desk_booking}/checkin", headers=admin.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= RESERVATION_FIELDS
    assert body["id"] == desk_booking
    assert body["user_id"] == alice.id
    assert body["status"] == "CHECKED_IN"
    assert body["checked_in_at"] == iso(NOW)
    row = await reservation_row(db, desk_booking)
    assert (row["status"], row["checked_in_at"]) == ("CHECKED_IN", NOW)
    own = await api.get(f"/reservations/{desk_booking}", headers=alice.headers)
    assert own.json()["status"] == "CHECKED_IN"


@pytest.mark.parametrize(
    ("start", "allowed"),
    [
        (NOW + EARLY, True),  # the window opens exactly now
        (NOW - GRACE, True),  # the window closes exactly now
        (NOW + EARLY + SECOND, False),
        (NOW - GRACE - SECOND, False),
        (NOW + timedelta(hours=3), False),
    ],
    ids=["opens-now", "closes-now", "not-open-yet", "closed", "hours-ahead"],
)
async def test_desk_check_in_follows_the_check_in_window(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    admin: Student,
    start: datetime,
    allowed: bool,
) -> None:
    reservation_id = await add_reservation(
        db, user_id=alice.id, seat_id=library.a2, start=start, end=start + timedelta(hours=1)
    )

    response = await api.post(
        f"/admin/reservations/{reservation_id}/checkin", headers=admin.headers
    )

    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "CHECKED_IN"
    else:
        body = assert_error(response, 409, "checkin_window")
        assert body["check_in_opens_at"] == iso(start - EARLY)
        assert body["check_in_deadline"] == iso(start + GRACE)
        assert await reservation_status(db, reservation_id) == "CONFIRMED"


@pytest.mark.parametrize("status", ["COMPLETED", "CANCELLED", "NO_SHOW", "HELD"])
async def test_desk_check_in_of_a_reservation_not_confirmed_is_invalid_state(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    admin: Student,
    status: str,
) -> None:
    reservation_id = await add_reservation(
        db, user_id=alice.id, seat_id=library.a2, start=at(9, 40), end=at(11), status=status
    )

    response = await api.post(
        f"/admin/reservations/{reservation_id}/checkin", headers=admin.headers
    )

    assert_error(response, 409, "invalid_state")
    assert await reservation_status(db, reservation_id) == status


async def test_desk_check_in_twice_is_invalid_state_the_second_time(
    api: httpx.AsyncClient, db: asyncpg.Connection, admin: Student, desk_booking: int
) -> None:
    first = await api.post(f"/admin/reservations/{desk_booking}/checkin", headers=admin.headers)
    second = await api.post(f"/admin/reservations/{desk_booking}/checkin", headers=admin.headers)

    assert first.status_code == 200, first.text
    assert_error(second, 409, "invalid_state")
    assert await audit_rows(db) == 1


async def test_desk_check_in_of_an_unknown_reservation_is_not_found(
    api: httpx.AsyncClient, admin: Student
) -> None:
    unknown = await api.post("/admin/reservations/999999/checkin", headers=admin.headers)
    malformed = await api.post("/admin/reservations/0/checkin", headers=admin.headers)

    assert_error(unknown, 404, "not_found")
    assert_validation_error(malformed, "path", "reservation_id")


# GET /admin/audit


async def test_each_staff_change_leaves_one_audit_row_newest_first(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
    admin: Student,
) -> None:
    # Alice's booking at 09:45: its check-in window opens at 09:30.
    booking = await add_reservation(
        db, user_id=alice.id, seat_id=library.a2, start=at(9, 45), end=at(11)
    )
    branch = await api.post(
        "/admin/branches", json={"name": "Annex", "timezone": "Europe/Berlin"},
        headers=admin.headers,
    )  # fmt: skip
    clock.advance(MINUTE)
    seat = await api.post(
        "/admin/seats",
        json={"branch": "Annex", "area": "Quiet", "label": "X1", "has_power": True},
        headers=admin.headers,
    )
    clock.advance(MINUTE)
    seat_id = seat.json()["id"]
    patched = await api.patch(
        f"/admin/seats/{seat_id}", json={"status": "MAINTENANCE"}, headers=admin.headers
    )
    clock.advance(MINUTE)
    checked_in = await api.post(f"/admin/reservations/{booking}/checkin", headers=admin.headers)
    assert [r.status_code for r in (branch, seat, patched, checked_in)] == [201, 201, 200, 200]

    response = await api.get("/admin/audit", headers=admin.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 4
    items = body["items"]
    assert all(set(item) == AUDIT_FIELDS for item in items)
    assert all(item["actor_id"] == admin.id for item in items)
    assert [(i["action"], i["entity"], i["entity_id"], i["created_at"]) for i in items] == [
        ("reservation.checkin", "reservation", booking, iso(NOW + 3 * MINUTE)),
        ("seat.update", "seat", seat_id, iso(NOW + 2 * MINUTE)),
        ("seat.create", "seat", seat_id, iso(NOW + MINUTE)),
        ("branch.create", "branch", branch.json()["id"], iso(NOW)),
    ]
    checkin, update, create_seat, create_branch = items
    assert checkin["before"]["status"] == "CONFIRMED"
    assert checkin["after"]["status"] == "CHECKED_IN"
    assert checkin["after"]["user_id"] == alice.id
    assert datetime.fromisoformat(checkin["after"]["checked_in_at"]) == NOW + 3 * MINUTE
    assert update["before"]["status"] == "ACTIVE"
    assert update["after"]["status"] == "MAINTENANCE"
    assert update["before"]["label"] == update["after"]["label"] == "X1"
    assert create_seat["before"] is None
    assert create_seat["after"]["label"] == "X1"
    assert create_seat["after"]["branch"] == "Annex"
    assert create_seat["after"]["has_power"] is True
    assert create_seat["after"]["status"] == "ACTIVE"
    assert create_branch["before"] is None
    assert create_branch["after"]["name"] == "Annex"
    assert create_branch["after"]["timezone"] == "Europe/Berlin"
    assert create_branch["after"]["id"] == branch.json()["id"]


async def test_audit_rows_name_the_admin_who_made_each_change(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student
) -> None:
    other = await add_student(db, "ADMIN02", role=Role.ADMIN)
    await api.patch(f"/admin/seats/{library.a1}", json={"area": "Loud"}, headers=admin.headers)
    await api.patch(f"/admin/seats/{library.a2}", json={"area": "Loud"}, headers=other.headers)

    items = (await api.get("/admin/audit", headers=admin.headers)).json()["items"]

    assert [(i["actor_id"], i["entity_id"]) for i in items] == [
        (other.id, library.a2),
        (admin.id, library.a1),
    ]
    assert items[0]["before"]["area"] == "Quiet"
    assert items[0]["after"]["area"] == "Loud"


async def test_audit_log_pages_with_limit_and_offset(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, admin: Student
) -> None:
    labels = [f"P{n}" for n in range(5)]
    for label in labels:
        response = await api.patch(
            f"/admin/seats/{library.a1}", json={"label": label}, headers=admin.headers
        )
        assert response.status_code == 200, response.text

    async def page(**params: int) -> tuple[list[str], int]:
        response = await api.get("/admin/audit", params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return [item["after"]["label"] for item in body["items"]], body["total"]

    assert await page(limit=2) == (["P4", "P3"], 5)
    assert await page(limit=2, offset=2) == (["P2", "P1"], 5)
    assert await page(limit=2, offset=4) == (["P0"], 5)
    assert await page(offset=5) == ([], 5)
    assert await page() == (["P4", "P3", "P2", "P1", "P0"], 5)
    too_big = await api.get("/admin/audit", params={"limit": 501}, headers=admin.headers)
    assert_validation_error(too_big, "query", "limit")


async def test_refused_staff_changes_leave_no_audit_row(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    admin: Student,
    desk_booking: int,
) -> None:
    too_early = await add_reservation(
        db, user_id=alice.id, seat_id=library.a2, start=at(13), end=at(14)
    )
    attempts = [
        (await api.post("/admin/branches", json={"name": "Main"}, headers=admin.headers),
         409, "already_exists"),
        (await api.post("/admin/seats", json={"branch": "Main", "area": "Q", "label": "A1"},
                        headers=admin.headers), 409, "already_exists"),
        (await api.post("/admin/seats", json={"branch": "Nowhere", "area": "Q", "label": "N1"},
                        headers=admin.headers), 404, "not_found"),
        (await api.patch(f"/admin/seats/{library.a1}", json={"label": "A2"},
                         headers=admin.headers), 409, "already_exists"),
        (await api.patch("/admin/seats/999999", json={"label": "A2"}, headers=admin.headers),
         404, "not_found"),
        (await api.post(f"/admin/reservations/{too_early}/checkin", headers=admin.headers),
         409, "checkin_window"),
        (await api.post("/admin/reservations/999999/checkin", headers=admin.headers),
         404, "not_found"),
        (await api.post(f"/admin/reservations/{desk_booking}/checkin", headers=alice.headers),
         403, "forbidden"),
    ]  # fmt: skip
    for response, status, code in attempts:
        assert_error(response, status, code)

    assert await audit_rows(db) == 0
    listed = await api.get("/admin/audit", headers=admin.headers)
    assert listed.json() == {"items": [], "total": 0}


# What readers see after a staff change, with the Redis listing cache on


@pytest.fixture
async def cached_api(
    make_client: ClientFactory, redis_url: str, clock: FrozenClock
) -> httpx.AsyncClient:
    # A long TTL: only invalidation can end a cached answer while the test runs.
    return await make_client(clock=clock, REDIS_URL=redis_url, SEAT_CACHE_SECONDS=120, **RULES)


@pytest.mark.redis
async def test_a_new_branch_is_listed_at_once_even_when_branches_were_cached(
    cached_api: httpx.AsyncClient, library: Library, admin: Student
) -> None:
    before = await cached_api.get("/branches")
    assert [b["name"] for b in before.json()] == ["Main", "Science"]

    created = await cached_api.post(
        "/admin/branches", json={"name": "Annex"}, headers=admin.headers
    )

    assert created.status_code == 201, created.text
    after = await cached_api.get("/branches")
    assert [b["name"] for b in after.json()] == ["Annex", "Main", "Science"]


@pytest.mark.redis
async def test_seat_changes_show_at_once_in_cached_listings(
    cached_api: httpx.AsyncClient, library: Library, admin: Student
) -> None:
    assert seat_ids(await cached_api.get("/seats", params={"branch": "Main"})) == [
        library.a1,
        library.a2,
    ]
    assert (await cached_api.get("/branches")).json()[0]["total_seats"] == 2

    created = await cached_api.post(
        "/admin/seats", json={"branch": "Main", "area": "Quiet", "label": "A3"},
        headers=admin.headers,
    )  # fmt: skip
    closed = await cached_api.patch(
        f"/admin/seats/{library.a1}", json={"status": "CLOSED"}, headers=admin.headers
    )

    assert created.status_code == 201, created.text
    assert closed.status_code == 200, closed.text
    listed = await cached_api.get("/seats", params={"branch": "Main"})
    assert {s["id"]: s["status"] for s in listed.json()["items"]} == {
        library.a1: "CLOSED",
        library.a2: "ACTIVE",
        created.json()["id"]: "ACTIVE",
    }
    main = (await cached_api.get("/branches")).json()[0]
    assert (main["name"], main["total_seats"], main["available_now"]) == ("Main", 3, 2)


# Closing a seat while time on it is being released


async def lock_waiters(db: asyncpg.Connection, *, waited: timedelta) -> int:
    """Sessions of this database that have waited for a lock for at least ``waited``."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE a.datname = current_database() AND NOT l.granted "
        "AND l.waitstart <= clock_timestamp() - $1::interval",
        waited,
    )
    return count


async def test_closing_a_seat_while_its_booker_cancels_answers_both_without_a_server_error(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    admin: Student,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Alice gives up A1 [11:00, 12:00) while Bob waits for it, and staff close A1 meanwhile.
    booking = await add_reservation(
        db, user_id=alice.id, seat_id=library.a1, start=at(11), end=at(12)
    )
    entry = await joined(api, bob, seat_id=library.a1, start=at(11), end=at(12))
    # Hold the cancellation between its UPDATE and its offer to the queue, so that the
    # closing starts in between (the order a real race can take).
    reached, go = asyncio.Event(), asyncio.Event()
    offer_released = waitlist_service.offer_released

    async def paused(*args: Any, **kwargs: Any) -> None:
        reached.set()
        await go.wait()
        await offer_released(*args, **kwargs)

    monkeypatch.setattr(waitlist_service, "offer_released", paused)
    cancelling = asyncio.create_task(api.delete(f"/reservations/{booking}", headers=alice.headers))
    await asyncio.wait_for(reached.wait(), 10)
    closing = asyncio.create_task(
        api.patch(
            f"/admin/seats/{library.a1}", json={"status": "MAINTENANCE"}, headers=admin.headers
        )
    )
    # The closing waits for the cancelled row's lock. Let it have waited a while by
    # PostgreSQL's own clock before the cancellation goes on: if the two then deadlock,
    # the deadlock check runs first in the session that has waited longest.
    await eventually(
        lambda: lock_waiters(db, waited=timedelta(milliseconds=200)),
        lambda waiters: waiters > 0,
        within=10,
        interval=0.02,
        what="the closing waits for the cancellation's lock",
    )
    go.set()
    cancelled, closed = await asyncio.gather(cancelling, closing)

    # PostgreSQL breaks the deadlock in the session whose deadlock_timeout ran out while
    # the cycle existed: the closing's, unless a slow machine delays the cancellation's
    # wait past that moment. Then the cancellation is retried after the closing has
    # cancelled the booking: a clear 409, never a server error.
    if cancelled.status_code == 409:
        assert cancelled.json()["code"] == "invalid_state", cancelled.text
    else:
        assert cancelled.status_code == 200, cancelled.text
    assert closed.status_code == 200, closed.text
    assert (await seat_row(db, library.a1))["status"] == "MAINTENANCE"
    active = await db.fetchval(
        "SELECT count(*) FROM reservations WHERE seat_id = $1 AND status IN "
        "('HELD', 'CONFIRMED', 'CHECKED_IN')",
        library.a1,
    )
    assert active == 0
    assert (await my_entries(api, bob))[entry["id"]]["status"] == "WAITING"


# GET /admin/users (extension: the desk looks a student up by student ID)


async def test_admin_finds_a_user_by_student_id(
    api: httpx.AsyncClient, alice: Student, admin: Student
) -> None:
    response = await api.get(
        "/admin/users", params={"student_id": "S0000001"}, headers=admin.headers
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": alice.id,
        "student_id": "S0000001",
        "name": "Test Student",
        "role": "student",
    }


async def test_admin_user_lookup_of_an_unknown_student_id_is_not_found(
    api: httpx.AsyncClient, alice: Student, admin: Student
) -> None:
    response = await api.get(
        "/admin/users", params={"student_id": "S9999999"}, headers=admin.headers
    )

    assert_error(response, 404, "not_found")


async def test_admin_user_lookup_needs_a_student_id(api: httpx.AsyncClient, admin: Student) -> None:
    missing = await api.get("/admin/users", headers=admin.headers)
    blank = await api.get("/admin/users", params={"student_id": ""}, headers=admin.headers)

    assert_validation_error(missing, "query", "student_id")
    assert_validation_error(blank, "query", "student_id")
