"""Offline evaluation closed through HTTP: decide with exploration -> respond -> `nbo evaluate` / `nbo replay`.

The service (embedded SQLite history; PostgreSQL in one variant) decides for every customer with
epsilon-greedy exploration, and customers answer by a fixed rule, so that the true value of any policy on
these customers is known: mean over customers of sum over offers of P(policy shows the offer) x accepts.
- `nbo evaluate --catalogue` of the serving catalogue re-decides every logged decision exactly as it was
  made: every importance weight is 1 and the estimate is the observed acceptance.
- `nbo replay` of the same catalogue with the cards lever at 1.5 (the card then outranks the savings
  offer) moves the presentations to the card, and its value estimate agrees with the true value.

The catalogue has a one-day response window; the commands evaluate "as of" two days later (`--until`), so
every contact is settled (the unanswered ones count as ignored).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from app.cli import cli

CATALOGUE = Path(__file__).resolve().parents[1] / "fixtures" / "evaluation_catalogue"
CUSTOMERS = 400
EPSILON = 0.4  # the catalogue's


def spender(i: int) -> bool:
    return i % 2 == 0


def accepts(i: int, offer_id: str) -> bool:
    return spender(i) if offer_id == "card_cashback" else i % 3 == 0


def true_value(card_share: float) -> float:
    """The acceptance per presented offer of a policy that shows the card with this probability."""
    return sum(card_share * accepts(i, "card_cashback") + (1 - card_share) * accepts(i, "savings_plus")
               for i in range(CUSTOMERS)) / CUSTOMERS  # fmt: skip


async def log_decisions(client: httpx.AsyncClient) -> dict[int, dict]:
    limit = asyncio.Semaphore(32)

    async def one(i: int) -> tuple[int, dict]:
        async with limit:
            answer = await client.post("/v1/decisions", json={"customer_id": f"c-{i}", "channel": "web"})
        assert answer.status_code == 200, answer.text
        decision = answer.json()
        for offer in decision["offers"]:
            outcome = "accepted" if accepts(i, offer["offer_id"]) else "declined"
            body = {"customer_id": f"c-{i}", "offer_id": offer["offer_id"], "channel": "web",
                    "outcome": outcome, "decision_id": decision["decision_id"]}  # fmt: skip
            async with limit:
                assert (await client.post("/v1/responses", json=body)).status_code == 200
        return i, decision

    return dict(await asyncio.gather(*(one(i) for i in range(CUSTOMERS))))


def features(i: int) -> dict[str, object]:
    return {"age": 40, "card_spend_30d": 3000.0 if spender(i) else 50.0, "segment": "mass"}


@pytest.fixture
def database_url(request, settings) -> str:
    """The embedded SQLite history, or (parametrized "postgresql") the test PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("pg_url")
    return settings.database_url


@pytest.fixture
async def logged(start, settings, database_url) -> tuple[dict[int, dict], dict[str, str]]:
    """Decisions logged and answered through HTTP; the environment the commands run in."""
    app, client = await start(catalogue_dir=CATALOGUE, posterior_refresh_seconds=0, database_url=database_url)
    await app.state.service.cache.put_features([(f"c-{i}", features(i)) for i in range(CUSTOMERS)], at=time.time())
    decisions = await log_decisions(client)
    env = {
        "NBO_DATABASE_URL": database_url,
        "NBO_CATALOGUE_DIR": str(CATALOGUE),
        "NBO_MODEL_DIR": str(settings.model_dir),
        # The serving process started on an empty history and never refreshed its cold-start posteriors
        # (refresh 0): a posterior window that counts nothing gives the candidate that same state.
        "NBO_POSTERIOR_WINDOW_DAYS": "0.000001",
        "NBO_LOG_LEVEL": "WARNING",
    }
    return decisions, env


def two_days_later() -> str:
    return datetime.fromtimestamp(time.time() + 2 * 86_400, UTC).isoformat()


