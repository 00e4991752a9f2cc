"""Real-time triggers through HTTP, in the embedded mode and on the real Redis: an event that fires a
trigger yields one outbound decision on the stream (the in-process queue), a second identical event
inside the period yields none, and a customer at the channel's cap yields none."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from features.redis_client import redis_client
from tests.api.conftest import ADULT, Started
from tests.contract.test_webhook import Receiver, receiver  # noqa: F401 - the receiver fixture

REDIS_URL = os.environ.get("NBO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEMO = Path(__file__).resolve().parents[2] / "policies" / "demo"
SECRET = "an-http-test-webhook-secret-0123"
SMS_TRIGGER = """
triggers:
  competitor_sms:
    when: transfer_out_competitor_30d >= 1
    channel: sms
    period: {days: 7}
"""
TRANSFER = {"type": "transfer_out", "attributes": {"amount": 900, "description": "Transfer to Revolut"}}


@pytest.fixture
def sms_catalogue(tmp_path: Path) -> Path:
    """The demo bank with one trigger: a transfer to a competitor starts an SMS decision (SMS cap: 1 a day)."""
    target = tmp_path / "catalogue"
    shutil.copytree(DEMO, target)
    (target / "triggers.yaml").write_text(SMS_TRIGGER)
    return target


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.services)])
async def stack(
    request: pytest.FixtureRequest, start: Callable[..., Awaitable[Started]], sms_catalogue: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Callable[[], Awaitable[list[dict[str, Any]]]]]]:
    """The service and a reader of what it published: the Redis Stream itself, or the in-process queue
    through GET /v1/triggers/deliveries."""
    if request.param == "embedded":
        app, client = await start(catalogue_dir=sms_catalogue)
        await app.state.service.cache.put_features([("c-1", ADULT), ("c-2", ADULT)], at=time.time())

        async def queued() -> list[dict[str, Any]]:
            answer = await client.get("/v1/triggers/deliveries")
            assert answer.status_code == 200
            return [d["delivery"] for d in answer.json()["deliveries"]]

        yield client, queued
        return
    prefix = f"nbotest-trig-{uuid.uuid4().hex[:8]}"
    app, client = await start(catalogue_dir=sms_catalogue, redis_url=REDIS_URL, redis_prefix=prefix, auth="none")
    await app.state.service.cache.put_features([("c-1", ADULT), ("c-2", ADULT)], at=time.time())
    raw = redis_client(REDIS_URL)

    async def streamed() -> list[dict[str, Any]]:
        return [orjson.loads(fields[b"delivery"]) for _, fields in await raw.xrange(f"{prefix}:triggers")]

    try:
        yield client, streamed
    finally:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()


async def event(client: httpx.AsyncClient, customer: str) -> dict[str, Any]:
    answer = await client.post("/v1/events", json={"customer_id": customer, **TRANSFER})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_an_event_fires_one_outbound_decision_and_a_second_within_the_period_none(stack):
    client, published = stack
    first = await event(client, "c-1")
    [fired] = first["triggered"]
    assert fired["trigger"] == "competitor_sms" and fired["reason"] is None and len(fired["offers"]) == 1
    [delivery] = await published()
    assert (delivery["customer_id"], delivery["channel"]) == ("c-1", "sms")
    assert delivery["decision_id"] == fired["decision_id"]
    assert [o["offer_id"] for o in delivery["offers"]] == fired["offers"] and delivery["offers"][0]["text"]
    # The decision is in the history as an outbound selection, as POST /v1/decisions records one.
    history = (await client.get("/v1/customers/c-1/history")).json()["entries"]
    selected = [e for e in history if e["decision_id"] == fired["decision_id"]]
    assert [(e["channel"], e["direction"], e["outcome"]) for e in selected] == [("sms", "outbound", "selected")]

    [again] = (await event(client, "c-1"))["triggered"]
    assert again["reason"] == "period" and again["decision_id"] is None
    assert len(await published()) == 1
    metrics = (await client.get("/metrics")).text
    assert 'nbo_triggers_fired_total{channel="sms",trigger="competitor_sms"} 1.0' in metrics
    assert 'nbo_triggers_suppressed_total{reason="period",trigger="competitor_sms"} 1.0' in metrics


async def test_a_customer_at_the_sms_cap_gets_no_delivery(stack):
    client, published = stack
    sent = {"contact_id": "sms-1", "customer_id": "c-2", "offer_id": "card_gold", "channel": "sms"}
    assert (await client.post("/v1/contacts", json={"contacts": [sent]})).status_code == 200
    [suppressed] = (await event(client, "c-2"))["triggered"]
    assert suppressed["reason"] == "contact_policy" and suppressed["offers"] == []
    assert suppressed["decision_id"] is not None  # the empty decision is recorded, as every decision is
    assert await published() == []
    metrics = (await client.get("/metrics")).text
    assert 'nbo_triggers_suppressed_total{reason="contact_policy",trigger="competitor_sms"} 1.0' in metrics


async def test_the_deliveries_endpoint_pages_by_id_and_refuses_a_bad_one(start, sms_catalogue):
    app, client = await start(catalogue_dir=sms_catalogue)
    rows = [(f"c-{i}", ADULT) for i in range(3)]
    await app.state.service.cache.put_features(rows, at=time.time())
    for customer, _ in rows:
        await event(client, customer)
    page = (await client.get("/v1/triggers/deliveries", params={"limit": 2})).json()
    assert [d["delivery"]["customer_id"] for d in page["deliveries"]] == ["c-0", "c-1"] and page["last_id"] == "2"
    rest = (await client.get("/v1/triggers/deliveries", params={"after": page["last_id"]})).json()
    assert [d["delivery"]["customer_id"] for d in rest["deliveries"]] == ["c-2"]
    bad = await client.get("/v1/triggers/deliveries", params={"after": "1-0"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "after"


async def test_a_configured_webhook_receives_the_signed_delivery(start, sms_catalogue, receiver: Receiver):  # noqa: F811
    app, client = await start(
        catalogue_dir=sms_catalogue, trigger_webhook_url=receiver.url, trigger_webhook_secret=SecretStr(SECRET)
    )
    await app.state.service.cache.put_features([("c-1", ADULT)], at=time.time())
    receiver.script = [502]  # the first attempt fails: the background worker retries
    [fired] = (await event(client, "c-1"))["triggered"]
    assert fired["published"] == ["queue", "webhook"]
    await app.state.service.close()  # waits for the queued webhook deliveries
    assert len(receiver.requests) == 2
    headers, body, _ = receiver.requests[-1]
    signed = headers["x-nbo-timestamp"].encode() + b"." + body
    assert headers["x-nbo-signature"] == "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert orjson.loads(body)["decision_id"] == fired["decision_id"]
