"""PriorScorer: the catalogue prior, or a Beta posterior around it."""

from __future__ import annotations

import numpy as np
import pytest

from decisioning.types import Context, CustomerFeatures
from models.prior import PriorScorer
from tests.unit.factories import NOW, offer

OFFERS = [offer("a", prior=0.05), offer("b", prior=0.2)]
WHO, WHERE = CustomerFeatures("c-1", {}), Context("web", NOW)


def test_without_counts_every_offer_scores_its_prior():
    scorer = PriorScorer()
    assert scorer.version == "prior"
    assert scorer.score(WHO, WHERE, OFFERS).tolist() == [0.05, 0.2]
    assert scorer.score(WHO, WHERE, []).shape == (0,)
    assert scorer.for_customer("c-1") is scorer


def test_counts_move_the_score_from_the_prior_toward_the_observed_rate():
    few = PriorScorer({"a": (2, 10)}, strength=20).score(WHO, WHERE, OFFERS)
    many = PriorScorer({"a": (2_000, 10_000)}, strength=20).score(WHO, WHERE, OFFERS)
    assert few[0] == pytest.approx((0.05 * 20 + 2) / 30)
    assert many[0] == pytest.approx(0.2, abs=0.001)
    assert few[1] == many[1] == 0.2  # no data: still the prior
    assert PriorScorer({"a": (1, 2)}).version == "prior-beta"


def test_strength_must_be_positive():
    with pytest.raises(ValueError):
        PriorScorer(strength=0)


def test_scores_are_a_float_array():
    assert PriorScorer().score(WHO, WHERE, OFFERS).dtype == np.float64
