"""Rules the OpenAPI schema states are the rules the server keeps (issue 11, item 6): the
schema says them so generated clients send what is accepted, and the server refuses what
the schema excludes."""

from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import make_settings

SCHEMA = create_app(make_settings("postgresql://unused/x")).openapi()
MODELS: dict[str, Any] = SCHEMA["components"]["schemas"]


def test_the_schema_states_password_lengths_and_zone_names() -> None:
    password = MODELS["RegisterIn"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 72)
    assert "bytes" in password["description"]
    zone = MODELS["BranchCreate"]["properties"]["timezone"]
    assert {"UTC", "Europe/Berlin"} <= set(zone["enum"])


def test_the_schema_states_the_interval_rules_in_words() -> None:
    described = MODELS["ReservationCreate"]["properties"]["end_time"]["description"]
    assert "After start_time" in described
    listing = {p["name"]: p for p in SCHEMA["paths"]["/seats"]["get"]["parameters"]}
    assert "both or neither" in listing["start_time"]["description"]


@pytest.mark.parametrize("day", ["0", "1700000000", "2026-1-5"])
async def test_a_date_that_is_not_yyyy_mm_dd_is_422(client: httpx.AsyncClient, day: str) -> None:
    # The schema says `format: date`; pydantic alone would read `0` as 1970-01-01.
    response = await client.get("/seats/1", params={"date": day})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["query", "date"]


async def test_a_text_limit_counts_the_text_as_sent(client: httpx.AsyncClient) -> None:
    # maxLength 50 in the schema, so 51 characters are too long even if stripping would
    # leave fewer.
    body = {"student_id": " " * 10 + "S" * 41, "name": "Padded", "password": "correct horse"}
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "student_id"]
