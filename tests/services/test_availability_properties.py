"""Availability answers agree with a brute force over random bookings (hypothesis).

Each example empties the reservations table, gives three seats random statuses and
inserts random reservations on a 15-minute grid (active ones never overlap on a seat,
as the exclusion constraint demands; ended ones may overlap anything). Queries use a
5-minute grid, so they start and end on booking boundaries as well as inside bookings.
The brute force reads the contract: a seat is available for [start, end) when it is
ACTIVE and no HELD, CONFIRMED or CHECKED_IN reservation [s, e) has s < end and start < e.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.models import ACTIVE_RESERVATION_STATUSES
from tests.conftest import ClientFactory
from tests.factories import FrozenClock, add_branch, add_seat, add_user

DAY_START = datetime(2026, 12, 1, 8, tzinfo=UTC)  # minute 0 of the grid
GRID_MINUTES = 8 * 60
SEATS = 3
MAX_BOOKINGS = 12
ACTIVE = tuple(status.value for status in ACTIVE_RESERVATION_STATUSES)
ENDED = ("CANCELLED", "COMPLETED", "NO_SHOW")
SEAT_STATUSES = ("ACTIVE", "ACTIVE", "ACTIVE", "MAINTENANCE", "CLOSED")
# The offsets queries are written in; answers are UTC whatever the offset.
OFFSETS: tuple[tzinfo, ...] = (
    UTC,
    timezone(timedelta(hours=1)),
    timezone(-timedelta(hours=5, minutes=30)),
)

FAST = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def moment(minute: int) -> datetime:
    return DAY_START + timedelta(minutes=minute)


def z(minute: int) -> str:
    return moment(minute).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Booking:
    seat: int  # index into the arena's seats
    start: int  # minutes from DAY_START
    end: int
    status: str

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True)
class Case:
    seat_statuses: tuple[str, ...]
    bookings: tuple[Booking, ...]

    def conflicts(self, seat: int, start: int, end: int) -> list[tuple[int, int]]:
        return sorted(
            (b.start, b.end)
            for b in self.bookings
            if b.seat == seat and b.active and b.start < end and start < b.end
        )

    def available(self, seat: int, start: int, end: int) -> bool:
        return self.seat_statuses[seat] == "ACTIVE" and not self.conflicts(seat, start, end)

    def available_at(self, seat: int, minute: int) -> bool:
        return self.seat_statuses[seat] == "ACTIVE" and self.holder_at(seat, minute) is None

    def holder_at(self, seat: int, minute: int) -> str | None:
        """The status of the active reservation covering ``minute`` on the seat, if any."""
        covering = [
            b.status
            for b in self.bookings
            if b.seat == seat and b.active and b.start <= minute < b.end
        ]
        assert len(covering) <= 1
        return covering[0] if covering else None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    statuses = tuple(draw(st.sampled_from(SEAT_STATUSES)) for _ in range(SEATS))
    drawn = draw(
        st.lists(
            st.tuples(
                st.integers(0, SEATS - 1),
                st.integers(0, GRID_MINUTES // 15 - 1),  # start slot
                st.integers(1, 8),  # length in slots
                st.sampled_from(ACTIVE + ENDED),
            ),
            max_size=MAX_BOOKINGS,
        )
    )
    kept: list[Booking] = []
    for seat, slot, length, status in drawn:
        booking = Booking(seat, slot * 15, min(slot + length, GRID_MINUTES // 15) * 15, status)
        clash = any(
            k.seat == booking.seat and k.active and k.start < booking.end and booking.start < k.end
            for k in kept
        )
        if not (booking.active and clash):  # the exclusion constraint would refuse it
            kept.append(booking)
    return Case(statuses, tuple(kept))


def instants(case: Case) -> st.SearchStrategy[int]:
    """Minutes on a 5-minute grid, often exactly where a booking starts or ends."""
    anywhere = st.integers(0, GRID_MINUTES // 5).map(lambda step: step * 5)
    edges = sorted({b.start for b in case.bookings} | {b.end for b in case.bookings})
    return st.one_of(anywhere, st.sampled_from(edges)) if edges else anywhere


@dataclass(frozen=True)
class Asked:
    start: int
    end: int
    offset: tzinfo  # the offset the times are written in
    limit: int  # a page of the available_only listing
    skip: int


@st.composite
def with_intervals(draw: st.DrawFn) -> tuple[Case, list[Asked]]:
    """A case, and up to three intervals [start, end) to ask about."""
    case = draw(cases())
    asked = []
    for _ in range(draw(st.integers(1, 3))):
        a, b = draw(instants(case)), draw(instants(case))
        start, end = min(a, b), max(a, b)
        if start == end:
            start, end = (start, end + 5) if end < GRID_MINUTES else (start - 5, end)
        offset = draw(st.sampled_from(OFFSETS))
        asked.append(
            Asked(start, end, offset, draw(st.integers(1, 2)), draw(st.integers(0, SEATS + 1)))
        )
    return case, asked


@st.composite
def with_instants(draw: st.DrawFn) -> tuple[Case, list[int]]:
    case = draw(cases())
    return case, draw(st.lists(instants(case), min_size=1, max_size=3))


@dataclass(frozen=True)
class Arena:
    seat_ids: tuple[int, ...]
    user_ids: tuple[int, ...]  # one per booking, so the per-user constraint never fires


@pytest.fixture
async def arena(db: asyncpg.Connection) -> Arena:
    branch = await add_branch(db, "Main")
    seat_ids = tuple([await add_seat(db, branch, f"P{i}") for i in range(SEATS)])
    user_ids = tuple([await add_user(db, f"P{i:04d}") for i in range(MAX_BOOKINGS)])
    return Arena(seat_ids, user_ids)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(moment(0))


@pytest.fixture
async def plain(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    """A client without Redis: every answer comes from PostgreSQL."""
    return await make_client(clock=clock)


async def arrange(db: asyncpg.Connection, arena: Arena, case: Case) -> None:
    """Replace the previous example's state with ``case`` (committed)."""
    async with db.transaction():
        await db.execute("DELETE FROM reservations")
        await db.executemany(
            "UPDATE seats SET status = $2 WHERE id = $1",
            list(zip(arena.seat_ids, case.seat_statuses, strict=True)),
        )
        await db.executemany(
            "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status, "
            "offer_expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (
                    arena.user_ids[i],
                    arena.seat_ids[b.seat],
                    moment(b.start),
                    moment(b.end),
                    b.status,
                    moment(b.start) if b.status == "HELD" else None,
                )
                for i, b in enumerate(case.bookings)
            ],
        )


