"""The admin endpoints: registering (201, the secret once), listing, deleting, the
delivery log's 404s, refusals (a private target, an unknown event) and who may."""

import httpx
import pytest

from app.services import webhooks as webhooks_service
from tests.conftest import ClientFactory
from tests.factories import RULES, Student, assert_error, assert_validation_error
from tests.webhooks.conftest import Receiver, deliveries, register


async def test_register_list_get_delete(
    api: httpx.AsyncClient, admin: Student, receiver: Receiver
) -> None:
    created = await register(api, admin, receiver.url(), ["seat.updated", "reservation.created"])
    assert set(created) >= {"id", "url", "events", "secret", "active", "created_at"}
    assert created["url"] == receiver.url()
    assert created["events"] == ["reservation.created", "seat.updated"]  # the spec's order
    assert created["active"] is True
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["created_at"].endswith("Z")

    listed = (await api.get("/admin/webhooks", headers=admin.headers)).json()
    assert [h["id"] for h in listed] == [created["id"]]
    assert "secret" not in listed[0]
    one = await api.get(f"/admin/webhooks/{created['id']}", headers=admin.headers)
    assert one.status_code == 200 and "secret" not in one.json()
    assert created["secret"] not in one.text
    assert await deliveries(api, admin, created["id"]) == []

    gone = await api.delete(f"/admin/webhooks/{created['id']}", headers=admin.headers)
    assert gone.status_code == 204
    audit = (await api.get("/admin/audit", headers=admin.headers)).json()["items"]
    assert [(a["action"], a["entity_id"]) for a in audit[:2]] == [
        ("webhook.delete", created["id"]),
        ("webhook.create", created["id"]),
    ]
    assert created["secret"] not in str(audit)
    assert (await api.get("/admin/webhooks", headers=admin.headers)).json() == []
    for response in (
        await api.delete(f"/admin/webhooks/{created['id']}", headers=admin.headers),
        await api.get(f"/admin/webhooks/{created['id']}", headers=admin.headers),
        await api.get(f"/admin/webhooks/{created['id']}/deliveries", headers=admin.headers),
    ):
        assert_error(response, 404, "not_found")


async def test_refusals(api: httpx.AsyncClient, admin: Student, receiver: Receiver) -> None:
    async def post(body: object) -> httpx.Response:
        return await api.post("/admin/webhooks", json=body, headers=admin.headers)

    unknown = await post({"url": receiver.url(), "events": ["reservation.exploded"]})
    assert_validation_error(unknown, "body", "events", 0)
    assert_validation_error(await post({"url": receiver.url(), "events": []}), "body", "events")
    for url in ("ftp://example.org/hook", "not a url", "http:///nohost", "http://a b/"):
        assert_validation_error(await post({"url": url, "events": ["seat.updated"]}))
    # A name with characters outside ASCII (U+0085 is whitespace to some regex dialects,
    # not to others: the schema's pattern names the ASCII ones) is refused as a target.
    for url in ("http://u:p@example.org/", "http://no-such-host.invalid/hook", "http://\x85x/"):
        refused = await post({"url": url, "events": ["seat.updated"]})
        assert_error(refused, 422, "webhook_url_refused")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata: link-local
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
async def test_private_targets_refused_without_the_setting(
    make_client: ClientFactory, admin: Student, url: str
) -> None:
    api = await make_client(**RULES)  # WEBHOOK_ALLOW_PRIVATE unset: false
    response = await api.post(
        "/admin/webhooks", json={"url": url, "events": ["seat.updated"]}, headers=admin.headers
    )
    body = assert_error(response, 422, "webhook_url_refused")
    assert "WEBHOOK_ALLOW_PRIVATE" in body["detail"]
    assert (await api.get("/admin/webhooks", headers=admin.headers)).json() == []


async def test_a_name_resolving_to_a_private_address_is_refused(
    make_client: ClientFactory, admin: Student, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def dns(host: str, port: int) -> list[str]:
        return {"hooks.example.org": ["8.8.8.8", "10.0.0.7"]}.get(host, ["93.184.216.34"])

    monkeypatch.setattr(webhooks_service, "resolve", dns)
    api = await make_client(**RULES)
    body = {"url": "https://hooks.example.org/in", "events": ["seat.updated"]}
    refused = await api.post("/admin/webhooks", json=body, headers=admin.headers)
    assert "10.0.0.7" in assert_error(refused, 422, "webhook_url_refused")["detail"]
    body["url"] = "https://public.example.org/in"
    assert (await api.post("/admin/webhooks", json=body, headers=admin.headers)).status_code == 201


async def test_only_admins(api: httpx.AsyncClient, alice: Student, receiver: Receiver) -> None:
    body = {"url": receiver.url(), "events": ["seat.updated"]}
    for response in (
        await api.post("/admin/webhooks", json=body, headers=alice.headers),
        await api.get("/admin/webhooks", headers=alice.headers),
        await api.delete("/admin/webhooks/1", headers=alice.headers),
        await api.get("/admin/webhooks/1/deliveries", headers=alice.headers),
    ):
        assert_error(response, 403, "forbidden")
    assert_error(await api.get("/admin/webhooks"), 401, "not_authenticated")
