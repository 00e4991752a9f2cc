"""The learning loop closed through HTTP: decide -> record -> respond -> train -> promote -> decide.

A service with no model serves decisions on priors. Customers answer by a rule that depends on a feature
(high card spend accepts the cashback card, everyone declines the rest); `nbo train` learns it from the
service's own history, `nbo models promote` makes it the champion, and, without a restart, new decisions
carry the new model version and put the card first for the customers the rule favours.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

CATALOGUE = Path(__file__).resolve().parents[1] / "fixtures" / "learning_catalogue"
CUSTOMERS = 300


def spender(i: int) -> bool:
    return i % 2 == 0


def features(i: int) -> dict[str, object]:
    return {"age": 40, "card_spend_30d": 3000.0 if spender(i) else 50.0, "segment": "mass"}


def nbo(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def decide_all(client: httpx.AsyncClient, prefix: str) -> dict[int, dict]:
    limit = asyncio.Semaphore(32)  # concurrent, within the service's in-flight limit

    async def one(i: int) -> tuple[int, dict]:
        body = {"customer_id": f"{prefix}-{i}", "channel": "web", "max_offers": 2}
        async with limit:
            answer = await client.post("/v1/decisions", json=body)
        assert answer.status_code == 200, answer.text
        return i, answer.json()

    return dict(await asyncio.gather(*(one(i) for i in range(CUSTOMERS))))


def card_first_share(decisions: dict[int, dict], favoured: bool) -> float:
    firsts = [d["offers"][0]["offer_id"] for i, d in decisions.items() if spender(i) is favoured]
    return sum(f == "card_cashback" for f in firsts) / len(firsts)


def card_propensity(decisions: dict[int, dict], favoured: bool) -> float:
    found = [o["propensity"] for i, d in decisions.items() if spender(i) is favoured
             for o in d["offers"] if o["offer_id"] == "card_cashback"]  # fmt: skip
    return sum(found) / len(found)


async def answer_by_the_rule(client: httpx.AsyncClient, prefix: str, decisions: dict[int, dict]) -> None:
    for i, decision in decisions.items():
        for offer in decision["offers"]:
            accepted = offer["offer_id"] == "card_cashback" and spender(i)
            outcome = "accepted" if accepted else "declined"
            body = {"customer_id": f"{prefix}-{i}", "offer_id": offer["offer_id"], "channel": "web",
                    "outcome": outcome, "decision_id": decision["decision_id"]}  # fmt: skip
            assert (await client.post("/v1/responses", json=body)).status_code == 200


async def test_a_model_trained_on_the_services_own_history_is_promoted_and_served_without_restart(
    start, settings
):
    app, client = await start(catalogue_dir=CATALOGUE, model_poll_seconds=0.2, posterior_refresh_seconds=0)
    cache = app.state.service.cache
    for prefix in ("old", "new"):
        await cache.put_features([(f"{prefix}-{i}", features(i)) for i in range(CUSTOMERS)], at=time.time())

    before = await decide_all(client, "old")
    day_one_version = before[0]["model_version"]
    assert card_first_share(before, favoured=True) == 0.0  # priors alone: savings (value 10) first for all
    await answer_by_the_rule(client, "old", before)

    env = {**os.environ, "NBO_DATABASE_URL": settings.database_url, "NBO_CATALOGUE_DIR": str(CATALOGUE),
           "NBO_MODEL_DIR": str(settings.model_dir), "NBO_LOG_LEVEL": "WARNING"}  # fmt: skip
    version = nbo(env, "train").strip().splitlines()[-1]
    assert version and version != day_one_version
    nbo(env, "models", "promote", version)

    assert await served_version_becomes(client, version, within=15), "the promotion did not reach the service"

    after = await decide_all(client, "new")
    assert {d["model_version"] for d in after.values()} == {version}
    assert card_first_share(after, favoured=True) >= 0.9  # was 0.0 on day one
    # It learned the feature, not just the offer: the card's propensity follows card spend.
    spend, low = card_propensity(after, favoured=True), card_propensity(after, favoured=False)
    assert spend > 0.5 > 10 * low, (spend, low)


async def served_version_becomes(client: httpx.AsyncClient, version: str, within: float) -> bool:
    """Probe decisions until one carries `version` (the service polls the registry's pointer)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        answer = await client.post("/v1/decisions", json={"customer_id": "probe", "channel": "web"})
        if answer.json()["model_version"] == version:
            return True
        await asyncio.sleep(0.2)  # polling the service over HTTP
    return False