def written(minute: int, offset: tzinfo) -> str:
    return moment(minute).astimezone(offset).isoformat()


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@FAST
@given(scenario=with_intervals())
async def test_seat_listing_for_an_interval_agrees_with_brute_force(
    plain: httpx.AsyncClient,
    db: asyncpg.Connection,
    arena: Arena,
    scenario: tuple[Case, list[Asked]],
) -> None:
    case, asked = scenario
    await arrange(db, arena, case)
    for q in asked:
        window = {"start_time": written(q.start, q.offset), "end_time": written(q.end, q.offset)}
        expected = {
            seat_id: case.available(seat, q.start, q.end)
            for seat, seat_id in enumerate(arena.seat_ids)
        }
        free_ids = [seat_id for seat_id, ok in expected.items() if ok]

        listing = await get_json(plain, "/seats", **window)
        assert {s["id"]: s["available"] for s in listing["items"]} == expected
        free = await get_json(plain, "/seats", available_only="true", **window)
        assert free == {
            "items": [s for s in listing["items"] if s["available"]],
            "total": len(free_ids),
        }
        page = await get_json(
            plain, "/seats", available_only="true", limit=q.limit, offset=q.skip, **window
        )
        assert [s["id"] for s in page["items"]] == free_ids[q.skip : q.skip + q.limit]
        assert page["total"] == len(free_ids)


@FAST
@given(scenario=with_intervals())
async def test_seat_availability_and_conflicts_agree_with_brute_force(
    plain: httpx.AsyncClient,
    db: asyncpg.Connection,
    arena: Arena,
    scenario: tuple[Case, list[Asked]],
) -> None:
    case, asked = scenario
    await arrange(db, arena, case)
    for q in asked:
        start, end = q.start, q.end
        for seat, seat_id in enumerate(arena.seat_ids):
            answer = await get_json(
                plain,
                f"/seats/{seat_id}/availability",
                start_time=written(start, q.offset),
                end_time=written(end, q.offset),
            )
            assert answer == {
                "seat_id": seat_id,
                "start_time": z(start),
                "end_time": z(end),
                "available": case.available(seat, start, end),
                "conflicts": [
                    {"start_time": z(s), "end_time": z(e)}
                    for s, e in case.conflicts(seat, start, end)
                ],
            }


@FAST
@given(scenario=with_instants())
async def test_availability_now_agrees_with_brute_force(
    plain: httpx.AsyncClient,
    db: asyncpg.Connection,
    arena: Arena,
    clock: FrozenClock,
    scenario: tuple[Case, list[int]],
) -> None:
    case, moments_asked = scenario
    await arrange(db, arena, case)
    for minute in moments_asked:
        clock.set(moment(minute))
        seats = list(enumerate(arena.seat_ids))
        expected = {seat_id: case.available_at(seat, minute) for seat, seat_id in seats}
        holders = [case.holder_at(seat, minute) for seat in range(SEATS)]

        listing = await get_json(plain, "/seats")
        assert {s["id"]: s["available"] for s in listing["items"]} == expected
        free = await get_json(plain, "/seats", available_only="true")
        assert [s["id"] for s in free["items"]] == [i for i, ok in expected.items() if ok]
        for seat_id in arena.seat_ids:
            detail = await get_json(plain, f"/seats/{seat_id}")
            assert detail["available"] is expected[seat_id]
        [branch] = await get_json(plain, "/branches")
        assert (branch["available_now"], branch["reserved_now"], branch["occupied_now"]) == (
            sum(expected.values()),
            sum(holder in ("HELD", "CONFIRMED") for holder in holders),
            holders.count("CHECKED_IN"),
        )
