"""PATCH /auth/me: e-mail address, name and the e-mail opt-out; bad input is 422."""

import httpx
import pytest

from tests.factories import Student, assert_validation_error


async def test_patch_me_changes_what_it_is_given(api: httpx.AsyncClient, alice: Student) -> None:
    me = (await api.get("/auth/me", headers=alice.headers)).json()

    response = await api.patch(
        "/auth/me", json={"email": "Alice.New@Example.EDU"}, headers=alice.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == set(me) | {"email_notifications"}
    assert body["email"] == "Alice.New@example.edu"  # the domain normalised
    assert (body["name"], body["email_notifications"]) == (me["name"], True)
    assert {k: body[k] for k in me if k != "email"} == {k: me[k] for k in me if k != "email"}

    body = (
        await api.patch(
            "/auth/me",
            json={"name": "  Alice Liddell ", "email_notifications": False},
            headers=alice.headers,
        )
    ).json()
    assert (body["name"], body["email"], body["email_notifications"]) == (
        "Alice Liddell",
        "Alice.New@example.edu",
        False,
    )
    read_back = (await api.get("/auth/me", headers=alice.headers)).json()
    assert (read_back["name"], read_back["email_notifications"]) == ("Alice Liddell", False)

    # null clears the address; an empty body changes nothing.
    body = (await api.patch("/auth/me", json={"email": None}, headers=alice.headers)).json()
    assert (body["email"], body["email_notifications"]) == (None, False)
    same = await api.patch("/auth/me", json={}, headers=alice.headers)
    assert same.json() == body


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"email": "not-an-address"}, ("body", "email")),
        ({"email": "a@b"}, ("body", "email")),
        ({"email": "x" * 250 + "@example.edu"}, ("body", "email")),
        ({"name": "   "}, ("body", "name")),
        ({"name": ""}, ("body", "name")),
        ({"name": None}, ("body", "name")),
        ({"email_notifications": "perhaps"}, ("body", "email_notifications")),
        ({"email_notifications": None}, ("body", "email_notifications")),
        ({"email_notifications": 0}, ("body", "email_notifications")),
        ({"role": "admin"}, ("body", "role")),
    ],
)
async def test_patch_me_refuses_bad_input(
    api: httpx.AsyncClient, alice: Student, body: dict[str, object], loc: tuple[str, ...]
) -> None:
    response = await api.patch("/auth/me", json=body, headers=alice.headers)
    assert_validation_error(response, *loc)
    me = (await api.get("/auth/me", headers=alice.headers)).json()
    assert (me["email"], me["name"], me["role"]) == ("alice@example.edu", "Test Student", "student")


async def test_patch_me_needs_a_token(api: httpx.AsyncClient) -> None:
    response = await api.patch("/auth/me", json={"name": "Nobody"})
    assert response.status_code == 401
