"""Campus sign-in across instances: the sign-in in progress lives in Redis, so the
provider's answer may reach another instance than the one that sent the browser off, and
the state still works once."""

import httpx
import pytest

from tests.oidc.conftest import Provider, query, start_sign_in
from tests.realtime.servers import Server


@pytest.mark.redis
async def test_callback_on_another_instance_and_once_only(
    db: object,
    redis_url: str,
    campus_pair_servers: list[Server],
    provider: Provider,
    clients: list[httpx.AsyncClient],
) -> None:
    first, second = campus_pair_servers
    await provider.set_user("sub-pair", {"preferred_username": "S8008", "name": "Pat"})
    client, callback = await start_sign_in(first, provider, "sub-pair")
    clients.append(client)
    # The same answer, handed to the other instance (the state cookie is the host's).
    other = callback.replace(first.url, second.url)
    answer = await client.get(other)
    assert answer.status_code == 303, answer.text
    me = await client.get(f"{second.url}/auth/me")
    assert me.json()["student_id"] == "S8008"

    # Replayed on the first instance: the state was taken out of Redis.
    replayer = httpx.AsyncClient(timeout=10)
    clients.append(replayer)
    replayer.cookies.set(
        "dlsms_oidc_state", query(callback)["state"], domain="127.0.0.1", path="/auth/oidc"
    )
    replay = await replayer.get(callback)
    assert replay.status_code == 400
    assert replay.json()["code"] == "oidc_failed"
    assert "dlsms_session" not in replay.cookies
