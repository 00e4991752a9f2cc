"""Cold start: per-offer Beta posteriors, Thompson sampling over them, and logged selection probabilities."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from decisioning.arbitration import Candidate, arbitrate
from decisioning.catalogue import ArbitrationSettings, ExplorationKind
from decisioning.engine import DecisionRequest, decide
from decisioning.summary import HistorySummary
from models.posterior import LearningScorer, OfferPosteriors
from tests.unit.factories import FixedScorer, catalogue, context, customer, offer

THOMPSON = ArbitrationSettings(max_per_group=None, exploration=ExplorationKind.THOMPSON, consistency_boost=1.0)


class KnowingScorer(FixedScorer):
    """A trained model stand-in: it knows the offers it has a propensity for, and no others."""

    version = "model-1"

    @property
    def known_offer_ids(self) -> frozenset[str]:
        return frozenset(self.propensities)


def first_offers(cat, scorer, n: int = 600) -> Counter[str]:
    shown: Counter[str] = Counter()
    for i in range(n):
        request = DecisionRequest(f"d-{i}", customer(f"c-{i}"), context("web"), max_offers=1)
        decision = decide(cat, request, HistorySummary(), scorer)
        shown[decision.offers[0].offer.id] += 1
    return shown


def test_a_new_offer_with_no_data_gets_tried_next_to_a_model_that_does_not_know_it():
    cat = catalogue([offer("a", prior=0.05), offer("b", prior=0.05), offer("new", prior=0.05)], settings=THOMPSON)
    scorer = LearningScorer(KnowingScorer({"a": 0.10, "b": 0.08}), OfferPosteriors())
    shown = first_offers(cat, scorer)
    assert shown["new"] >= 30, shown  # its wide Beta(1, 19) beats the known offers' draws now and then
    # Once it has been shown 2,000 times without an accept, its posterior is narrow and low: it stops.
    learnt = LearningScorer(scorer.model, OfferPosteriors({"new": (0, 2000)}))
    assert first_offers(cat, learnt)["new"] == 0  # deterministic: the draws are seeded by the decision ids


def test_without_any_model_every_offer_is_scored_and_explored_by_its_posterior():
    cat = catalogue([offer("old", prior=0.05), offer("new", prior=0.05)], settings=THOMPSON)
    scorer = LearningScorer(None, OfferPosteriors({"old": (12, 100)}))
    assert scorer.version == "prior-beta"
    propensities = scorer.score(customer(), context(), cat.offers)
    assert propensities.tolist() == pytest.approx([(1 + 12) / 120, 0.05])
    shown = first_offers(cat, scorer)
    assert shown["old"] > shown["new"] > 30


def test_the_posterior_mean_moves_with_accepts_and_declines():
    new = offer("new", prior=0.05)
    assert OfferPosteriors().mean(new) == pytest.approx(0.05)
    assert OfferPosteriors({"new": (80, 100)}).mean(new) == pytest.approx((1 + 80) / 120)
    assert OfferPosteriors({"new": (0, 1000)}).mean(new) == pytest.approx(1 / 1020)
    # More data, narrower posterior: the Beta's concentration is the prior's strength plus the contacts.
    assert OfferPosteriors({"new": (0, 1000)}).concentration(new) == pytest.approx(1020)


def test_the_model_scores_the_offers_it_knows_and_the_posterior_the_others():
    scorer = LearningScorer(KnowingScorer({"a": 0.3}), OfferPosteriors({"a": (0, 500), "new": (10, 20)}))
    offers = [offer("a"), offer("new", prior=0.1)]
    assert scorer.score(customer(), context(), offers).tolist() == pytest.approx([0.3, (2 + 10) / 40])
    assert scorer.concentrations(offers) == [None, pytest.approx(40.0)]
    assert scorer.version == "model-1"


def test_a_decision_is_reproducible_from_its_id():
    cat = catalogue([offer("a"), offer("b"), offer("c")], settings=THOMPSON)
    scorer = LearningScorer(None, OfferPosteriors())
    request = DecisionRequest("d-42", customer(), context(), max_offers=3)
    runs = [decide(cat, request, HistorySummary(), scorer) for _ in range(2)]
    assert [(p.offer.id, p.selection_probability) for p in runs[0].offers] == [
        (p.offer.id, p.selection_probability) for p in runs[1].offers
    ]


def test_the_logged_selection_probability_matches_the_empirical_frequency():
    posteriors = {"a": (0.10, 40.0), "b": (0.08, 60.0), "c": (0.05, 20.0)}
    candidates = [
        Candidate(offer(i), p, 100.0, 1.0, 1.0, concentration=n) for i, (p, n) in posteriors.items()
    ]
    runs = 3000
    picks: Counter[str] = Counter()
    logged: dict[str, list[float]] = {i: [] for i in posteriors}
    for seed in range(runs):
        result = arbitrate(candidates, 2, THOMPSON, seed=seed, explain=False)
        first = result.selected[0]
        picks[first.candidate.offer.id] += 1
        logged[first.candidate.offer.id].append(first.selection_probability)
        assert all(0.0 < s.selection_probability <= 1.0 for s in result.selected)
    for offer_id in posteriors:
        frequency = picks[offer_id] / runs
        assert frequency > 0.05  # every offer wins sometimes: the test means something for each
        assert np.mean(logged[offer_id]) == pytest.approx(frequency, abs=0.03)


def test_a_model_scored_offer_still_samples_around_its_estimate():
    # No concentration: the Beta around the estimate worth `thompson_strength` pseudo-observations.
    candidates = [Candidate(offer("a"), 0.5, 1.0, 1.0, 1.0), Candidate(offer("b"), 0.45, 1.0, 1.0, 1.0)]
    picks = Counter(arbitrate(candidates, 1, THOMPSON, seed=s).selected[0].candidate.offer.id for s in range(400))
    assert picks["a"] > picks["b"] > 40


def test_behind_a_champion_challenger_split_each_decision_logs_the_version_that_scored_it():
    from models.registry import ChampionChallengerScorer

    champion, challenger = KnowingScorer({"a": 0.1}), KnowingScorer({"a": 0.4})
    champion.version, challenger.version = "champion-1", "challenger-1"
    split = ChampionChallengerScorer(champion, challenger, share=0.5)
    scorer = LearningScorer(split, OfferPosteriors())
    cat = catalogue([offer("a")])
    for i in range(40):
        chosen = scorer.for_customer(f"c-{i}")
        expected = challenger if split.is_challenger(f"c-{i}") else champion
        assert chosen.version == expected.version
        request = DecisionRequest(f"d-{i}", customer(f"c-{i}"), context(), max_offers=1)
        decision = decide(cat, request, HistorySummary(), chosen)
        assert decision.model_version == expected.version
        assert decision.offers[0].propensity == pytest.approx(expected.propensities["a"])


def test_a_trained_model_scores_its_offers_and_a_new_offer_gets_its_posterior(tmp_path):
    from decisioning.catalogue import FeatureSpec, FeatureType
    from models.registry import ModelRegistry
    from models.synthetic import synthetic_offers, synthetic_training_set
    from models.training import TrainingConfig, train_model

    specs = (FeatureSpec("age", FeatureType.NUMBER, 40),)
    known = synthetic_offers(3)
    trained = train_model(synthetic_training_set(specs, known, rows=1_500), "nbo", TrainingConfig(num_trees=2))
    registry = ModelRegistry(tmp_path)
    registry.register(trained.model_text(), trained.metadata)
    model = registry.load("nbo", compiled=False)
    scorer = LearningScorer(model, OfferPosteriors({"brand_new": (3, 10)}))
    offers = [*known, offer("brand_new", prior=0.1)]
    scores = scorer.score(customer(age=30), context(), offers)
    assert scores[:3].tolist() == pytest.approx(model.score(customer(age=30), context(), known).tolist())
    assert scores[3] == pytest.approx((2 + 3) / 30)
    assert scorer.concentrations(offers) == [None, None, None, pytest.approx(30.0)]
