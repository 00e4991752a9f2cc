"""API keys through HTTP (NBO_AUTH=keys, embedded default): 401 without a valid key, 403 outside the key's
scopes or channels, for every route; revocation seen within the cache time; the OpenAPI says all of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from app.auth import KeyVerifier
from history.keys import SCOPES, SqlKeyStore

DECISION = {"customer_id": "c-adult", "channel": "web", "placement": "home_hero"}
RESPONSE = {"customer_id": "c-adult", "offer_id": "card_cashback", "channel": "web", "outcome": "clicked"}
EVENT = {"customer_id": "c-adult", "type": "card_declined", "attributes": {"amount": 54.2}}
SEND = {"contact_id": "mail-1", "customer_id": "c-adult", "offer_id": "card_cashback", "channel": "email"}
# Each protected route, the scope it needs, and a valid request to it (method, path, body).
ROUTES = {
    "decide": ("POST", "/v1/decisions", DECISION),
    "respond": ("POST", "/v1/responses", RESPONSE),
    "events": ("POST", "/v1/events", EVENT),
    "contacts": ("POST", "/v1/contacts", {"contacts": [SEND]}),
    "history:read": ("GET", "/v1/customers/c-adult/history", None),
}


class Keys:
    """Creates keys in the started app's database."""

    def __init__(self, url: str) -> None:
        self.store = SqlKeyStore(url)

    async def create(self, name: str, scopes: set[str], channels: set[str] | None = None) -> dict[str, str]:
        await self.store.start()
        _, key = await self.store.create(name, scopes, channels)
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def secured(start: Callable[..., Awaitable[tuple]], settings) -> tuple[httpx.AsyncClient, Keys]:
    app, client = await start(auth="keys")
    keys = Keys(settings.database_url)
    yield client, keys, app
    await keys.store.close()


async def call(client: httpx.AsyncClient, scope: str, headers: dict[str, str] | None = None, **body: object):
    method, path, default = ROUTES[scope]
    payload = None if default is None else {**default, **body}
    return await client.request(method, path, json=payload, headers=headers or {})


@pytest.mark.parametrize("scope", [*ROUTES, "offers"])
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer nbo_0123456789_" + "x" * 43, "Bearer not-a-key", "Basic dXNlcjpwYXNz"],
    ids=["missing", "unknown", "malformed", "basic"],
)
async def test_no_valid_key_is_a_401_with_a_bearer_challenge(secured, scope: str, authorization: str | None):
    client, _, _ = secured
    headers = {} if authorization is None else {"Authorization": authorization}
    if scope == "offers":
        answer = await client.get("/v1/offers", headers=headers)
    else:
        answer = await call(client, scope, headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["error"] == "unauthorized" and answer.json()["detail"]


@pytest.mark.parametrize("scope", ROUTES)
async def test_a_key_without_the_scope_is_a_403_and_with_it_passes(secured, scope: str):
    client, keys, _ = secured
    others = await keys.create("others", set(SCOPES) - {scope}, None)
    refused = await call(client, scope, others)
    assert refused.status_code == 403, refused.text
    assert refused.json() == {"error": "forbidden", "detail": f"key 'others' lacks the scope '{scope}'"}
    allowed = await call(client, scope, await keys.create("allowed", {scope}, {"web", "email"}))
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize("scope", ["decide", "respond"])
async def test_the_web_banks_key_cannot_act_as_the_call_centre(secured, scope: str):
    client, keys, _ = secured
    web_bank = await keys.create("web_bank", {scope}, {"web", "mobile"})
    assert (await call(client, scope, web_bank, channel="mobile")).status_code == 200
    refused = await call(client, scope, web_bank, channel="call_centre")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "key 'web_bank' may not use channel 'call_centre' (channel)"


async def test_every_send_in_a_contact_list_is_checked_against_the_keys_channels(secured):
    client, keys, _ = secured
    mailer = await keys.create("mailer", {"contacts"}, {"email"})
    sms = {**SEND, "contact_id": "sms-1", "channel": "sms"}
    refused = await client.post("/v1/contacts", json={"contacts": [SEND, sms]}, headers=mailer)
    assert refused.status_code == 403
    assert "'sms' (contacts.1.channel)" in refused.json()["detail"]
    history = await client.get("/v1/customers/c-adult/history", headers=await keys.create("h", {"history:read"}))
    assert history.json()["entries"] == []  # nothing of the refused list was recorded


async def test_offers_need_any_valid_key_and_operations_stay_open(secured):
    client, keys, _ = secured
    batch = await keys.create("batch", {"events"}, {"email"})
    assert (await client.get("/v1/offers", headers=batch)).status_code == 200
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200, path


async def test_a_revoked_key_is_refused_once_the_cache_time_has_passed(secured):
    client, keys, app = secured
    now = [1000.0]
    app.state.auth = KeyVerifier(keys.store, ttl=2.0, clock=lambda: now[0])
    console = await keys.create("console", {"decide"}, {"web"})
    assert (await call(client, "decide", console)).status_code == 200
    await keys.store.revoke("console")
    now[0] += 1.9  # within the cache time this replica still trusts the key it verified...
    assert (await call(client, "decide", console)).status_code == 200
    now[0] += 0.2  # ...and refuses it once the cache time has passed
    assert (await call(client, "decide", console)).status_code == 401


async def test_with_no_cache_time_a_revocation_is_refused_at_once(start, settings):
    _, client = await start(auth="keys", auth_cache_seconds=0.0)
    keys = Keys(settings.database_url)
    campaign = await keys.create("campaign_tool", {"decide"}, {"web"})
    assert (await call(client, "decide", campaign)).status_code == 200
    await keys.store.revoke("campaign_tool")
    assert (await call(client, "decide", campaign)).status_code == 401
    await keys.store.close()


async def test_with_auth_none_no_key_is_needed(client):
    assert (await call(client, "decide")).status_code == 200


async def test_the_openapi_declares_the_bearer_scheme_and_the_error_answers(secured):
    client, _, _ = secured
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `nbo keys create`, sent as `Authorization: Bearer KEY`.",
    }
    for method, path, _ in [*ROUTES.values(), ("GET", "/v1/offers", None)]:
        operation = spec["paths"][path.replace("c-adult", "{customer_id}")][method.lower()]
        assert operation["security"] == [{"HTTPBearer": []}], path
        assert {"401", "403", "422", "503"} <= set(operation["responses"]), path
    assert "security" not in spec["paths"]["/healthz"]["get"]
