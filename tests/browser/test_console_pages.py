"""The console's pages in headless Chromium, end to end against a served service (see conftest.py).

Each test does what a person does: logs in with a key, fills the forms, clicks, reads the page. Each also
leaves a screenshot of its page in docs/console/.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, log_in, screenshot

CUSTOMER = "c-000007"


def test_an_agent_decides_records_a_decline_and_sees_the_offer_suppressed(page: Page, console: Console):
    log_in(page, console, console.agent_key, "/console/customer")
    page.fill("input[name=customer_id]", CUSTOMER)
    page.click("#lookup button")
    expect(page.locator("#features")).to_contain_text("income_monthly")
    expect(page.locator("#features tr[data-feature=age]")).to_contain_text("32")

    page.select_option("select[name=channel]", "call_centre")
    page.click("#decide-form button")
    first = page.locator("li.offer").first
    expect(first).to_have_attribute("data-offer", "advice_call")
    expect(first).to_contain_text("propensity 0.5 × value 100")
    expect(first).to_contain_text("Book a call with an adviser.")

    first.locator("button.answer.declined").click()
    expect(page.locator("#answer-advice_call")).to_contain_text("Recorded: declined")
    expect(page.locator("#timeline tr.entry.response")).to_contain_text("declined")

    page.click("#decide-form button")
    expect(page.locator("li.offer").first).not_to_have_attribute("data-offer", "advice_call")
    dropped = page.locator("table.dropped tr[data-offer=advice_call]")
    expect(dropped).to_have_attribute("data-stage", "contact_policy")
    expect(dropped).to_contain_text("contact policy 'decline_cool_off': 1 declined for offer:advice_call")
    expect(page.locator("svg.timeline circle.mark.response")).to_have_count(1)
    screenshot(page, "customer")


def test_the_catalogue_shows_a_budget_and_the_problems_of_a_broken_draft(page: Page, console: Console, tmp_path: Path):
    log_in(page, console, console.marketer_key, "/console/catalogue")
    budget = page.locator("tr[data-offer=advice_call] td.budget")
    expect(budget).to_contain_text("at most 100 presentations per day")
    expect(budget).to_contain_text(re.compile(r"\d+ used, \d+ left"))
    expect(page.locator("tr[data-policy=decline_cool_off]")).to_contain_text(
        "After 1 decline of an offer within 30 days, suppress the offer for 30 days, in every channel."
    )

    draft = broken_draft(console.catalogue_dir, tmp_path)
    page.set_input_files("input[name=files]", sorted(str(p) for p in draft.iterdir()))
    page.click("#validate-form button")
    problem = page.locator("#validation tr.problem").first
    expect(problem).to_contain_text("catalogue.yaml")
    expect(problem).to_contain_text("group leads")
    expect(problem).to_contain_text("unknown feature 'agee'")
    expect(problem).to_contain_text("column 1")
    screenshot(page, "catalogue")


def broken_draft(catalogue: Path, tmp_path: Path) -> Path:
    """A copy of the served catalogue with a misspelt feature in a group's rule."""
    draft = tmp_path / "draft"
    shutil.copytree(catalogue, draft)
    text = (draft / "catalogue.yaml").read_text()
    (draft / "catalogue.yaml").write_text(text.replace("adult: age >= 18", "adult: agee >= 18", 1))
    return draft


def decline_and_decide_again(console: Console, customer: str) -> None:
    """Traffic through the API: a decision, a decline of its offer, a decision that suppresses it."""
    auth = {"Authorization": f"Bearer {console.marketer_key}"}
    with httpx.Client(base_url=console.url, headers=auth) as api:
        decision = api.post("/v1/decisions", json={"customer_id": customer, "channel": "web"}).json()
        offer = decision["offers"][0]["offer_id"]
        response = {"customer_id": customer, "offer_id": offer, "channel": "web", "outcome": "declined",
                    "decision_id": decision["decision_id"]}  # fmt: skip
        api.post("/v1/responses", json=response).raise_for_status()
        api.post("/v1/decisions", json={"customer_id": customer, "channel": "web"}).raise_for_status()


def steady_traffic(console: Console, stop: threading.Event) -> None:
    """A few decisions a second, with an acceptance now and then, until `stop` (at most 20 s)."""
    auth = {"Authorization": f"Bearer {console.marketer_key}"}
    with httpx.Client(base_url=console.url, headers=auth) as api:
        for i in range(400):
            if stop.is_set():
                return
            customer = f"c-{11 + i % 15:06d}"
            decision = api.post("/v1/decisions", json={"customer_id": customer, "channel": "mobile"}).json()
            if i % 4 == 0 and decision["offers"]:
                offer, decision_id = decision["offers"][0]["offer_id"], decision["decision_id"]
                accepted = {"customer_id": customer, "offer_id": offer, "channel": "mobile", "outcome": "accepted"}
                api.post("/v1/responses", json=accepted | {"decision_id": decision_id})
            stop.wait(0.05)


def test_the_live_page_draws_its_charts(page: Page, console: Console):
    decline_and_decide_again(console, "c-000030")
    stop = threading.Event()
    traffic = threading.Thread(target=steady_traffic, args=(console, stop))
    traffic.start()
    try:
        log_in(page, console, console.agent_key, "/console/live")
        # Snapshots a second apart or more make the points of the series (the page polls every 2 s).
        # (A locator, not wait_for_function: the page's CSP refuses the eval that one uses.)
        three_or_more = re.compile(r"^([3-9]|\d\d+)$")
        expect(page.locator("body")).to_have_attribute("data-live-points", three_or_more, timeout=12_000)
    finally:
        stop.set()
        traffic.join()
    rates = page.evaluate("Chart.getChart('rate-chart').data.datasets[0].data")
    assert len(rates) >= 3 and max(rates) > 0, rates
    p99 = page.evaluate("Chart.getChart('latency-chart').data.datasets[2].data")
    assert any(v is not None and v > 0 for v in p99), p99
    offers = page.evaluate("Chart.getChart('offers-chart').data.labels")
    assert "advice_call" in offers, offers
    expect(page.locator("#suppressions")).to_contain_text("decline_cool_off")
    expect(page.locator("#models")).to_contain_text("prior")
    screenshot(page, "live")
