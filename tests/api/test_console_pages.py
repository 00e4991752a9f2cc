"""The console's pages through HTTP (embedded default, development mode without keys): what each shows,
and bad input answered with a message in the page, never a 500."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from app.settings import DEMO_CATALOGUE

STACK = Path(__file__).resolve().parents[1] / "fixtures" / "stack_catalogue"


@pytest.fixture
async def client(start) -> httpx.AsyncClient:
    _, client = await start(auth="none", catalogue_dir=STACK)
    return client


async def csrf(client: httpx.AsyncClient, path: str = "/console/customer") -> str:
    page = await client.get(path)
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', page.text)
    assert found, page.text[:300]
    return found.group(1)


async def test_the_customer_page_shows_features_with_their_data_quality(client):
    page = await client.get("/console/customer?customer_id=c-new")
    assert page.status_code == 200
    assert "unknown customer: every value is a default" in page.text
    assert re.search(r'data-feature="age".*?defaulted', page.text, re.S), "an unknown customer's age is defaulted"
    assert "No contact yet." in page.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"customer_id": "c 1", "channel": "web"}, "customer id: String should match pattern"),
        ({"customer_id": "c-1", "channel": "fax"}, "unknown channel &#39;fax&#39;"),
        ({"customer_id": "c-1", "channel": "web", "intent": "Complaint!"}, "intent: String should match pattern"),
    ],
)
async def test_a_bad_decision_form_is_a_message_not_an_error(client, body: dict[str, str], message: str):
    answer = await client.post("/console/customer/decide", data=body | {"csrf": await csrf(client)})
    assert answer.status_code == 422 and message in answer.text and "c 1" not in answer.text


async def test_a_response_to_an_offer_the_decision_did_not_present_is_refused_in_words(client):
    token = await csrf(client)
    body = {"customer_id": "c-1", "offer_id": "savings_plus", "channel": "web", "decision_id": "d-nope",
            "outcome": "declined", "csrf": token}  # fmt: skip
    refused = await client.post("/console/customer/respond", data=body)
    assert refused.status_code == 422 and 'class="error"' in refused.text
    wrong = await client.post("/console/customer/respond", data=body | {"outcome": "presented"})
    assert wrong.status_code == 422 and "outcome: one of accepted, clicked, declined, ignored" in wrong.text


async def test_the_catalogue_validates_a_directory_on_the_server(client, tmp_path: Path):
    token = await csrf(client, "/console/catalogue")
    valid = await client.post("/console/catalogue/validate", data={"path": str(DEMO_CATALOGUE), "csrf": token})
    assert valid.status_code == 200 and "valid, no problem found" in valid.text
    draft = tmp_path / "draft"
    shutil.copytree(STACK, draft)
    offers = (draft / "offers.yaml").read_text()
    (draft / "offers.yaml").write_text(offers.replace("group: savings", "group: savngs", 1))
    broken = await client.post("/console/catalogue/validate", data={"path": str(draft), "csrf": token})
    assert broken.status_code == 200 and "1 problem" in broken.text
    assert f"{draft}/offers.yaml" in broken.text and "offer savings_plus (offers.yaml entry 2)" in broken.text
    assert "unknown group &#39;savngs&#39;" in broken.text
    missing = await client.post("/console/catalogue/validate", data={"path": str(tmp_path / "no"), "csrf": token})
    assert "catalogue directory not found" in missing.text
    empty = await client.post("/console/catalogue/validate", data={"csrf": token})
    assert empty.status_code == 422 and "give a directory or upload the files" in empty.text


async def test_uploads_must_be_yaml(client):
    token = await csrf(client, "/console/catalogue")
    files = [("files", ("notes.txt", b"hello", "text/plain"))]
    answer = await client.post("/console/catalogue/validate", data={"csrf": token}, files=files)
    assert "not a YAML file" in answer.text


async def test_the_catalogue_page_shows_budgets_used_and_left(client):
    token = await csrf(client)
    for _ in range(3):
        await client.post("/console/customer/decide", data={"customer_id": "c-1", "channel": "web", "csrf": token})
    page = await client.get("/console/catalogue")
    assert "<b>3</b> used, <b>97</b> left" in page.text, "each decision presented advice_call: one unit each"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"kind": "lever", "target": "nope", "value": "2"}, "offer: unknown offer &#39;nope&#39;"),
        ({"kind": "lever", "target": "savings_plus", "value": "lots"}, "lever: a number"),
        ({"kind": "colour", "target": "savings_plus", "value": "2"}, "change: one of lever, cap, budget"),
        ({"kind": "cap", "target": "decline_cool_off", "value": "0"}, "threshold: a number above 0"),
    ],
)
async def test_a_what_if_refuses_a_draft_it_cannot_make(client, form: dict[str, str], message: str):
    answer = await client.post("/console/whatif/run", data=form | {"csrf": await csrf(client, "/console/whatif")})
    assert answer.status_code == 422 and message in answer.text


async def test_a_what_if_on_an_empty_history_says_there_is_nothing_to_estimate(client):
    token = await csrf(client, "/console/whatif")
    form = {"kind": "cap", "target": "decline_cool_off", "value": "2", "csrf": token}
    answer = await client.post("/console/whatif/run", data=form)
    assert answer.status_code == 200 and "0 logged decisions" in answer.text and "No value estimate" in answer.text


async def test_the_live_figures_are_json(client):
    token = await csrf(client)
    await client.post("/console/customer/decide", data={"customer_id": "c-1", "channel": "web", "csrf": token})
    data = (await client.get("/console/live/data")).json()
    assert data["decisions"] == 1.0 and data["serving"]["model"]
    advice = {"offer": "advice_call", "presented": 1.0, "accepted": 0, "contacts": 1, "acceptance_rate": 0.0}
    assert advice in data["offers"]
