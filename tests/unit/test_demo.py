"""The demo bank: correlated customers, a point-in-time consistent event timeline, the simulated history
and the model trained from it."""

from __future__ import annotations

import itertools
from pathlib import Path
from statistics import mean, median

import numpy as np
import pytest

from decisioning.catalogue import Catalogue, FeatureType
from decisioning.types import CONTACT_OUTCOMES, DAY, Direction, Outcome
from models.demo import GroundTruth, demo_training_set, generate_customers, simulate_history, train_demo_model
from models.metrics import auc
from models.registry import ModelRegistry
from models.training import TrainingConfig, time_split
from policies.loader import load_catalogue
from tests.unit.factories import NOW, offer

DEMO = Path(__file__).parents[2] / "policies" / "demo"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(DEMO)


@pytest.fixture(scope="module")
def customers(catalogue):
    return generate_customers(4_000, catalogue.features, seed=3, now=NOW)


@pytest.fixture(scope="module")
def history(customers, catalogue):
    return simulate_history(customers[:1_500], catalogue, days=60, seed=3, now=NOW)


# --- customers ----------------------------------------------------------------------------------------


def test_customers_are_numbered_deterministic_and_valid_for_the_schema(customers, catalogue):
    assert customers[0][0] == "c-000001" and customers[-1][0] == "c-004000"
    assert generate_customers(50, catalogue.features, seed=3, now=NOW) == customers[:50]
    for spec in catalogue.features:
        values = [v[spec.name] for _, v in customers]
        present = [x for x in values if x is not None]
        if spec.type is FeatureType.CATEGORY:
            assert set(present) <= set(spec.categories)
        elif spec.type is FeatureType.BOOL:
            assert all(isinstance(x, bool) for x in present)
        else:
            assert all(isinstance(x, float) for x in present)
            low = -np.inf if spec.minimum is None else spec.minimum
            high = np.inf if spec.maximum is None else spec.maximum
            assert all(low <= x <= high for x in present)


def test_features_are_correlated_as_in_a_real_bank(customers):
    rows = [v for _, v in customers]
    students = [v for v in rows if v["segment"] == "student"]
    assert students and all(v["age"] < 25 for v in students)
    assert median(v["income_monthly"] for v in students) < median(v["income_monthly"] for v in rows) / 2
    assert all(v["age"] >= 65 for v in rows if v["segment"] == "senior")
    in_arrears = [v["credit_score"] for v in rows if v["in_arrears"]]
    assert mean(in_arrears) < mean(v["credit_score"] for v in rows if not v["in_arrears"]) - 80
    rich = [v for v in rows if v["segment"] in ("affluent", "private")]
    assert mean(v["has_investment_account"] for v in rich) > 2 * mean(
        v["has_investment_account"] for v in rows if v not in rich
    )
    assert all(v["num_products"] >= 1 for v in rows)


def test_consent_and_do_not_contact_shares(customers):
    rows = [v for _, v in customers]
    assert mean(v["marketing_consent"] for v in rows) == pytest.approx(0.8, abs=0.03)
    assert mean(v["do_not_contact"] for v in rows) == pytest.approx(0.03, abs=0.01)


def test_event_features_are_mostly_missing_and_recent_when_present(customers):
    rows = [v for _, v in customers]
    for name in (
        "churn_signal_at",
        "card_declined_last_at",
        "mortgage_calc_last_at",
        "large_withdrawal_last_at",
    ):
        present = [v[name] for v in rows if v[name] is not None]
        assert 0 < len(present) < 0.2 * len(rows)
        assert all(NOW - 61 * DAY <= t <= NOW for t in present)
    assert all((v["card_declined_count"] > 0) == (v["card_declined_last_at"] is not None) for v in rows)


# --- the event timeline behind the features -----------------------------------------------------------


def test_the_snapshot_at_now_holds_exactly_the_generated_features(history, customers):
    for cid, values in customers[:1_500]:
        assert dict(history.snapshots.as_of(cid, NOW)) == values


def test_no_snapshot_knows_an_event_before_it_happened(history):
    for cid in history.snapshots.customers():
        snaps = history.snapshots.of(cid)
        for valid_from, values in snaps:
            assert all(values[k] <= valid_from for k in values if k.endswith("_at") and values[k] is not None)
        counts = [v["card_declined_count"] for _, v in snaps]
        assert counts == sorted(counts)  # counters only grow


