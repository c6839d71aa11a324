"""The webhook job as the app runs it: scheduled every second, no test calling it."""

from typing import Any

import httpx

from tests.conftest import ClientFactory
from tests.factories import RULES, FrozenClock, Student, booked, eventually
from tests.webhooks.conftest import Receiver, deliveries, register


async def test_the_scheduled_job_delivers(
    make_client: ClientFactory,
    clock: FrozenClock,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
) -> None:
    api: httpx.AsyncClient = await make_client(
        clock=clock, SCHEDULER_ENABLED=True, WEBHOOK_ALLOW_PRIVATE=True, **RULES
    )
    hook = await register(api, admin, receiver.url(), ["reservation.created"])
    reservation = await booked(api, alice, seat_id)

    received = await eventually(
        lambda: _events(receiver), lambda e: len(e) == 1, within=10, what="the webhook"
    )
    assert received[0]["data"]["reservation_id"] == reservation["id"]
    [delivery] = await deliveries(api, admin, hook["id"])
    assert delivery["status"] == "delivered"


async def _events(receiver: Receiver) -> list[Any]:
    return [r.json() for r in receiver.events]
