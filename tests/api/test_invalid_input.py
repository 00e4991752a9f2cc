"""Bad input gets a 422 naming the field and the reason; never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

GOOD = {"customer_id": "c-adult", "channel": "web"}


def fields(response) -> list[str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation"
    return [".".join(str(p) for p in d["loc"]) for d in body["detail"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"max_offers": -1}, "body.max_offers"),
        ({"max_offers": 0}, "body.max_offers"),
        ({"max_offers": "many"}, "body.max_offers"),
        ({"max_offers": 1000}, "body.max_offers"),
        ({"channel": "carrier_pigeon"}, "body.channel"),
        ({"channel": 7}, "body.channel"),
        ({"customer_id": ""}, "body.customer_id"),
        ({"customer_id": "x" * 500}, "body.customer_id"),
        ({"customer_id": None}, "body.customer_id"),
        ({"explain": "please"}, "body.explain"),
        ({"context": {"intent": "Not An Intent!"}}, "body.context.intent"),
        ({"context": "web"}, "body.context"),
        ({"surprise": 1}, "body.surprise"),
    ],
)
async def test_decision_input_errors_name_the_field(client, change, field):
    response = await client.post("/v1/decisions", json={**GOOD, **change})
    assert field in fields(response)


async def test_missing_field_and_broken_json(client):
    assert "body.channel" in fields(await client.post("/v1/decisions", json={"customer_id": "c"}))
    broken = await client.post(
        "/v1/decisions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422


@pytest.mark.parametrize("framing", ["declared", "chunked"])
async def test_oversized_body_gets_a_413_naming_the_body(client, framing: str):
    huge = json.dumps({**GOOD, "context": {"page": "x" * 100_000}}).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is found while reading
        for start in range(0, len(huge), 16_384):
            yield huge[start : start + 16_384]

    content = huge if framing == "declared" else chunks()
    response = await client.post("/v1/decisions", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json() == {
        "error": "too_large",
        "detail": [{"loc": ["body"], "type": "too_large", "msg": response.json()["detail"][0]["msg"]}],
    }
    assert "exceeds the limit of 65536" in response.json()["detail"][0]["msg"]


async def test_bad_responses_events_and_contacts(client):
    bad_outcome = {"customer_id": "c", "offer_id": "card_gold", "channel": "web", "outcome": "loved_it"}
    assert "body.outcome" in fields(await client.post("/v1/responses", json=bad_outcome))
    unknown_offer = {**bad_outcome, "offer_id": "no_such_offer", "outcome": "clicked"}
    assert "body.offer_id" in fields(await client.post("/v1/responses", json=unknown_offer))
    unknown_event = {"customer_id": "c", "type": "teleported"}
    assert "body.type" in fields(await client.post("/v1/events", json=unknown_event))
    rows = {
        "contacts": [
            {"contact_id": "m1", "customer_id": "c", "offer_id": "card_gold", "channel": "email"},
            {"contact_id": "m2", "customer_id": "c", "offer_id": "nope", "channel": "email"},
        ]
    }
    assert "body.contacts.1.offer_id" in fields(await client.post("/v1/contacts", json=rows))


async def test_response_to_an_unknown_decision_is_404(client):
    answer = {
        "customer_id": "c-adult",
        "offer_id": "card_gold",
        "channel": "web",
        "outcome": "clicked",
        "decision_id": "d-does-not-exist",
    }
    response = await client.post("/v1/responses", json=answer)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_error_bodies_do_not_echo_submitted_values(client):
    response = await client.post("/v1/decisions", json={**GOOD, "customer_id": "jane.doe@example.com!"})
    assert "body.customer_id" in fields(response) and "jane.doe" not in response.text


async def test_a_body_that_is_not_text_is_a_422_in_the_usual_shape(client):
    # Found by the schemathesis run: FastAPI answered 400 {"detail": "There was an error parsing the body"}.
    for body in (b"\x80", b"\x00" * 9):
        answer = await client.post("/v1/decisions", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert answer.json() == {
            "error": "validation",
            "detail": [{"loc": ["body"], "msg": "the body could not be parsed as JSON", "type": "json_invalid"}],
        }


async def test_an_unknown_path_or_method_answers_in_the_error_shape(client):
    assert (await client.get("/v1/nothing")).json() == {"error": "not_found", "detail": "Not Found"}
    refused = await client.delete("/v1/decisions")
    assert refused.status_code == 405 and refused.json()["error"] == "method_not_allowed"
    assert refused.headers["allow"] == "POST"
