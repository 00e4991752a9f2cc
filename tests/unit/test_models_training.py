"""Training data (point in time, labels), training, holdout metrics and the global vs per-offer comparison."""

from __future__ import annotations

import numpy as np
import pytest

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.records import ContactRecord, ResponseRecord
from decisioning.types import DAY, Context, CustomerFeatures, Direction, Outcome
from models.dataset import FeatureSnapshots, LabelledContact, build_training_set, encoder_for, label_contacts
from models.metrics import auc
from models.prior import PriorScorer
from models.synthetic import NOW, synthetic_offers, synthetic_training_set
from models.training import TrainingConfig, compare_global_vs_per_offer, time_split, train_model

WINDOW = 7 * DAY


def contact(cid: str, days_ago: float, offer_id: str = "card_gold", customer: str = "c-1", channel: str = "web"):
    return ContactRecord(
        cid, customer, NOW - days_ago * DAY, channel, Direction.INBOUND, offer_id, "cards", Outcome.PRESENTED
    )


def response(contact_id: str | None, days_ago: float, outcome: str = "accepted", offer_id: str = "card_gold"):
    return ResponseRecord(f"r-{contact_id}-{days_ago}-{outcome}", "c-1", offer_id, "web", Outcome(outcome),
                          NOW - days_ago * DAY, contact_id)  # fmt: skip


def labels(contacts, responses, **kw) -> dict[str, int]:
    out = label_contacts(contacts, responses, NOW, lambda _offer: WINDOW, **kw)
    return {lc.contact.contact_id: lc.label for lc in out}


# --- point in time ------------------------------------------------------------------------------------


def test_a_snapshot_is_valid_from_its_time_until_the_next_one():
    snaps = FeatureSnapshots()
    snaps.add("c-1", 200.0, {"v": 2})
    snaps.add("c-1", 100.0, {"v": 1})
    snaps.add("c-1", 200.0, {"v": 3})  # a correction at the same moment wins
    assert snaps.as_of("c-1", 99.9) is None
    assert snaps.as_of("c-1", 100.0) == {"v": 1} and snaps.as_of("c-1", 199.9) == {"v": 1}
    assert snaps.as_of("c-1", 200.0) == {"v": 3} and snaps.as_of("c-1", 1e12) == {"v": 3}
    assert snaps.as_of("c-2", 150.0) is None
    assert snaps.latest() == {"c-1": {"v": 3}} and len(snaps) == 3


def test_training_rows_use_the_features_as_they_were_at_each_contact():
    snaps = FeatureSnapshots()
    snaps.add("c-1", NOW - 60 * DAY, {"score": 500.0, "churn_signal_at": None})
    snaps.add("c-1", NOW - 20 * DAY, {"score": 700.0, "churn_signal_at": NOW - 20 * DAY})
    labelled = [LabelledContact(contact(f"d{d}", d), 0) for d in (50, 21, 20, 10)]
    specs = [
        FeatureSpec("score", FeatureType.NUMBER, 0),
        FeatureSpec("churn_signal_at", FeatureType.NUMBER, None),
    ]
    data = build_training_set(labelled, snaps, encoder_for(specs, labelled, ["web"]))
    assert data.x[:, 0].tolist() == [500.0, 500.0, 700.0, 700.0]
    assert np.array_equal(data.x[:, 1], [np.nan, np.nan, 0.0, 10.0], equal_nan=True)


def test_a_contact_before_the_first_snapshot_sees_no_features():
    labelled = [LabelledContact(contact("d1", 5), 1)]
    specs = [FeatureSpec("score", FeatureType.NUMBER, 0)]
    data = build_training_set(labelled, FeatureSnapshots(), encoder_for(specs, labelled))
    assert np.isnan(data.x[0, 0]) and data.y.tolist() == [1.0]


# --- labels -------------------------------------------------------------------------------------------


def test_acceptance_within_the_window_is_positive_and_a_late_one_is_not():
    contacts = [contact("d1", 30), contact("d2", 20)]
    responses = [response("d1", 27), response("d2", 10)]  # d2 accepted 10 days later: outside 7 days
    assert labels(contacts, responses) == {"d1": 1, "d2": 0}


