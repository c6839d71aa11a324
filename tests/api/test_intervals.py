"""The rule "end after start" (and "both or neither") is one schema rule, app/schemas/common.py
``ordered_interval``, applied by every request model with start_time and end_time. Each
operation answers it the same, before any service runs: 422 ``invalid_interval``."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.schemas.admin import AdminReservationQuery, StatsQuery
from app.schemas.common import ordered_interval
from app.schemas.reservations import ReservationCreate
from app.schemas.seats import IntervalQuery, SeatQuery
from app.schemas.waitlist import WaitlistJoin
from tests.conftest import ClientFactory
from tests.factories import Student

START = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
S = START.isoformat()
E = (START + timedelta(hours=1)).isoformat()
EARLIER = (START - timedelta(hours=1)).isoformat()

# (method, path, where the interval goes); seat 999 does not exist: the interval is refused
# before anything looks it up (a 404 would mean a service ran first).
OPERATIONS = [
    ("GET", "/seats", "query"),
    ("GET", "/seats/999/availability", "query"),
    ("POST", "/reservations", "body"),
    ("POST", "/waitlist", "body"),
    ("GET", "/admin/reservations", "query"),
    ("GET", "/admin/stats", "query"),
]
BODY_EXTRA = {"/reservations": {"seat_id": 999}, "/waitlist": {"seat_id": 999}}


@pytest.fixture
async def api(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client()


async def send(
    api: httpx.AsyncClient, who: Student, method: str, path: str, where: str, times: dict[str, Any]
) -> httpx.Response:
    if where == "query":
        return await api.request(method, path, params=times, headers=who.headers)
    body = {**BODY_EXTRA.get(path, {}), **times}
    return await api.request(method, path, json=body, headers=who.headers)


def assert_invalid_interval(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": detail, "code": "invalid_interval"}


@pytest.mark.parametrize(("method", "path", "where"), OPERATIONS)
@pytest.mark.parametrize("end", [S, EARLIER], ids=["empty", "inverted"])
async def test_end_not_after_start_is_invalid_interval_everywhere(
    api: httpx.AsyncClient, admin: Student, method: str, path: str, where: str, end: str
) -> None:
    response = await send(api, admin, method, path, where, {"start_time": S, "end_time": end})
    assert_invalid_interval(response, "end_time must be after start_time")


@pytest.mark.parametrize("path", ["/seats", "/admin/reservations"])
@pytest.mark.parametrize("given", ["start_time", "end_time"])
async def test_one_time_without_the_other_is_invalid_interval(
    api: httpx.AsyncClient, admin: Student, path: str, given: str
) -> None:
    response = await api.get(path, params={given: S}, headers=admin.headers)
    assert_invalid_interval(response, "give both start_time and end_time, or neither")


async def test_an_inverted_interval_with_other_malformed_input_is_fastapis_422(
    api: httpx.AsyncClient, admin: Student
) -> None:
    # Only when the interval is all that is wrong is the answer `invalid_interval`.
    response = await api.get(
        "/seats", params={"start_time": S, "end_time": EARLIER, "limit": 0}, headers=admin.headers
    )
    assert response.status_code == 422
    assert "code" not in response.json()
    assert [issue["loc"] for issue in response.json()["detail"]] == [["query", "limit"]]


INTERVAL_MODELS = [
    SeatQuery,
    IntervalQuery,
    ReservationCreate,
    WaitlistJoin,
    AdminReservationQuery,
    StatsQuery,
]


@pytest.mark.parametrize("model", INTERVAL_MODELS)
def test_every_model_with_an_interval_applies_the_one_validator(model: Any) -> None:
    validators = model.__pydantic_decorators__.model_validators.values()
    assert [v.func for v in validators if v.func is ordered_interval] == [ordered_interval]