async def run(env: dict[str, str], *args: str) -> str:
    """The command in process, on a thread: it runs its own event loop, as from a shell."""
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def observed_acceptance(decisions: dict[int, dict]) -> float:
    rows = [accepts(i, o["offer_id"]) for i, d in decisions.items() for o in d["offers"]]
    return sum(rows) / len(rows)


async def test_evaluating_the_serving_catalogue_gives_the_observed_acceptance(logged):
    decisions, env = logged
    out = orjson.loads(await run(env, "evaluate", "--catalogue", str(CATALOGUE), "--until", two_days_later(), "--json"))
    assert out["replayed"] == CUSTOMERS and out["rows_left_out"] == {}
    assert out["max_weight"] == pytest.approx(1.0) and out["effective_sample_size"] == pytest.approx(CUSTOMERS)
    observed = observed_acceptance(decisions)
    assert out["ips"]["estimate"] == pytest.approx(observed, abs=1e-12)
    assert out["snips"]["estimate"] == pytest.approx(observed, abs=1e-12)
    assert out["acceptance"]["current"]["estimate"] == pytest.approx(observed, abs=1e-12)
    assert out["ips"]["low"] < observed < out["ips"]["high"]
    assert abs(out["dr"]["estimate"] - observed) < 0.05, "DR with a same-policy target is the mean up to its model"
    worth = {"card_cashback": 8.0, "savings_plus": 10.0}
    value = sum(worth[o["offer_id"]] * accepts(i, o["offer_id"]) for i, d in decisions.items() for o in d["offers"])
    assert out["value"]["current"]["estimate"] == pytest.approx(value / CUSTOMERS, abs=1e-9)
    assert out["value"]["candidate"]["ips"]["estimate"] == pytest.approx(value / CUSTOMERS, abs=1e-9)


def with_cards_lever(tmp_path: Path, lever: float) -> Path:
    candidate = tmp_path / "candidate"
    shutil.copytree(CATALOGUE, candidate)
    text = (candidate / "catalogue.yaml").read_text()
    (candidate / "catalogue.yaml").write_text(text.replace("lever: 1.1", f"lever: {lever}"))
    return candidate


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_replaying_a_higher_card_lever_moves_the_offer_mix_and_estimates_its_value(logged, tmp_path):
    decisions, env = logged
    candidate = with_cards_lever(tmp_path, 1.5)
    report_file = tmp_path / "replay.json"
    printed = await run(
        env, "replay", "--catalogue", str(candidate), "--until", two_days_later(), "--json", str(report_file)
    )
    assert "offers presented" in printed and "accepted per presented offer" in printed
    report = orjson.loads(report_file.read_bytes())
    shifts = {s["offer_id"]: s for s in report["presentations"]}
    logged_cards = sum(d["offers"][0]["offer_id"] == "card_cashback" for d in decisions.values())
    assert shifts["card_cashback"]["logged"] == logged_cards
    assert report["reproduced"] == CUSTOMERS, "the current catalogue re-decides every decision as logged"
    assert shifts["card_cashback"]["current"] == logged_cards
    # Greedy now picks the card: it is shown with probability 1 - eps/2 instead of eps/2.
    assert shifts["card_cashback"]["candidate"] > 0.6 * CUSTOMERS > 0.4 * CUSTOMERS > logged_cards
    assert shifts["savings_plus"]["candidate"] < shifts["savings_plus"]["logged"]
    acceptance = report["acceptance"]
    truth, before = true_value(1 - EPSILON / 2), true_value(EPSILON / 2)
    for name in ("ips", "snips", "dr"):
        estimated = acceptance["candidate"][name]
        half_width = (estimated["high"] - estimated["low"]) / 2
        # Within twice the 95% half-width (about 4 standard errors: the exploration draws vary by run).
        assert abs(estimated["estimate"] - truth) < 2 * half_width, (name, estimated, truth)
    assert acceptance["candidate"]["dr"]["estimate"] > acceptance["current"]["estimate"]
    assert abs(acceptance["current"]["estimate"] - before) < 0.1