def test_contacts_whose_window_is_still_open_are_left_out_even_when_accepted():
    contacts = [contact("d1", 30), contact("d2", 3), contact("d3", 2)]
    assert labels(contacts, [response("d3", 1)]) == {"d1": 0}


def test_a_response_without_decision_id_answers_the_latest_earlier_contact_of_the_offer():
    contacts = [contact("d1", 40), contact("d2", 30), contact("d3", 30, offer_id="loan_car")]
    assert labels(contacts, [response(None, 28)]) == {"d1": 0, "d2": 1, "d3": 0}


def test_declines_clicks_and_not_displayed():
    contacts = [contact("d1", 30), contact("d2", 30, channel="email"), contact("d3", 30), contact("d4", 30)]
    responses = [response("d1", 29, "declined"), response("d2", 29, "clicked"), response("d3", 29, "clicked"),
                 response("d4", 30, "not_displayed")]  # fmt: skip
    assert labels(contacts, responses) == {"d1": 0, "d2": 0, "d3": 0}
    assert labels(contacts, responses, click_channels=frozenset({"email"})) == {"d1": 0, "d2": 1, "d3": 0}


def test_nothing_after_now_is_known():
    contacts = [contact("d1", 30), contact("future", -1)]
    assert labels(contacts, [response("d1", -0.5)]) == {"d1": 0}


def test_intents_come_from_the_decisions():
    out = label_contacts([contact("d1", 30)], [], NOW, lambda _: WINDOW, intents={"d1": "complaint"})
    assert out[0].intent == "complaint"


# --- training -----------------------------------------------------------------------------------------


SPECS = (
    FeatureSpec("age", FeatureType.NUMBER, 40),
    FeatureSpec("income_monthly", FeatureType.NUMBER, 2500),
    FeatureSpec("card_spend_30d", FeatureType.NUMBER, 0),
    FeatureSpec("balance_current", FeatureType.NUMBER, 0),
    FeatureSpec("balance_savings", FeatureType.NUMBER, 0),
    FeatureSpec("has_credit_card", FeatureType.BOOL, False),
    FeatureSpec("homeowner", FeatureType.BOOL, False),
    FeatureSpec("has_children", FeatureType.BOOL, False),
    FeatureSpec("segment", FeatureType.CATEGORY, "mass", categories=("student", "young_adult", "mass", "affluent")),
)


@pytest.fixture(scope="module")
def data():
    return synthetic_training_set(SPECS, synthetic_offers(16), rows=30_000)


def test_time_split_keeps_the_newest_rows_for_the_test():
    at = np.random.default_rng(0).permutation(100).astype(float)
    split = time_split(at, 0.15, 0.15)
    assert (len(split.train), len(split.calibration), len(split.test)) == (70, 15, 15)
    assert at[split.train].max() < at[split.calibration].min() <= at[split.calibration].max() < at[split.test].min()


def test_the_model_learns_the_ground_truth_and_beats_the_priors(data):
    trained = train_model(data, "nbo", TrainingConfig(num_trees=60))
    holdout = trained.metadata.metrics["holdout"]
    split = time_split(data.at, 0.15, 0.15)
    test = data.subset(split.test)
    offers = {o.id: o for o in synthetic_offers(16)}
    prior = PriorScorer().score(CustomerFeatures("c", {}), Context("web", NOW), [offers[i] for i in test.offer_ids])
    assert holdout["auc"] > auc(test.y, prior) + 0.05
    assert holdout["rows"] == len(test) and trained.metadata.training_rows == len(split.train)
    assert abs(holdout["mean_prediction"] - holdout["positive_rate"]) < 0.02  # calibrated on average
    assert set(trained.metadata.offer_ids) == set(offers)
    assert trained.booster.num_trees() == 60


def test_global_and_per_offer_models_are_compared_on_the_same_rows(data):
    result = compare_global_vs_per_offer(data, TrainingConfig(num_trees=30), min_positives=20)
    assert result.test_rows == len(time_split(data.at, 0.15, 0.15).test)
    assert 0.5 < result.global_auc < 1 and 0.5 < result.per_offer_auc < 1
    assert 0 < result.offers_with_own_model <= 16
    assert 0.4 < result.global_within_offer_auc < 1 and 0.4 < result.per_offer_within_offer_auc < 1
