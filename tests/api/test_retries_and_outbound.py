"""Through HTTP on the embedded default: idempotent retries, bad context isolated, outbound confirmed once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

WEB = {"customer_id": "c-adult", "channel": "web", "placement": "home_hero"}


def deep(levels: int) -> dict:
    nested: dict = {"leaf": 1}
    for _ in range(levels):
        nested = {"x": nested}
    return nested


async def history_of(client: httpx.AsyncClient, customer_id: str = "c-adult") -> list[dict]:
    return (await client.get(f"/v1/customers/{customer_id}/history")).json()["entries"]


HISTORIES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]


@pytest.fixture(params=HISTORIES)
def history_url(request: pytest.FixtureRequest, settings) -> str:
    """The embedded SQLite history, then the real PostgreSQL (a sync fixture: it runs admin SQL)."""
    return settings.database_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
async def any_client(history_url: str, start) -> httpx.AsyncClient:
    _, client = await start(database_url=history_url)
    return client


async def test_a_retried_request_id_returns_the_same_decision_recorded_once(any_client):
    client = any_client
    body = {**WEB, "max_offers": 2, "request_id": "page-view-1"}
    first = await client.post("/v1/decisions", json=body)
    again = await client.post("/v1/decisions", json=body)
    assert first.status_code == again.status_code == 200, again.text
    one, two = first.json(), again.json()
    assert two["decision_id"] == one["decision_id"] and two["replayed"] is True and one["replayed"] is False
    assert [(o["offer_id"], o["rank"], o["treatment"]) for o in two["offers"]] == [
        (o["offer_id"], o["rank"], o["treatment"]) for o in one["offers"]
    ]
    presented = [e for e in await history_of(client) if e["outcome"] == "presented"]
    assert len(presented) == len(one["offers"]) >= 1
    assert {e["decision_id"] for e in presented} == {one["decision_id"]}


async def test_concurrent_retries_of_one_request_all_get_the_one_decision(any_client):
    client = any_client
    body = {**WEB, "request_id": "page-view-2"}
    answers = await asyncio.gather(*(client.post("/v1/decisions", json=body) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert len({a.json()["decision_id"] for a in answers}) == 1
    assert sum(a.json()["replayed"] is False for a in answers) == 1


async def test_bad_context_values_get_422_and_fail_no_other_decision(any_client):
    client = any_client
    good = [client.post("/v1/decisions", json={**WEB, "customer_id": f"c-{i}"}) for i in range(20)]
    huge = client.post("/v1/decisions", json={**WEB, "context": {"basket": 2**70}})
    nested = client.post("/v1/decisions", json={**WEB, "context": deep(500)})
    answers = await asyncio.gather(huge, nested, *good)
    assert [a.status_code for a in answers] == [422, 422] + [200] * 20
    for answer, field in zip(answers[:2], ("basket", "x"), strict=True):
        assert answer.json()["detail"][0]["loc"] == ["body", "context", field]


async def test_an_outbound_decision_confirmed_by_the_campaign_tool_counts_once(client):
    email = (await client.post("/v1/decisions", json={**WEB, "channel": "email", "max_offers": 2})).json()
    assert email["direction"] == "outbound" and email["offers"]
    sends = [
        {"contact_id": f"mail-{o['offer_id']}", "customer_id": "c-adult", "offer_id": o["offer_id"],
         "channel": "email", "decision_id": email["decision_id"]}
        for o in email["offers"]
    ]  # fmt: skip
    answer = (await client.post("/v1/contacts", json={"contacts": sends})).json()
    assert answer["recorded"] == len(sends)
    assert {s["confirms"] for s in answer["contacts"]} == {email["decision_id"]}
    outcomes = sorted(e["outcome"] for e in await history_of(client))
    assert outcomes == sorted(["selected"] * len(sends) + ["sent"] * len(sends))
    # The confirmation names the decision; a response by decision id reaches it.
    response = {"customer_id": "c-adult", "offer_id": sends[0]["offer_id"], "channel": "email",
                "outcome": "clicked", "decision_id": email["decision_id"]}  # fmt: skip
    assert (await client.post("/v1/responses", json=response)).json()["decision_id"] == email["decision_id"]


async def test_a_send_reported_without_decision_over_a_cap_is_recorded_and_named(client):
    sends = [
        {"contact_id": f"mail-{i}", "customer_id": "c-adult", "offer_id": offer, "channel": "email"}
        for i, offer in enumerate(["savings_high_yield", "card_cashback", "insurance_travel"])
    ]
    answer = (await client.post("/v1/contacts", json={"contacts": sends})).json()
    assert answer["recorded"] == 3
    assert "outbound_weekly_cap" in answer["contacts"][2]["over_policies"]
    assert answer["contacts"][0]["over_policies"] == []


async def test_a_confirmation_of_an_unknown_selection_names_the_field(client):
    send = {"contact_id": "m", "customer_id": "c-adult", "offer_id": "card_cashback", "channel": "email",
            "decision_id": "d-nothing"}  # fmt: skip
    answer = await client.post("/v1/contacts", json={"contacts": [send]})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "contacts", "0", "decision_id"]
