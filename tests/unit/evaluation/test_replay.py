"""Replay on logged decisions held in memory: the rows the estimators get (prefix probabilities by hand),
what is left out and why, the history as it was at decision time, and the report's counts."""

from __future__ import annotations

import pytest

from decisioning.catalogue import ArbitrationSettings, ExplorationKind
from decisioning.summary import HistorySummary
from decisioning.types import DAY, ContactEvent, Outcome
from evaluation.history_reads import KnownEvent, LoggedDecision, LoggedOffer
from evaluation.ope_rows import NEVER_SENT, NOT_DISPLAYED, WINDOW_OPEN, OpeRowBuilder
from evaluation.redecide import NO_FEATURES, OTHER_SCHEMA, CustomerHistories, Policy, Redecided, redecide
from evaluation.replay import ReplayOptions, replay_decisions
from tests.unit.factories import NOW, FixedScorer, catalogue, offer, policy

EPSILON = ArbitrationSettings(max_per_group=None, exploration=ExplorationKind.EPSILON, epsilon=0.3)
OFFERS = [offer("a", "cards"), offer("b", "loans"), offer("c", "savings")]
CATALOGUE = catalogue(OFFERS, settings=EPSILON)
SCORER = FixedScorer({"a": 0.5, "b": 0.3, "c": 0.1})
POLICY = Policy(CATALOGUE, SCORER)
UNTIL = NOW + 30 * DAY  # every default (7-day) response window has closed


def shown(offer_id: str, rank: int, probability: float, *, accepted: bool = False, **kw: float) -> LoggedOffer:
    group = {"a": "cards", "b": "loans", "c": "savings"}[offer_id]
    return LoggedOffer(offer_id, group, rank, probability, 100.0, NOW + 60 if accepted else None,
                       kw.get("refused_at"), kw.get("not_displayed_at"))  # fmt: skip


def logged(decision_id: str, *offers: LoggedOffer, customer: str = "c-1", at: float = NOW, **kw) -> LoggedDecision:
    return LoggedDecision(
        decision_id, customer, at, "web", None, None, False, "fixed-1", "test", {},
        kw.get("features", []), kw.get("schema", CATALOGUE.feature_schema), tuple(offers),
    )  # fmt: skip


def made(decision: LoggedDecision, summary: HistorySummary | None = None) -> Redecided:
    result = redecide(POLICY, decision, summary or HistorySummary())
    assert isinstance(result, Redecided)
    return result


def test_rows_carry_prefix_probabilities_by_hand():
    # Logged: b then a. The candidate (same catalogue): rank 1 greedy a, so b has 0.3/3 = 0.1; with b
    # taken, rank 2 chooses among a (greedy: 0.7 + 0.15) and c (0.15).
    decision = logged("d-1", shown("b", 1, 0.2, accepted=True), shown("a", 2, 0.5))
    redecided = made(decision)
    assert redecided.distributions[0] == pytest.approx({"a": 0.8, "b": 0.1, "c": 0.1})
    assert redecided.distributions[1] == pytest.approx({"a": 0.85, "c": 0.15})
    builder = OpeRowBuilder(CATALOGUE, UNTIL)
    builder.add(decision, redecided)
    rows = builder.rows
    assert rows.logging_probability == pytest.approx([0.2, 0.2 * 0.5])
    assert rows.target_probability == pytest.approx([0.1, 0.1 * 0.85])
    assert rows.prefix_target == pytest.approx([1.0, 0.1])
    assert rows.accepted == [1.0, 0.0] and rows.value == [100.0, 0.0]
    assert [a for a, *_ in rows.alternatives[1]] == ["a", "c"]


def test_decisions_with_an_open_window_are_left_out_whatever_their_answer():
    builder = OpeRowBuilder(CATALOGUE, NOW + 3 * DAY)
    for i, accepted in enumerate((True, False)):
        decision = logged(f"d-{i}", shown("a", 1, 0.8, accepted=accepted))
        builder.add(decision, made(decision))
    assert len(builder.rows) == 0 and builder.rows.left_out == {WINDOW_OPEN: 2}


def test_an_offer_not_displayed_is_no_row_but_still_weighs_the_ranks_below():
    decision = logged("d-1", shown("b", 1, 0.2, not_displayed_at=NOW + 1), shown("a", 2, 0.5, accepted=True))
    builder = OpeRowBuilder(CATALOGUE, UNTIL)
    builder.add(decision, made(decision))
    assert builder.rows.left_out == {NOT_DISPLAYED: 1}
    assert builder.rows.logging_probability == pytest.approx([0.1])
    assert builder.rows.target_probability == pytest.approx([0.085])