def test_windowed_counts_follow_their_window_in_every_snapshot(history):
    fell = 0
    for cid in history.snapshots.customers():
        snaps = history.snapshots.of(cid)
        for valid_from, v in snaps:
            for count, last_at, days in (
                ("mortgage_calc_visits_30d", "mortgage_calc_last_at", 30),
                ("large_withdrawals_7d", "large_withdrawal_last_at", 7),
            ):
                recent = v[last_at] is not None and valid_from - v[last_at] < days * DAY
                assert (v[count] > 0) == recent, (cid, valid_from, count)
        transfers = [v["transfer_out_competitor_30d"] for _, v in snaps]
        fell += any(later < earlier for earlier, later in itertools.pairwise(transfers))
    assert fell > 0  # counts fall back by themselves as events leave the window


# --- the simulated history ----------------------------------------------------------------------------


def test_contacts_respect_channels_consent_and_time(history, catalogue):
    features = {cid: v for cid, v in history.snapshots.latest().items()}
    assert len(history.decisions) > 1_000 and len(history.sends) > 500
    for c in history.contacts:
        o = catalogue.offer(c.offer_id)
        assert c.channel in o.treatments and history.start <= c.at <= NOW and o.is_active(c.at)
        assert c.outcome in CONTACT_OUTCOMES and 0 < c.selection_probability <= 1
        assert (c.direction is Direction.OUTBOUND) == (c.outcome is Outcome.SENT)
        v = history.snapshots.as_of(c.customer_id, c.at)
        if o.marketing:
            assert v["marketing_consent"] and not v["do_not_contact"] and v["age"] >= 18
        if c.direction is Direction.OUTBOUND:
            assert not features[c.customer_id]["do_not_contact"]


def test_responses_answer_a_contact_within_the_known_past(history):
    contacts = {(c.contact_id, c.offer_id): c for c in history.contacts}
    assert {r.outcome for r in history.responses} == {Outcome.ACCEPTED, Outcome.CLICKED, Outcome.DECLINED}
    for r in history.responses:
        c = contacts[(r.decision_id, r.offer_id)]
        assert c.at <= r.at <= NOW and r.customer_id == c.customer_id and r.group == c.group
    assert len({r.response_id for r in history.responses}) == len(history.responses)


def test_intents_arrive_only_in_assisted_channels(history):
    intents = {d.channel: set() for d in history.decisions}
    for d in history.decisions:
        intents[d.channel].add(d.intent)
    assert intents["web"] == intents["mobile"] == {None}
    assert {"complaint", "wants_to_close"} <= intents["call_centre"]


def test_the_simulation_is_deterministic(customers, catalogue):
    a = simulate_history(customers[:200], catalogue, days=20, seed=9, now=NOW)
    b = simulate_history(customers[:200], catalogue, days=20, seed=9, now=NOW)
    assert a.contacts == b.contacts and a.responses == b.responses


# --- the ground truth and the model -------------------------------------------------------------------


def test_the_ground_truth_follows_the_documented_drivers():
    truth, mortgage, retention = (
        GroundTruth(),
        offer("m", "mortgages", prior=0.02),
        offer("r", "retention", prior=0.1),
    )
    young = {"age": 35, "income_monthly": 4000, "mortgage_calc_visits_30d": 3, "mortgage_calc_last_at": NOW - DAY}
    old = {"age": 70, "income_monthly": 4000}
    assert truth.probability(young, mortgage, "web", None, NOW) > 5 * truth.probability(old, mortgage, "web", None, NOW)
    assert (
        truth.probability({**young, "has_m": True}, mortgage, "web", None, NOW)
        < truth.probability(young, mortgage, "web", None, NOW) / 5
    )
    churned = {"churn_signal_at": NOW - 3 * DAY, "tenure_months": 100}
    assert truth.probability(churned, retention, "web", None, NOW) > 3 * truth.probability(
        {}, retention, "web", None, NOW
    )
    assert truth.probability({}, mortgage, "web", "complaint", NOW) < truth.probability({}, mortgage, "web", None, NOW)


def test_the_demo_model_learns_the_hidden_truth(history, catalogue, tmp_path):
    registry = ModelRegistry(tmp_path)
    meta = train_demo_model(history, catalogue, registry, config=TrainingConfig(num_trees=60))
    assert registry.pointers("nbo").champion == meta.version
    data = demo_training_set(history, catalogue)
    test = data.subset(time_split(data.at, 0.15, 0.15).test)
    priors = np.array([catalogue.offer(o).prior for o in test.offer_ids])
    assert meta.metrics["holdout"]["auc"] > auc(test.y, priors) + 0.03
    assert meta.metrics["holdout"]["auc"] > 0.7
    assert "intent" in meta.encoder.columns and set(catalogue.channels) <= set(meta.encoder.channels)
