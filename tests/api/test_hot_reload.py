"""Hot reload through HTTP: promotions and rollbacks reach a running service by the pointer poll, a broken
model or catalogue is refused and the last good one keeps serving, and a reload never breaks serving."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import pytest

from app.settings import DEMO_CATALOGUE
from decisioning.catalogue import FeatureSpec, FeatureType
from models.registry import ModelRegistry
from models.synthetic import NOW, synthetic_offers, synthetic_training_set
from models.training import TrainingConfig, train_model
from tests.api.doubles import GatedLocks

WEB = {"customer_id": "c-adult", "channel": "web", "placement": "home_hero"}
SPECS = (FeatureSpec("age", FeatureType.NUMBER, 40), FeatureSpec("income_monthly", FeatureType.NUMBER, 2500))
POLL = 0.1


@pytest.fixture(scope="module")
def trained():
    data = synthetic_training_set(SPECS, synthetic_offers(4), rows=2_000)
    return [train_model(data, "nbo", TrainingConfig(num_trees=n, min_data_in_leaf=20)) for n in (2, 4)]


@pytest.fixture
def registry(settings, trained) -> ModelRegistry:
    registry = ModelRegistry(settings.model_dir)
    for i, model in enumerate(trained):
        registry.register(model.model_text(), model.metadata, now=NOW + 60 * i)
    return registry


@pytest.fixture
def versions(registry) -> list[str]:
    return [m.version for m in registry.list_versions("nbo")]


async def decide(client: httpx.AsyncClient, **body: object) -> dict:
    response = await client.post("/v1/decisions", json={**WEB, **body})
    assert response.status_code == 200, response.text
    return response.json()


async def served_within(client: httpx.AsyncClient, version: str, seconds: float) -> float:
    """Decide until a decision carries `version`; how long it took (fails after `seconds`)."""
    started = time.monotonic()
    while (await decide(client))["model_version"] != version:
        assert time.monotonic() - started < seconds, f"{version} not served within {seconds}s"
        await asyncio.sleep(POLL / 4)
    return time.monotonic() - started


async def reloads(client: httpx.AsyncClient, what: str, outcome: str) -> float:
    text = (await client.get("/metrics")).text
    line = f'nbo_reloads_total{{outcome="{outcome}",what="{what}"}}'
    return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)), 0.0)


async def test_a_promotion_and_a_rollback_reach_the_running_service_within_the_poll_interval(
    start, registry, versions
):
    first, second = versions
    _, client = await start(model_poll_seconds=POLL, model_compiled=False)
    assert (await decide(client))["model_version"] == first
    registry.promote("nbo", second)
    assert await served_within(client, second, seconds=5.0) < 2.0
    registry.rollback("nbo")
    await served_within(client, first, seconds=5.0)
    assert await reloads(client, "model", "applied") == 2


async def test_a_broken_pointer_file_is_refused_and_the_last_good_model_keeps_serving(start, registry, versions):
    first, second = versions
    _, client = await start(model_poll_seconds=POLL, model_compiled=False)
    registry.pointers_path("nbo").write_text("{not json")
    await asyncio.sleep(POLL * 5)
    assert (await decide(client))["model_version"] == first
    assert await reloads(client, "model", "refused") == 1  # once: not retried until the pointer changes
    registry.pointers_path("nbo").unlink()  # a shared volume gone: not a reason to drop to the priors
    await asyncio.sleep(POLL * 5)
    assert (await decide(client))["model_version"] == first
    assert await reloads(client, "model", "refused") == 2
    # Repaired (a broken file cannot be read back to promote from: an operator writes it anew).
    registry.pointers_path("nbo").write_bytes(orjson.dumps({"champion": second}))
    await served_within(client, second, seconds=5.0)


async def test_an_unreadable_model_file_is_refused_and_the_last_good_model_keeps_serving(start, registry, versions):
    first, second = versions
    _, client = await start(model_poll_seconds=POLL, model_compiled=False)
    (registry.directory("nbo", second) / "model.txt").write_text("this is not a LightGBM model")
    registry.promote("nbo", second)
    await asyncio.sleep(POLL * 5)
    assert (await decide(client))["model_version"] == first
    assert await reloads(client, "model", "refused") == 1
    refused = await client.post("/v1/admin/reload")
    assert refused.status_code == 422 and refused.json()["detail"][0]["file"] == "model"
    assert (await decide(client))["model_version"] == first


async def test_a_decision_in_flight_finishes_with_the_scorer_it_started_with(start, registry, versions):
    first, second = versions
    gate = asyncio.Event()
    app, client = await start(lambda a: replace(a, locks=GatedLocks(a.locks, gate)), model_compiled=False)
    in_flight = asyncio.create_task(client.post("/v1/decisions", json=WEB))
    await asyncio.sleep(0.05)  # the request is inside the decision path, waiting for the customer's lock
    registry.promote("nbo", second)
    assert await app.state.reloader.poll_model()
    gate.set()
    assert (await in_flight).json()["model_version"] == first
    assert (await decide(client))["model_version"] == second


@pytest.fixture
def catalogue_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEMO_CATALOGUE, tmp_path / "catalogue"))


async def test_reload_swaps_a_valid_catalogue_and_refuses_a_broken_one_with_its_problems(start, catalogue_dir):
    _, client = await start(catalogue_dir=catalogue_dir)
    before = (await decide(client))["catalogue_version"]
    offers = catalogue_dir / "offers.yaml"
    offers.write_text(offers.read_text().replace("    weight: 1.1\n", "    weight: 1.2\n", 1))
    answer = await client.post("/v1/admin/reload")
    assert answer.status_code == 200, answer.text
    changed = answer.json()["catalogue_version"]
    assert changed != before and (await decide(client))["catalogue_version"] == changed
    assert (await client.get("/v1/offers")).json()["catalogue_version"] == changed

    offers.write_text(offers.read_text().replace("income_monthly >= 3500", "income_monthly >= ", 1))
    refused = await client.post("/v1/admin/reload")
    assert refused.status_code == 422 and refused.json()["error"] == "reload_refused"
    problem = refused.json()["detail"][0]
    assert problem["file"].endswith("offers.yaml") and "card_gold" in problem["location"]
    assert "income" in problem["problem"]  # the rule, as `nbo catalogue validate` names it
    assert (await decide(client))["catalogue_version"] == changed  # the last good one keeps serving
    assert await reloads(client, "catalogue", "refused") == 1


async def test_with_no_model_the_service_learns_from_the_first_responses(start):
    app, client = await start()
    # Unknown customers all get the same candidates (decided on defaults): one offer to learn about.
    first = await decide(client, customer_id="c-new-0", explain=True)
    assert first["model_version"] == "prior"
    offer_id, prior = first["offers"][0]["offer_id"], first["offers"][0]["propensity"]
    accepted = 0
    for i in range(1, 12):
        d = await decide(client, customer_id=f"c-new-{i}")
        if offer_id in [o["offer_id"] for o in d["offers"]]:
            body = {"customer_id": f"c-new-{i}", "offer_id": offer_id, "channel": "web", "outcome": "accepted",
                    "decision_id": d["decision_id"]}  # fmt: skip
            assert (await client.post("/v1/responses", json=body)).status_code == 200
            accepted += 1
    assert accepted >= 5
    assert await app.state.reloader.refresh_posteriors()
    later = await decide(client, customer_id="c-new-99", explain=True)
    scores = {e["offer_id"]: e["scores"]["propensity"] for e in later["explanation"] if e.get("scores")}
    assert later["model_version"] == "prior-beta"
    assert scores[offer_id] > prior * 3  # from its prior toward the observed rate
