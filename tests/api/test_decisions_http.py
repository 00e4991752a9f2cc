"""End to end through HTTP on the embedded default: decisions, responses, policies, explanations, restarts."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx

from app.schemas import DecisionOut, OfferOut
from tests.api.doubles import GatedLocks, UnreachableHistory

WEB = {"customer_id": "c-adult", "channel": "web", "placement": "home_hero"}
STACK_CATALOGUE = Path(__file__).resolve().parents[1] / "fixtures" / "stack_catalogue"


async def decide(client: httpx.AsyncClient, **body: object) -> dict:
    response = await client.post("/v1/decisions", json={**WEB, **body})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_decision_for_a_known_customer_has_ranked_offers_with_treatments(client):
    decision = await decide(client, max_offers=3)
    assert decision["decision_id"].startswith("d-") and decision["channel"] == "web"
    assert 1 <= len(decision["offers"]) <= 3
    assert [o["rank"] for o in decision["offers"]] == list(range(1, len(decision["offers"]) + 1))
    first = decision["offers"][0]
    assert first["treatment"]["channel"] == "web" and first["treatment"]["title"]
    assert 0 < first["propensity"] < 1 and 0 < first["selection_probability"] <= 1
    # The demo explores (epsilon-greedy): a rank may be an exploration pick, logged with its probability.
    greedy = [o for o in decision["offers"] if o["selection_probability"] > 0.5]
    assert greedy and [o["priority"] for o in greedy] == sorted((o["priority"] for o in greedy), reverse=True)
    assert decision["catalogue_version"] and decision["model_version"]


async def test_unknown_customer_gets_a_decision_from_defaults(client):
    decision = await decide(client, customer_id="c-never-seen")
    assert any("unknown customer" in n for n in decision["notes"])


async def test_every_decision_is_in_the_history_before_it_is_returned(client):
    decision = await decide(client, max_offers=2)
    history = (await client.get("/v1/customers/c-adult/history")).json()["entries"]
    presented = {(e["decision_id"], e["offer_id"]) for e in history if e["outcome"] == "presented"}
    assert {(decision["decision_id"], o["offer_id"]) for o in decision["offers"]} <= presented


async def test_declined_offer_is_not_presented_again_within_its_cool_off_across_channels(client):
    first = await decide(client)
    offer_id = first["offers"][0]["offer_id"]
    answer = {
        "customer_id": "c-adult",
        "offer_id": offer_id,
        "channel": "call_centre",
        "outcome": "declined",
        "decision_id": first["decision_id"],
    }
    assert (await client.post("/v1/responses", json=answer)).json()["recorded"] is True
    for channel in ("mobile", "call_centre", "web"):
        later = await decide(client, channel=channel, max_offers=5, explain=True)
        assert offer_id not in [o["offer_id"] for o in later["offers"]]
        why = {e["offer_id"]: e for e in later["explanation"]}[offer_id]
        assert why["stage"] == "contact_policy" and why["policy"]["id"] == "decline_cool_off"


async def test_response_without_decision_id_is_attributed_to_the_latest_contact(client):
    first = await decide(client)
    offer_id = first["offers"][0]["offer_id"]
    answer = {"customer_id": "c-adult", "offer_id": offer_id, "channel": "branch", "outcome": "clicked"}
    body = (await client.post("/v1/responses", json=answer)).json()
    assert body["decision_id"] == first["decision_id"]


async def test_responses_are_idempotent(client):
    first = await decide(client)
    answer = {
        "customer_id": "c-adult",
        "offer_id": first["offers"][0]["offer_id"],
        "channel": "web",
        "outcome": "clicked",
        "decision_id": first["decision_id"],
    }
    one = (await client.post("/v1/responses", json=answer)).json()
    two = (await client.post("/v1/responses", json=answer)).json()
    assert one["recorded"] is True and two["recorded"] is False and one["response_id"] == two["response_id"]
    entries = (await client.get("/v1/customers/c-adult/history")).json()["entries"]
    assert sum(e["outcome"] == "clicked" for e in entries) == 1


async def test_frequency_cap_holds_across_channels(client):
    channels = ["web", "mobile", "call_centre"] * 4
    shown: dict[str, int] = {}
    for channel in channels:
        for offer in (await decide(client, channel=channel, max_offers=3))["offers"]:
            shown[offer["offer_id"]] = shown.get(offer["offer_id"], 0) + 1
    assert shown and max(shown.values()) <= 3  # offer_cap_7d: 3 presentations per offer per 7 days
    capped = (await decide(client, channel="web", max_offers=5, explain=True))["explanation"]
    assert any(e["stage"] == "contact_policy" and e["policy"]["id"] == "offer_cap_7d" for e in capped)


async def test_explanation_names_the_rule_that_dropped_an_offer(client):
    decision = await decide(client, explain=True)
    dropped = [e for e in decision["explanation"] if e["stage"] in ("eligibility", "applicability", "suitability")]
    assert dropped, "the demo customer should fail some rule"
    rule = dropped[0]["rule"]
    assert rule["name"] and rule["text"] and rule["owner"].split(":")[0] in ("group", "offer")
    assert rule["name"] in dropped[0]["reason"]
    assert {e["stage"] for e in decision["explanation"]} >= {"selected"}


async def test_history_survives_a_restart(start):
    _, client = await start()
    decision = await decide(client)
    _, restarted = await start()
    entries = (await restarted.get("/v1/customers/c-adult/history")).json()["entries"]
    assert decision["decision_id"] in {e["decision_id"] for e in entries}


async def test_events_update_real_time_features_that_rules_read(client):
    before = await decide(client, max_offers=10, explain=True)
    event = {"customer_id": "c-adult", "type": "card_declined", "attributes": {"amount": 54.2}}
    response = await client.post("/v1/events", json=event)
    assert response.status_code == 200, response.text
    assert "card_declined_count" in response.json()["updated"]
    after = await decide(client, max_offers=10, explain=True)
    stage = {e["offer_id"]: e["stage"] for e in after["explanation"]}
    earlier = {e["offer_id"]: e["stage"] for e in before["explanation"]}
    changed = [o for o in stage if stage[o] != earlier.get(o)]
    assert changed, "a declined card should change what is suitable"


async def test_outbound_contacts_share_the_history_and_its_caps(client):
    sends = {
        "contacts": [
            {"contact_id": f"mail-{i}", "customer_id": "c-adult", "offer_id": offer, "channel": "email"}
            for i, offer in enumerate(["savings_high_yield", "card_cashback"])
        ]
    }
    response = (await client.post("/v1/contacts", json=sends)).json()
    assert (response["received"], response["recorded"]) == (2, 2)
    assert [s["recorded"] for s in response["contacts"]] == [True, True]
    again = (await client.post("/v1/contacts", json=sends)).json()
    assert (again["received"], again["recorded"]) == (2, 0)
    email = await decide(client, channel="email", max_offers=3, explain=True)
    assert email["offers"] and all(o["group"] == "service" for o in email["offers"])  # outbound_weekly_cap: 2 a week
    assert any(e.get("policy", {}).get("id") == "outbound_weekly_cap" for e in email["explanation"])


async def test_offers_health_readiness_and_metrics(client):
    offers = (await client.get("/v1/offers")).json()
    assert len(offers["offers"]) >= 25 and offers["catalogue_version"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    await decide(client)
    text = (await client.get("/metrics")).text
    assert 'nbo_decisions_total{channel="web"' in text
    assert 'route="/v1/decisions"' in text and "c-adult" not in text


async def test_a_history_that_cannot_record_gets_503_and_nothing_is_acknowledged(start):
    _, client = await start(adapt=lambda a: replace(a, history=UnreachableHistory(a.history)))
    response = await client.post("/v1/decisions", json=WEB)
    assert response.status_code == 503 and response.json()["error"] == "unavailable"
    assert response.headers["retry-after"] == "1"
    answer = {"customer_id": "c-adult", "offer_id": "card_gold", "channel": "web", "outcome": "clicked"}
    assert (await client.post("/v1/responses", json=answer)).status_code == 503


async def test_beyond_its_in_flight_limit_the_service_sheds_load_with_503(start):
    gate = asyncio.Event()  # keeps the first decisions in progress until set
    _, client = await start(adapt=lambda a: replace(a, locks=GatedLocks(a.locks, gate)), max_in_flight=2)
    first = [asyncio.create_task(client.post("/v1/decisions", json={**WEB, "customer_id": f"c-{i}"})) for i in range(2)]
    await asyncio.sleep(0.05)
    shed = await client.post("/v1/decisions", json=WEB)
    assert shed.status_code == 503 and "overloaded" in shed.text and shed.headers["retry-after"]
    gate.set()
    assert [r.status_code for r in await asyncio.gather(*first)] == [200, 200]
    assert (await client.post("/v1/decisions", json=WEB)).status_code == 200


async def test_not_displayed_releases_the_presentation_and_its_budget_unit(start):
    app, client = await start(catalogue_dir=STACK_CATALOGUE)  # advice_call: always first, 100 a day
    service = app.state.service
    decision = await decide(client)
    assert decision["offers"][0]["offer_id"] == "advice_call"
    advice = service.catalogue.offer("advice_call")
    key, counter = service.budgets.key(advice, service.clock()), service.budgets.counter
    assert await counter.used(key) == 1
    answer = {
        "customer_id": "c-adult",
        "offer_id": "advice_call",
        "channel": "web",
        "outcome": "not_displayed",
        "decision_id": decision["decision_id"],
    }
    assert (await client.post("/v1/responses", json=answer)).json()["recorded"] is True
    assert await counter.used(key) == 0
    assert (await client.post("/v1/responses", json=answer)).json()["recorded"] is False
    assert await counter.used(key) == 0  # given back once, not twice


async def test_every_decision_answer_is_exactly_a_decision_out(client):
    """The route encodes its answer with orjson, not through the response model: it must still be one,
    field for field (the OpenAPI document promises DecisionOut)."""
    for body in ({"max_offers": 3, "explain": True}, {"max_offers": 1}, {"customer_id": "c-never-seen"}):
        answer = await decide(client, **body)
        model = DecisionOut.model_validate(answer)
        assert list(answer) == list(DecisionOut.model_fields)
        assert all(list(offer) == list(OfferOut.model_fields) for offer in answer["offers"])
        assert model.model_dump(mode="json") == answer


async def test_the_stage_breakdown_of_a_decision_adds_up_to_its_request(client):
    """Every fine stage from the HTTP parse to the metrics is a lap of one clock: they add up to the total."""
    for _ in range(3):
        await decide(client, max_offers=2)
    text = (await client.get("/metrics")).text
    stages: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("nbo_decision_stage_detail_seconds_sum"):
            stages[line.split('stage="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    total = stages.pop("total")
    expected = {"http", "lock_and_load", "features", "rules", "policies", "scoring", "arbitration", "budgets",
                "to_record", "summary_append_unlock", "history_commit", "observe", "serialisation", "send", "metrics"}
    assert expected <= set(stages)
    assert 0.5 * total <= sum(stages.values()) <= total
