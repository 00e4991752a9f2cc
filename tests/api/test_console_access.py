"""Access to the console (app/console/session.py) through HTTP, on the embedded default with API keys:
no key -> the login page, a key without the scope -> the 403 page, a POST without its CSRF token -> 403;
the session cookie's flags; the key never in a page, a URL or a log; the development mode says so."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import httpx
import pytest

from app.console.session import COOKIE
from history.keys import SqlKeyStore

AGENT = {"decide", "respond", "history:read"}


class Keys:
    def __init__(self, url: str) -> None:
        self.store = SqlKeyStore(url)

    async def create(self, name: str, scopes: set[str], channels: set[str] | None = None) -> str:
        await self.store.start()
        return (await self.store.create(name, scopes, channels))[1]


@pytest.fixture
async def console(start: Callable[..., Awaitable[tuple]], settings) -> tuple[httpx.AsyncClient, Keys]:
    _, client = await start(auth="keys")
    keys = Keys(settings.database_url)
    yield client, keys
    await keys.store.close()


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text) or re.search(
        r'"X-CSRF-Token": "([0-9a-f]+)"', page.text
    )
    assert found, page.text[:500]
    return found.group(1)


async def log_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await client.get("/console/login")
    return await client.post("/console/login", data={"key": key, "csrf": csrf_of(form), "next": "/console/customer"})


async def test_no_key_gets_the_login_page(console):
    client, _ = console
    answer = await client.get("/console/customer")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login?next=/console/customer"
    login = await client.get(answer.headers["location"])
    assert login.status_code == 200 and 'name="key"' in login.text and 'type="password"' in login.text
    data = await client.get("/console/live/data")
    assert data.status_code == 303, "the live figures are not open either"


async def test_an_htmx_request_without_a_session_is_sent_to_the_login_page(console):
    client, _ = console
    answer = await client.post("/console/customer/decide", headers={"HX-Request": "true"}, data={})
    assert answer.status_code == 401 and answer.headers["hx-redirect"] == "/console/login"


async def test_a_wrong_key_is_refused_on_the_login_page(console):
    client, _ = console
    answer = await log_in(client, "nbo_0123456789_" + "x" * 43)
    assert answer.status_code == 401 and "That key is not valid." in answer.text
    assert (await client.get("/console/customer")).status_code == 303


async def test_a_valid_key_opens_a_session_with_a_strict_httponly_cookie(console, caplog):
    client, keys = console
    key = await keys.create("agent", AGENT)
    with caplog.at_level(logging.DEBUG):
        answer = await log_in(client, key)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/customer"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie  # plain http here: see the https test
    page = await client.get("/console/customer?customer_id=c-adult")
    assert page.status_code == 200 and "agent" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"], "no clickjacking of the answers"
    assert page.headers["cache-control"] == "no-store"
    assert key not in page.text and key not in str(page.url), "the key is never in a page or a URL"
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert key not in logged and "console login" in logged


async def test_the_cookie_is_secure_behind_https(start, settings):
    app, _ = await start(auth="none")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://nbo.test") as client:
        answer = await client.get("/console/customer")
    assert "Secure" in answer.headers["set-cookie"]


async def test_a_key_without_the_scope_gets_the_403_page(console):
    client, keys = console
    await log_in(client, await keys.create("reader", {"decide"}))
    page = await client.get("/console/customer")
    assert page.status_code == 403 and "lacks the scope &#39;history:read&#39;" in page.text
    assert "Not allowed (403)" in page.text
    await log_in(client, await keys.create("viewer", {"history:read"}))
    viewer = await client.get("/console/customer?customer_id=c-adult")
    assert viewer.status_code == 200 and "may not ask for decisions" in viewer.text
    assert 'id="decide-form"' not in viewer.text


async def test_an_agent_may_not_validate_drafts_nor_run_what_if(console):
    client, keys = console
    await log_in(client, await keys.create("agent", AGENT))
    page = await client.get("/console/catalogue")
    assert page.status_code == 200 and "needs a key with the <code>admin</code> scope" in page.text
    refused = await client.post("/console/catalogue/validate", data={"path": "/tmp", "csrf": csrf_of(page)})
    assert refused.status_code == 403 and "admin" in refused.text
    assert (await client.get("/console/whatif")).status_code == 403


async def test_a_decision_in_a_channel_outside_the_key_is_refused(console):
    client, keys = console
    await log_in(client, await keys.create("phone", AGENT, {"call_centre"}))
    page = await client.get("/console/customer?customer_id=c-adult")
    body = {"customer_id": "c-adult", "channel": "web", "csrf": csrf_of(page)}
    refused = await client.post("/console/customer/decide", data=body)
    assert refused.status_code == 403 and "may not use channel &#39;web&#39;" in refused.text
    allowed = await client.post("/console/customer/decide", data=body | {"channel": "call_centre"})
    assert allowed.status_code == 200 and "data-decision-id" in allowed.text


async def test_a_post_without_the_csrf_token_is_a_403(console):
    client, keys = console
    await log_in(client, await keys.create("agent", AGENT))
    page = await client.get("/console/customer?customer_id=c-adult")
    body = {"customer_id": "c-adult", "channel": "call_centre"}
    for headers, extra in (({}, {}), ({}, {"csrf": "0" * 40}), ({"X-CSRF-Token": "f" * 40}, {})):
        refused = await client.post("/console/customer/decide", data=body | extra, headers=headers)
        assert refused.status_code == 403 and "CSRF token" in refused.text
    header = await client.post("/console/customer/decide", data=body, headers={"X-CSRF-Token": csrf_of(page)})
    assert header.status_code == 200 and "data-decision-id" in header.text


async def test_the_login_form_needs_its_csrf_token_too(console):
    client, keys = console
    await client.get("/console/login")
    refused = await client.post("/console/login", data={"key": await keys.create("agent", AGENT)})
    assert refused.status_code == 403


async def test_logging_out_ends_the_session_and_a_new_login_changes_the_token(console):
    client, keys = console
    key = await keys.create("agent", AGENT)
    await log_in(client, key)
    first = csrf_of(await client.get("/console/customer"))
    out = await client.post("/console/logout", data={"csrf": first})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert (await client.get("/console/customer")).status_code == 303
    await log_in(client, key)
    assert csrf_of(await client.get("/console/customer")) != first, "a new session, a new token"


async def test_a_revoked_key_is_sent_back_to_the_login_page(console, settings):
    client, keys = console
    key = await keys.create("agent", AGENT)
    await log_in(client, key)
    assert (await client.get("/console/customer")).status_code == 200
    await keys.store.revoke("agent")
    app_auth = client._transport.app.state.auth  # type: ignore[attr-defined]
    app_auth._cache.clear()  # the cache would trust the key for up to NBO_AUTH_CACHE_SECONDS
    answer = await client.get("/console/customer")
    assert answer.status_code == 303 and "expired=1" in answer.headers["location"]


async def test_the_development_mode_says_it_has_no_keys_and_still_checks_csrf(start):
    _, client = await start(auth="none")
    page = await client.get("/console/customer")
    assert page.status_code == 200 and "Development mode" in page.text and "without API keys" in page.text
    assert (await client.get("/console/login")).status_code == 303, "nothing to log in to"
    body = {"customer_id": "c-adult", "channel": "web"}
    assert (await client.post("/console/customer/decide", data=body)).status_code == 403
    allowed = await client.post("/console/customer/decide", data=body | {"csrf": csrf_of(page)})
    assert allowed.status_code == 200
