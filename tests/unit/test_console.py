"""The console's pure pieces: contact policies in words, live-view rates and percentiles, the timeline."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from app.console.drafts import Change, DraftRefused, draft_of
from app.console.samples import Sampler, Snapshot, bucket_delta, point_between, quantile, take_snapshot
from app.console.timeline import lay_out
from app.console.words import describe_age, describe_budget, describe_policy
from decisioning.catalogue import Budget, BudgetPeriod, CalendarUnit, ContactPolicy, Level, Window, WindowKind
from decisioning.records import HistoryEntry
from decisioning.types import Outcome
from policies.loader import load_catalogue
from service.metrics import Metrics

DAY = 86_400.0


def policy(**changes: object) -> ContactPolicy:
    base: dict[str, object] = {
        "id": "p", "outcomes": frozenset({Outcome.PRESENTED}), "level": Level.OFFER,
        "window": Window(seconds=7 * DAY), "threshold": 3, "suppress": Level.OFFER,
    }  # fmt: skip
    return ContactPolicy(**(base | changes))  # type: ignore[arg-type]


def test_the_demo_policies_read_as_the_design_says_them():
    words = {p.id: describe_policy(p) for p in load_catalogue("policies/demo").policies}
    assert words["offer_cap_7d"] == (
        "At most 3 presentations or outbound sends of an offer per 7 days, in every channel."
    )
    assert words["decline_cool_off"] == (
        "After 1 decline of an offer within 30 days, suppress the offer for 30 days, in every channel."
    )
    assert words["group_decline_cool_off"].startswith("After 3 declines of a group's offers within 90 days, suppress")
    assert words["sms_daily_cap"] == (
        "At most 1 outbound send per customer (all marketing offers together) per 24 hours, in sms."
    )
    mortgage = words["mortgage_lead_weekly"]
    assert mortgage.endswith("per calendar week, in call_centre, for the offer mortgage_advice_call.")
    assert "only for customers where age < 21 or segment == 'student'" in words["young_credit_cap"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "At most 3 presentations of an offer per 7 days, in every channel."),
        ({"window": Window(WindowKind.CALENDAR, unit=CalendarUnit.MONTH)}, "per calendar month"),
        ({"window": Window(seconds=6 * 3600.0)}, "per 6 hours"),
        ({"channels": frozenset({"sms", "email"})}, "in email and sms."),
        # A cap on responses is not "at most": it suppresses once reached, while the window holds.
        ({"outcomes": frozenset({Outcome.CLICKED})}, "After 3 clicks of an offer within 7 days, suppress the offer "
                                                     "while they are in the window"),
        ({"suppress": Level.GROUP, "suppress_days": 2.0}, "suppress the whole group for 2 days"),
        ({"suppress_days": 1.0}, "for 1 day,"),
        ({"groups": frozenset({"cards", "loans"})}, "for the groups cards, loans."),
    ],
)
def test_policy_sentences(changes: dict[str, object], expected: str):
    assert expected in describe_policy(policy(**changes))


def test_budgets_and_ages_in_words():
    assert describe_budget(Budget(500, BudgetPeriod.CAMPAIGN)) == "at most 500 presentations per campaign"
    assert describe_budget(None) == "no volume budget"
    assert [describe_age(s) for s in (5.0, 600.0, 30 * 3600.0, 3 * DAY, None)] == [
        "just now", "10 min", "30 h", "3 days", "never written",
    ]  # fmt: skip


def test_quantiles_interpolate_within_the_bucket_as_prometheus_does():
    buckets = [(0.001, 10.0), (0.01, 90.0), (0.1, 100.0), (math.inf, 100.0)]
    assert quantile(buckets, 0.05) == pytest.approx(0.0005)
    assert quantile(buckets, 0.5) == pytest.approx(0.001 + 0.009 * 40 / 80)
    assert quantile(buckets, 0.99) == pytest.approx(0.01 + 0.09 * 9 / 10)
    assert quantile([(0.1, 0.0), (math.inf, 0.0)], 0.5) is None
    assert quantile([(0.1, 1.0), (math.inf, 5.0)], 0.99) == 0.1, "past the last bound: that bound"


def test_an_interval_is_the_difference_of_two_snapshots():
    old = Snapshot(100.0, decisions=50.0, latency=[(0.001, 40.0), (0.01, 50.0), (math.inf, 50.0)])
    new = Snapshot(102.0, decisions=70.0, latency=[(0.001, 40.0), (0.01, 70.0), (math.inf, 70.0)])
    point = point_between(old, new)
    assert point.rate == 10.0
    assert point.p50 == pytest.approx(1.0 + 9.0 * 0.5), "every new decision fell in (1 ms, 10 ms]"
    # A restarted counter (smaller than before) is read from zero, not as a negative count.
    assert bucket_delta([(1.0, 3.0), (math.inf, 3.0)], [(1.0, 9.0), (math.inf, 9.0)]) == [(1.0, 3.0), (math.inf, 3.0)]


def test_a_snapshot_reads_the_service_metrics_summed_over_labels():
    metrics = Metrics()
    metrics.decisions.labels("web", "ok").inc(3)
    metrics.decisions.labels("mobile", "ok").inc(2)
    metrics.presented.labels("card_gold", "web").inc(2)
    metrics.presented.labels("card_gold", "mobile").inc()
    metrics.suppressions.labels("offer_cap_7d").inc(4)
    metrics.degraded.labels("web", "redis_unavailable").inc()
    metrics.stage_seconds.labels("decide", "web", "m-1").observe(0.001)
    metrics.stage_seconds.labels("load", "web", "m-1").observe(0.001)
    metrics.decision_seconds.labels("web").observe(0.004)
    snap = take_snapshot(metrics.registry, 10.0)
    assert snap.decisions == 5.0 and snap.presented == {"card_gold": 3.0}
    assert snap.suppressions == {"offer_cap_7d": 4.0} and snap.degraded == {"redis_unavailable": 1.0}
    assert snap.models == {"m-1": 1.0}, "one decision: its 'decide' stage, not every stage"
    assert dict(snap.latency)[0.005] == 1.0


def test_the_sampler_keeps_one_snapshot_a_second_for_its_window():
    registry = CollectorRegistry()
    counter = Counter("nbo_decisions_total", "d", ["channel", "outcome"], registry=registry)
    Histogram("nbo_decision_seconds", "l", ["channel"], registry=registry)
    sampler = Sampler(registry, keep_seconds=10.0)
    sampler.sample(0.0)
    counter.labels("web", "ok").inc(4)
    assert sampler.sample(0.5).decisions == 0.0, "within a second: the same snapshot"
    sampler.sample(2.0)
    counter.labels("web", "ok").inc(6)
    sampler.sample(4.0)
    assert [p.rate for p in sampler.series()] == [2.0, 3.0]
    sampler.sample(13.0)
    assert [p.at for p in sampler.series()] == [13.0], "snapshots older than the window (at 0 and 2) are dropped"


def test_the_timeline_has_a_lane_per_channel_and_places_entries_by_time():
    def entry(at: float, channel: str, kind: str = "contact", direction: str = "inbound") -> HistoryEntry:
        return HistoryEntry(kind, "x", "c-1", at, channel, direction, "o", "g", "presented", "d")

    timeline = lay_out([entry(0.0, "web"), entry(50.0, "email", direction="outbound"), entry(100.0, "web", "response")],
                       now=100.0)  # fmt: skip
    assert [lane.channel for lane in timeline.lanes] == ["email", "web"]
    xs = [m.x for m in timeline.marks]
    assert xs[0] < xs[1] < xs[2] and xs[2] == pytest.approx(timeline.width - 12.0)
    assert [m.kind for m in timeline.marks] == ["decision", "outbound", "response"]
    assert lay_out([], now=100.0).marks == ()


def test_a_draft_changes_one_field_of_the_serving_catalogue_and_says_so_in_its_version():
    served = load_catalogue("tests/fixtures/stack_catalogue")
    lever = draft_of(served, Change("lever", "card_cashback", 2.5))
    assert lever.offer("card_cashback").lever == 2.5 and served.offer("card_cashback").lever == 1.0
    assert lever.offer("savings_plus") is served.offer("savings_plus"), "everything else is the served object"
    assert lever.version.startswith(f"{served.version}+draft-") and lever.version != served.version
    cap = draft_of(served, Change("cap", "decline_cool_off", 3))
    assert cap.policies[0].threshold == 3 and cap.offers == served.offers
    budget = draft_of(served, Change("budget", "advice_call", 20))
    assert budget.offer("advice_call").budget == Budget(20, BudgetPeriod.DAY)
    assert draft_of(served, Change("budget", "advice_call", None)).offer("advice_call").budget is None
    assert Change("lever", "card_cashback", 2.5).describe(served) == "lever of card_cashback: 1 → 2.5"
    assert Change("budget", "advice_call", None).describe(served) == "budget of advice_call: 100 per day → no budget"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (Change("lever", "no_such_offer", 2.0), "offer: unknown offer 'no_such_offer'"),
        (Change("cap", "no_such_policy", 2.0), "policy: unknown contact policy 'no_such_policy'"),
        (Change("lever", "card_cashback", 0.0), "lever: a number above 0"),
        (Change("lever", "card_cashback", math.nan), "lever: a number above 0"),
        (Change("cap", "decline_cool_off", -1.0), "threshold: a number above 0"),
    ],
)
def test_a_draft_refuses_what_the_catalogue_cannot_take(change: Change, message: str):
    with pytest.raises(DraftRefused, match=message):
        draft_of(load_catalogue("tests/fixtures/stack_catalogue"), change)


def test_the_console_loads_the_evaluation_stack_only_when_a_replay_runs():
    """`evaluation` (and LightGBM behind it) is imported inside the what-if handler, not with the app: every
    uvicorn worker must answer its supervisor's health check while it starts."""
    import ast
    from pathlib import Path

    import app.console

    for module in Path(app.console.__file__).parent.glob("*.py"):
        tree = ast.parse(module.read_text())
        top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = [n.module or "" for n in top_level if isinstance(n, ast.ImportFrom)]
        names += [a.name for n in top_level if isinstance(n, ast.Import) for a in n.names]
        assert not [n for n in names if n.startswith(("evaluation", "lightgbm", "models"))], module.name
