"""Contact policies on the production stack: the history is PostgreSQL, the hot path reads Redis summaries.

A decline recorded from one channel suppresses the offer in every other channel for its cool-off, and
still does after the customer's summary is dropped from Redis: the next decision rebuilds it from
PostgreSQL (and stores it back) instead of deciding on an empty history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServiceProcess, Stack

pytestmark = pytest.mark.services  # real Redis and PostgreSQL, never skipped

COOLED = "advice_call"  # wins every decision until declined (tests/fixtures/stack_catalogue)


async def decide(client: httpx.AsyncClient, customer_id: str, channel: str) -> dict[str, Any]:
    body = {"customer_id": customer_id, "channel": channel, "max_offers": 3, "explain": True}
    response = await client.post("/v1/decisions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def offer_ids(decision: dict[str, Any]) -> list[str]:
    return [o["offer_id"] for o in decision["offers"]]


def assert_cooled_off(decision: dict[str, Any]) -> None:
    assert COOLED not in offer_ids(decision)
    why = {e["offer_id"]: e for e in decision["explanation"]}[COOLED]
    assert why["stage"] == "contact_policy" and why["policy"]["id"] == "decline_cool_off", why


@pytest.fixture
async def client(
    stack: Stack, serve: Callable[..., ServiceProcess], tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    stack.load_customers(tmp_path, 2)
    server = serve(workers=1)
    async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=server.auth) as client:
        yield client


async def test_a_decline_holds_across_channels_and_survives_the_loss_of_the_redis_summary(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    customer, other = "c-000001", "c-000002"
    first = await decide(client, customer, "web")
    assert offer_ids(first)[0] == COOLED
    answer = {"customer_id": customer, "offer_id": COOLED, "channel": "call_centre", "outcome": "declined",
              "decision_id": first["decision_id"]}  # fmt: skip
    assert (await client.post("/v1/responses", json=answer)).json()["recorded"] is True

    for channel in ("mobile", "call_centre", "email", "web"):
        assert_cooled_off(await decide(client, customer, channel))
    assert offer_ids(await decide(client, other, "mobile"))[0] == COOLED  # the decline is this customer's only

    cache = stack.cache()
    assert await stack.redis.delete(cache.summary_key(customer)) == 1
    assert_cooled_off(await decide(client, customer, "mobile"))
    rebuilt = await cache.load(customer)
    assert rebuilt.summary is not None, "the rebuilt summary was not stored back in Redis"
    outcomes = {(e.offer_id, e.outcome.value) for e in rebuilt.summary.events}
    assert {(COOLED, "presented"), (COOLED, "declined")} <= outcomes
