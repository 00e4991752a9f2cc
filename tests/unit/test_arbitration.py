"""Arbitration: priority, ties, constraints, exploration, control group, logged selection probabilities."""

from __future__ import annotations

from collections import Counter

import pytest

from decisioning.arbitration import Candidate, arbitrate, in_control_group
from decisioning.catalogue import ArbitrationSettings, ControlMode, ExplorationKind
from decisioning.contact_policy import Headroom
from tests.unit.factories import NOW, offer

GREEDY = ArbitrationSettings(max_per_group=None)


def cand(offer_id: str, p: float, value: float = 100.0, group: str = "cards", **kw) -> Candidate:
    return Candidate(offer(offer_id, group), p, value, kw.pop("lever", 1.0), kw.pop("weight", 1.0), **kw)


def ids(result) -> list[str]:
    return [s.candidate.offer.id for s in result.selected]


def test_priority_is_propensity_times_value_times_lever_times_context_weight():
    c = cand("a", 0.2, 50.0, lever=1.5, weight=0.5, boost=2.0)
    assert c.priority == pytest.approx(0.2 * 50 * 1.5 * 0.5 * 2.0)
    result = arbitrate([cand("low_p_high_value", 0.05, 1000), cand("high_p", 0.5, 50)], 2, GREEDY)
    assert ids(result) == ["low_p_high_value", "high_p"]
    assert [s.rank for s in result.selected] == [1, 2]


def test_ties_are_broken_by_offer_id_whatever_the_input_order():
    tied = [cand("b", 0.1), cand("c", 0.1), cand("a", 0.1)]
    assert ids(arbitrate(tied, 3, GREEDY)) == ["a", "b", "c"]
    assert ids(arbitrate(list(reversed(tied)), 3, GREEDY)) == ["a", "b", "c"]


def test_top_n_and_at_most_one_per_group():
    cs = [cand("gold", 0.5), cand("cashback", 0.4), cand("loan", 0.1, group="loans")]
    result = arbitrate(cs, 3, ArbitrationSettings(max_per_group=1))
    assert ids(result) == ["gold", "loan"]
    assert "group 'cards' already has 1" in result.passed_over["cashback"]
    assert ids(arbitrate(cs, 1, GREEDY)) == ["gold"]
    assert "ranked 2 of 3" in arbitrate(cs, 1, GREEDY).passed_over["cashback"]


def test_policy_headroom_limits_this_decision():
    cs = [cand("gold", 0.5), cand("cashback", 0.4), cand("loan", 0.1, group="loans")]
    room = Headroom("cards_week", frozenset({"gold", "cashback"}), 1)
    result = arbitrate(cs, 3, GREEDY, headroom=[room])
    assert ids(result) == ["gold", "loan"]
    assert "contact policy 'cards_week' allows 1 more" in result.passed_over["cashback"]


def test_greedy_choices_have_probability_one():
    result = arbitrate([cand("a", 0.3), cand("b", 0.2)], 2, GREEDY)
    assert [s.selection_probability for s in result.selected] == [1.0, 1.0]
    assert result.mode == "greedy"


def test_epsilon_greedy_logs_the_probability_of_each_choice():
    settings = ArbitrationSettings(max_per_group=None, exploration=ExplorationKind.EPSILON, epsilon=0.2)
    cs = [cand("a", 0.5), cand("b", 0.3), cand("c", 0.1), cand("d", 0.05)]
    picks: Counter[str] = Counter()
    for seed in range(4000):
        [s] = arbitrate(cs, 1, settings, seed=seed).selected
        expected = 0.8 + 0.2 / 4 if s.candidate.offer.id == "a" else 0.2 / 4
        assert s.selection_probability == pytest.approx(expected)
        picks[s.candidate.offer.id] += 1
    assert picks["a"] / 4000 == pytest.approx(0.85, abs=0.03)
    assert picks["d"] / 4000 == pytest.approx(0.05, abs=0.02)


def test_epsilon_probability_of_a_later_rank_is_conditional_on_the_earlier_ones():
    settings = ArbitrationSettings(max_per_group=None, exploration=ExplorationKind.EPSILON, epsilon=0.3)
    cs = [cand("a", 0.5), cand("b", 0.3), cand("c", 0.1)]
    result = arbitrate(cs, 2, settings, seed=1)
    second = result.selected[1]
    remaining_best = next(c for c in ("a", "b", "c") if c != result.selected[0].candidate.offer.id)
    greedy = second.candidate.offer.id == remaining_best
    assert second.selection_probability == pytest.approx(0.7 * greedy + 0.3 / 2)


def test_thompson_sampling_probabilities_are_estimates_that_sum_to_one():
    settings = ArbitrationSettings(
        max_per_group=None, exploration=ExplorationKind.THOMPSON, thompson_strength=20
    )
    cs = [cand("a", 0.30), cand("b", 0.28), cand("c", 0.01)]
    picks: Counter[str] = Counter()
    for seed in range(300):
        [s] = arbitrate(cs, 1, settings, seed=seed).selected
        assert 0 < s.selection_probability <= 1
        picks[s.candidate.offer.id] += 1
    assert picks["a"] > picks["c"] and picks["b"] > 0  # close rivals both get explored


def test_control_group_is_stable_and_about_its_share():
    settings = ArbitrationSettings(control_share=0.1, control_salt="2026")
    members = [in_control_group(f"c-{i:06d}", settings, NOW) for i in range(20_000)]
    assert sum(members) / len(members) == pytest.approx(0.1, abs=0.01)
    assert members == [in_control_group(f"c-{i:06d}", settings, NOW) for i in range(20_000)]
    other_salt = ArbitrationSettings(control_share=0.1, control_salt="2027")
    assert members != [in_control_group(f"c-{i:06d}", other_salt, NOW) for i in range(20_000)]


def test_control_group_period_rotates_membership_by_month():
    settings = ArbitrationSettings(control_share=0.5, control_period="month")
    nov = [in_control_group(f"c-{i}", settings, NOW) for i in range(2000)]
    dec = [in_control_group(f"c-{i}", settings, NOW + 31 * 86_400) for i in range(2000)]
    assert nov != dec


def test_control_customers_get_a_uniform_random_eligible_offer():
    cs = [cand("a", 0.9), cand("b", 0.1), cand("c", 0.1, group="loans"), cand("d", 0.1, group="loans")]
    result = arbitrate(
        cs, 2, ArbitrationSettings(max_per_group=None), control=True, seed=3
    )
    assert result.mode == "control"
    assert [s.selection_probability for s in result.selected] == [pytest.approx(1 / 4), pytest.approx(1 / 3)]


def test_control_mode_none_presents_nothing():
    settings = ArbitrationSettings(control_mode=ControlMode.NONE)
    result = arbitrate([cand("a", 0.9)], 1, settings, control=True)
    assert result.selected == () and result.passed_over["a"].startswith("control group")


def test_pinned_offer_keeps_its_place_even_when_outscored():
    cs = [cand("a", 0.9), cand("seen_on_web", 0.01, group="loans", pinned=True)]
    result = arbitrate(cs, 1, GREEDY)
    assert ids(result) == ["seen_on_web"] and result.selected[0].selection_probability == 1.0