def test_an_outbound_selection_never_sent_is_no_row():
    never = LoggedOffer("b", "loans", 1, 0.2, 100.0, None, None, None, never_sent=True)
    decision = logged("d-1", never, shown("a", 2, 0.5))
    builder = OpeRowBuilder(CATALOGUE, UNTIL)
    builder.add(decision, made(decision))
    assert builder.rows.left_out == {NEVER_SENT: 1} and len(builder.rows) == 1


def test_decisions_without_their_features_or_in_another_schema_are_not_replayed():
    assert redecide(POLICY, logged("d-1", shown("a", 1, 1.0), features=None), HistorySummary()) == NO_FEATURES
    assert redecide(POLICY, logged("d-1", shown("a", 1, 1.0), schema="older"), HistorySummary()) == OTHER_SCHEMA


def known(at: float, offer_id: str, outcome: str, decision_id: str, known_at: float | None = None) -> KnownEvent:
    group = {"a": "cards", "b": "loans", "c": "savings"}[offer_id]
    event = ContactEvent(at, offer_id, group, "web", Outcome(outcome), decision_id)
    return KnownEvent(at if known_at is None else known_at, event)


def test_the_history_is_what_the_service_knew_at_decision_time():
    decision = logged("d-2", shown("a", 1, 0.8), at=NOW)
    histories = CustomerHistories({"c-1": [
        known(NOW - 2 * DAY, "b", "presented", "d-1"),
        known(NOW - DAY, "b", "declined", "d-1"),
        known(NOW, "a", "presented", "d-2"),  # the decision's own contact
        known(NOW - DAY, "c", "declined", "d-0", known_at=NOW + 60),  # recorded after the decision
    ]})  # fmt: skip
    events = histories.summary_at(decision).events
    assert [(e.offer_id, e.outcome.value) for e in events] == [("b", "presented"), ("b", "declined")]


def test_a_contact_policy_that_fires_on_the_history_drops_the_offer_in_the_replay():
    cool_off = policy("cool_off", ["declined"], days=30, suppress_days=30)
    strict = Policy(catalogue(OFFERS, [cool_off], settings=EPSILON), SCORER)
    decision = logged("d-2", shown("a", 1, 0.8, accepted=True))
    history = {"c-1": [known(NOW - 2 * DAY, "a", "presented", "d-1"), known(NOW - DAY, "a", "declined", "d-1")]}
    report = replay_decisions([decision], history, strict, UNTIL, current=POLICY, options=ReplayOptions(bootstrap=20))
    assert report.reproduced == 1 and report.changed == 1
    shifts = {s.offer_id: (s.logged, s.current, s.candidate) for s in report.presentations}
    assert shifts == {"a": (1, 1, 0), "b": (0, 0, 1)}
    assert [(s.stage, s.name, s.current, s.candidate) for s in report.stages] == [("contact_policy", "cool_off", 0, 1)]
    # The candidate cannot show a: the logged row has target probability 0.
    assert report.acceptance is not None and report.acceptance.candidate.ips.estimate == 0.0
    assert report.acceptance.current.estimate == 1.0


def test_the_report_counts_skipped_decisions_and_says_why_there_is_no_estimate():
    decisions = [logged("d-1", shown("a", 1, 0.8), features=None), logged("d-2", shown("a", 1, 0.8), at=UNTIL - DAY)]
    report = replay_decisions(decisions, {}, POLICY, UNTIL, options=ReplayOptions(bootstrap=20))
    assert report.decisions == 2 and report.replayed == 1 and report.skipped == {NO_FEATURES: 1}
    assert report.reproduced is None and report.acceptance is None
    assert report.not_estimated is not None and "window_open" in report.not_estimated
    assert report.to_json()["skipped"] == {NO_FEATURES: 1}


def test_progress_is_reported_for_every_decision():
    decisions = [logged(f"d-{i}", shown("a", 1, 0.8), customer=f"c-{i}") for i in range(450)]
    told: list[int] = []
    replay_decisions(decisions, {}, POLICY, UNTIL, options=ReplayOptions(bootstrap=10), progress=told.append)
    assert sum(told) == 450
