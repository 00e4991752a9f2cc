"""The design matrix: one global model with offer, group, channel and intent columns."""

from __future__ import annotations

import math
import pickle

import numpy as np
import orjson
import pytest

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.types import DAY, Context, CustomerFeatures
from models.encoding import OFFER_COLUMNS, EncodingRow, FeatureEncoder
from tests.unit.factories import NOW, offer

SPECS = (
    FeatureSpec("age", FeatureType.NUMBER, 40),
    FeatureSpec("has_credit_card", FeatureType.BOOL, False),
    FeatureSpec("segment", FeatureType.CATEGORY, "mass", categories=("student", "mass", "affluent")),
    FeatureSpec("churn_signal_at", FeatureType.NUMBER, None),
)


@pytest.fixture
def encoder() -> FeatureEncoder:
    return FeatureEncoder(SPECS, ["card_gold", "loan_car"], ["cards", "loans"], ["web", "email"], ["complaint"])


def test_columns_are_the_schema_then_offer_group_channel_intent(encoder):
    assert encoder.columns == ("age", "has_credit_card", "segment", "churn_signal_at", *OFFER_COLUMNS)
    assert encoder.categorical_indices == [2, 4, 5, 6, 7]


def test_each_feature_type_is_encoded_and_missing_values_are_nan(encoder):
    values = {"age": 31, "has_credit_card": True, "segment": "affluent", "churn_signal_at": NOW - 2.5 * DAY}
    row = encoder.encode(CustomerFeatures("c-1", values), Context("email", NOW), [offer("loan_car", "loans")])
    assert _same(row[0], [31.0, 1.0, 2.0, 2.5, 1.0, 1.0, 1.0, math.nan])
    empty = encoder.encode(CustomerFeatures("c-2", {}), Context("web", NOW, intent="complaint"), [offer("card_gold")])
    assert _same(empty[0], [math.nan, math.nan, math.nan, math.nan, 0.0, 0.0, 0.0, 0.0])


def _same(row: np.ndarray, expected: list[float]) -> bool:
    return bool(np.array_equal(row, np.array(expected), equal_nan=True))


def test_unknown_category_channel_intent_and_bad_numbers_become_nan(encoder):
    values = {"age": "n/a", "segment": "pirate", "has_credit_card": False}
    row = encoder.encode(CustomerFeatures("c", values), Context("pigeon", NOW, intent="bored"), [offer("card_gold")])
    assert _same(row[0], [math.nan, 0.0, math.nan, math.nan, 0.0, 0.0, math.nan, math.nan])


def test_epoch_features_become_days_ago_at_the_decision_time(encoder):
    values = {"churn_signal_at": NOW - 3 * DAY}
    at = encoder.columns.index("churn_signal_at")
    later = encoder.encode(CustomerFeatures("c", values), Context("web", NOW + 4 * DAY), [offer("card_gold")])
    future = encoder.encode(CustomerFeatures("c", values), Context("web", NOW - 5 * DAY), [offer("card_gold")])
    assert later[0, at] == pytest.approx(7.0)
    assert future[0, at] == 0.0  # an event clock slightly ahead of ours means "just now"


def test_a_new_offer_has_no_offer_code_but_keeps_its_known_group(encoder):
    rows = encoder.encode(CustomerFeatures("c", {}), Context("web", NOW), [offer("card_new", "cards")])
    assert math.isnan(rows[0, 4]) and rows[0, 5] == 0.0
    assert encoder.knows_offer("card_gold") and not encoder.knows_offer("card_new")


def test_the_customer_part_is_broadcast_to_every_offer_in_order(encoder):
    offers = [offer("loan_car", "loans"), offer("card_gold"), offer("loan_car", "loans")]
    rows = encoder.encode(CustomerFeatures("c", {"age": 50}), Context("web", NOW), offers)
    assert rows.shape == (3, 8)
    assert rows[:, 0].tolist() == [50.0] * 3 and rows[:, 4].tolist() == [1.0, 0.0, 1.0]


def test_no_offers_gives_an_empty_matrix(encoder):
    assert encoder.encode(CustomerFeatures("c", {}), Context("web", NOW), []).shape == (0, 8)
    assert encoder.encode_many([]).shape == (0, 8)


def test_batch_encoding_equals_one_at_a_time():
    rng = np.random.default_rng(0)
    encoder = FeatureEncoder(SPECS, ["a", "b", "c"], ["g1", "g2"], ["web", "sms"], ["complaint"])
    offers = [offer("a", "g1"), offer("b", "g2"), offer("c", "g1"), offer("new", "g2")]
    rows, singles = [], []
    for i in range(200):
        values = {
            "age": None if rng.random() < 0.2 else float(rng.integers(16, 90)),
            "has_credit_card": bool(rng.random() < 0.5),
            "segment": rng.choice(["student", "mass", "affluent", "other"]),
            "churn_signal_at": NOW - float(rng.uniform(0, 60)) * DAY if rng.random() < 0.3 else None,
        }
        o = offers[i % 4]
        ctx = Context(["web", "sms", "branch"][i % 3], NOW + i, intent=["complaint", None][i % 2])
        rows.append(EncodingRow(values, o.id, o.group, ctx.channel, ctx.intent, ctx.now))
        singles.append(encoder.encode(CustomerFeatures("c", values), ctx, [o])[0])
    assert np.array_equal(encoder.encode_many(rows), np.array(singles), equal_nan=True)


def test_the_encoder_survives_json_and_pickle(encoder):
    values = {"age": 30, "segment": "student", "churn_signal_at": NOW - DAY}
    ctx, offers = Context("web", NOW, intent="complaint"), [offer("card_gold"), offer("x", "loans")]
    expected = encoder.encode(CustomerFeatures("c", values), ctx, offers)
    for again in (
        FeatureEncoder.from_dict(orjson.loads(orjson.dumps(encoder.to_dict()))),
        pickle.loads(pickle.dumps(encoder)),
    ):
        assert again.columns == encoder.columns
        assert np.array_equal(again.encode(CustomerFeatures("c", values), ctx, offers), expected, equal_nan=True)
