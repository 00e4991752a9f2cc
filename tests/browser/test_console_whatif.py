"""The what-if page in headless Chromium: a draft with a higher lever on the card, replayed on decisions
logged three days ago (their one-day response windows closed), drawn beside the serving catalogue.

The service runs on the evaluation bank (tests/fixtures/evaluation_catalogue: two offers, epsilon-greedy
exploration, so that every logged decision carries the probability an estimate needs). Its clock runs three
days behind while the decisions and answers are logged through the API, then catches up.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ROOT, Clock, Console, log_in, screenshot, served

CATALOGUE = ROOT / "tests" / "fixtures" / "evaluation_catalogue"
CUSTOMERS = 160
DAY = 86_400.0


def spender(i: int) -> bool:
    return i % 2 == 0


def accepts(i: int, offer_id: str) -> bool:
    """Spenders take the card, every third customer the savings offer (as tests/api/test_evaluation_loop.py)."""
    return spender(i) if offer_id == "card_cashback" else i % 3 == 0


def write_customers(path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "age", "card_spend_30d", "segment"])
        writer.writerows([f"c-{i}", 40, 3000 if spender(i) else 50, "mass"] for i in range(CUSTOMERS))


def log_answered_decisions(console: Console) -> dict[str, int]:
    """One decision per customer, answered by the rule; how often each offer was presented."""
    shown: dict[str, int] = {}
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {console.marketer_key}"}) as api:
        for i in range(CUSTOMERS):
            decision = api.post("/v1/decisions", json={"customer_id": f"c-{i}", "channel": "web"}).json()
            for offer in decision["offers"]:
                shown[offer["offer_id"]] = shown.get(offer["offer_id"], 0) + 1
                outcome = "accepted" if accepts(i, offer["offer_id"]) else "declined"
                body = {"customer_id": f"c-{i}", "offer_id": offer["offer_id"], "channel": "web",
                        "outcome": outcome, "decision_id": decision["decision_id"]}  # fmt: skip
                api.post("/v1/responses", json=body).raise_for_status()
    return shown


@pytest.fixture(scope="module")
def evaluation_bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Console, dict[str, int]]]:
    directory = tmp_path_factory.mktemp("whatif")
    write_customers(directory / "customers.csv")
    clock = Clock()
    with served(directory, CATALOGUE, directory / "customers.csv", clock) as console:
        clock.offset = -3 * DAY
        shown = log_answered_decisions(console)
        clock.offset = 0.0
        yield console, shown


def test_the_what_if_page_draws_the_draft_beside_the_serving_catalogue(page: Page, evaluation_bank):
    console, shown = evaluation_bank
    log_in(page, console, console.marketer_key, "/console/whatif")
    page.select_option("#whatif-kind", "lever")
    page.select_option("#whatif-target", "card_cashback")
    page.fill("input[name=value]", "1.5")
    page.click("#whatif-form button")
    expect(page.locator("body")).to_have_attribute("data-whatif-drawn", "2", timeout=30_000)

    expect(page.locator("#whatif-summary")).to_contain_text("lever of card_cashback: 1.1 → 1.5")
    expect(page.locator("#whatif-summary")).to_contain_text(f"{CUSTOMERS} logged decisions")
    card = page.locator("#mix-table tr[data-offer=card_cashback] td")
    logged, serving, draft = (int(card.nth(i).inner_text()) for i in (1, 2, 3))
    assert logged == shown.get("card_cashback", 0) == serving, "the serving catalogue re-decides as logged"
    assert draft > 0.6 * CUSTOMERS > logged, "the higher lever makes the card the greedy choice"
    mix = page.evaluate("Chart.getChart('mix-chart').data.datasets.map(d => d.data.length)")
    assert mix == [2, 2, 2]
    bars = page.evaluate("Chart.getChart('value-chart').data.labels")
    assert bars == ["serving (observed)", "draft IPS", "draft SNIPS", "draft DR"]
    screenshot(page, "whatif")
