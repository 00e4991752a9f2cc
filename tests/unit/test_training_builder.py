"""Settling and the training-set builder, on hand-made history rows (no database)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from decisioning.catalogue import FeatureSpec, FeatureType, feature_schema_version
from decisioning.types import DAY
from history.training_rows import TrainingContact
from models.encoding import FeatureEncoder
from models.learning import TrainingSetBuilder
from models.settling import NO_SNAPSHOT, NOT_DISPLAYED, OTHER_SCHEMA, PENDING, settle
from tests.unit.factories import catalogue, offer

T0 = 1_790_000_000.0
SPECS = (
    FeatureSpec("age", FeatureType.NUMBER, 40),
    FeatureSpec("segment", FeatureType.CATEGORY, "mass", categories=("mass", "gold")),
)
WINDOW = 7 * DAY  # the factories' catalogue: the default response window of 7 days


@pytest.mark.parametrize(
    ("accepted", "refused", "as_of", "label"),
    [
        (None, None, T0 + 6 * DAY, None),  # window open, nothing said: not settled
        (None, None, T0 + 7 * DAY, 0),  # window closed: ignored
        (T0 + DAY, None, T0 + 2 * DAY, 1),  # accepted: settled at once
        (None, T0 + DAY, T0 + 2 * DAY, 0),  # declined / ignored: settled at once
        (T0 + 3 * DAY, T0 + DAY, T0 + 4 * DAY, 1),  # refused, then accepted inside the window: accepted
        (T0 + 3 * DAY, T0 + DAY, T0 + 2 * DAY, 0),  # the acceptance is not known yet at as_of
        (T0 + 8 * DAY, None, T0 + 9 * DAY, 0),  # accepted after the window closed: too late
        (T0 + 8 * DAY, None, T0 + 6 * DAY, None),  # (and not known yet)
    ],
)
def test_settling(accepted, refused, as_of, label):
    assert settle(T0, WINDOW, accepted_at=accepted, refused_at=refused, as_of=as_of) == label


def _catalogue():
    return dataclasses.replace(catalogue([offer("card_gold"), offer("loan_car", group="loans")]), features=SPECS)


def _contact(n: int, **kw) -> TrainingContact:
    base = dict(
        contact_id=f"d-{n}", decision_id=f"d-{n}", offer_id="card_gold", customer_id=f"c-{n}", at=T0 + n,
        channel="web", group="cards", intent=None, features=[30.0 + n, "gold"],
        feature_schema=feature_schema_version(SPECS),
        accepted_at=None, refused_at=None, not_displayed_at=None,
    )  # fmt: skip
    return TrainingContact(**{**base, **kw})


def _builder(as_of: float, expected: int = 0) -> TrainingSetBuilder:
    cat = _catalogue()
    encoder = FeatureEncoder(SPECS, ["card_gold", "loan_car"], ["cards", "loans"], ["web", "call_centre"], [])
    return TrainingSetBuilder(cat, encoder, as_of, expected_rows=expected)


def test_the_builder_keeps_settled_contacts_with_their_stored_features_and_counts_the_rest():
    builder = _builder(as_of=T0 + 3 * DAY)
    builder.add([
        _contact(1, accepted_at=T0 + DAY),  # accepted: 1
        _contact(2, refused_at=T0 + DAY),  # declined: 0, at once
        _contact(3),  # window open: pending
        _contact(4, accepted_at=T0 + DAY, not_displayed_at=T0 + 10),  # never shown
        _contact(5, accepted_at=T0 + DAY, features=None, feature_schema=None),  # recorded before 0004
        _contact(6, accepted_at=T0 + DAY, feature_schema="another"),  # another schema's order
    ])  # fmt: skip
    data, channels = builder.finish()
    assert data.y.tolist() == [1.0, 0.0]
    assert data.x[:, 0].tolist() == [31.0, 32.0]  # age, as each decision stored it
    assert data.x[:, 1].tolist() == [1.0, 1.0]  # segment "gold" -> its category code
    assert builder.counts.left_out == {PENDING: 1, NOT_DISPLAYED: 1, NO_SNAPSHOT: 1, OTHER_SCHEMA: 1}
    assert (builder.counts.read, builder.counts.kept, builder.counts.positives) == (6, 2, 1)
    assert channels.tolist() == ["web", "web"]


def test_snapshot_rows_encode_exactly_as_serving_rows_do():
    from models.encoding import EncodingRow

    builder = _builder(as_of=T0 + 30 * DAY)
    contact = _contact(1, channel="call_centre", offer_id="loan_car", group="loans")
    builder.add([contact])
    data, _ = builder.finish()
    by_name = EncodingRow({"age": 31.0, "segment": "gold"}, "loan_car", "loans", "call_centre", None, contact.at)
    np.testing.assert_array_equal(data.x, builder.encoder.encode_many([by_name]))


def test_the_builder_grows_past_its_expected_size_across_chunks():
    builder = _builder(as_of=T0 + 30 * DAY, expected=2)
    for start in range(0, 10, 3):
        builder.add([_contact(n) for n in range(start, min(start + 3, 10))])
    data, _ = builder.finish()
    assert len(data) == 10 and data.at.tolist() == [T0 + n for n in range(10)]
