"""`choice_probabilities`: the arbitration's distribution at each rank, computed instead of drawn. It must
agree with the probability `arbitrate` logs for what it chose, and with how often it chooses each offer."""

from __future__ import annotations

from collections import Counter

import pytest

from decisioning.arbitration import Candidate, arbitrate, choice_probabilities
from decisioning.catalogue import ArbitrationSettings, ControlMode, ExplorationKind
from decisioning.contact_policy import Headroom
from tests.unit.factories import offer

GREEDY = ArbitrationSettings(max_per_group=None)
EPSILON = ArbitrationSettings(max_per_group=None, exploration=ExplorationKind.EPSILON, epsilon=0.3)
THOMPSON = ArbitrationSettings(max_per_group=None, exploration=ExplorationKind.THOMPSON, thompson_strength=20)


def cand(offer_id: str, p: float, group: str = "cards", **kw) -> Candidate:
    return Candidate(offer(offer_id, group), p, 100.0, 1.0, 1.0, **kw)


CANDIDATES = [cand("a", 0.5), cand("b", 0.3), cand("c", 0.1, group="loans"), cand("d", 0.05)]


@pytest.mark.parametrize("settings", [GREEDY, EPSILON, THOMPSON], ids=["greedy", "epsilon", "thompson"])
@pytest.mark.parametrize("control", [False, True])
def test_the_chosen_offer_has_the_probability_the_arbitration_logged(settings, control):
    for seed in range(30):
        result = arbitrate(CANDIDATES, 3, settings, control=control, seed=seed)
        path = [s.candidate.offer.id for s in result.selected]
        distributions = choice_probabilities(CANDIDATES, path, settings, control=control, seed=seed)
        for selection, distribution in zip(result.selected, distributions, strict=True):
            assert distribution[selection.candidate.offer.id] == pytest.approx(selection.selection_probability)
            assert sum(distribution.values()) == pytest.approx(1.0)


def test_epsilon_greedy_distribution_by_hand():
    [first, second] = choice_probabilities(CANDIDATES, ["b", "a"], EPSILON)
    assert first == pytest.approx({"a": 0.7 + 0.3 / 4, "b": 0.3 / 4, "c": 0.3 / 4, "d": 0.3 / 4})
    # With b taken at rank 1, rank 2 chooses among a, c, d with a greedy.
    assert second == pytest.approx({"a": 0.7 + 0.1, "c": 0.1, "d": 0.1})


def test_the_distribution_matches_how_often_offers_are_chosen():
    picks = Counter(arbitrate(CANDIDATES, 1, THOMPSON, seed=s).selected[0].candidate.offer.id for s in range(3000))
    # The distribution of one seed estimates the choice of that seed's draws; averaged over seeds it is the
    # policy's marginal, which the picks' frequencies estimate too.
    average = Counter()
    for s in range(300):
        average.update(choice_probabilities(CANDIDATES, ["a"], THOMPSON, seed=s)[0])
    for offer_id in ("a", "b"):
        assert picks[offer_id] / 3000 == pytest.approx(average[offer_id] / 300, abs=0.04)


def test_greedy_gives_zero_to_a_logged_offer_it_would_not_choose_and_nothing_after():
    distributions = choice_probabilities(CANDIDATES, ["b", "a"], GREEDY)
    assert distributions == [{"a": 1.0}, {}]


def test_an_offer_no_longer_a_candidate_ends_the_path():
    assert choice_probabilities(CANDIDATES, ["gone", "a"], EPSILON)[1] == {}


def test_group_and_headroom_constraints_shape_the_distribution():
    settings = ArbitrationSettings(max_per_group=1, exploration=ExplorationKind.EPSILON, epsilon=0.3)
    [_, second] = choice_probabilities(CANDIDATES, ["a", "c"], settings)
    assert set(second) == {"c"}, "b and d share a's group"
    room = Headroom("loans_week", frozenset({"c"}), 0)
    [first] = choice_probabilities(CANDIDATES, ["a"], EPSILON, headroom=[room])
    assert "c" not in first


def test_a_control_group_shown_nothing():
    settings = ArbitrationSettings(control_mode=ControlMode.NONE)
    assert choice_probabilities(CANDIDATES, ["a"], settings, control=True) == [{}]


def test_a_pinned_offer_keeps_its_place():
    pinned = [cand("a", 0.5), cand("b", 0.1, pinned=True)]
    assert choice_probabilities(pinned, ["b"], EPSILON) == [{"b": 1.0}]
