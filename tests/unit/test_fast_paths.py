"""The core's fast paths give exactly what the plain code they replaced gave.

Issue 18 made the hot path cheaper: the history view derives its happenings in one pass, the rules run
from a flat table when no explanation is asked, the arbitration filters only what was feasible at the
rank before, and the control group's period is cached between its bounds. Each is checked here against
a plain reference (the code as it was), on generated inputs.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning.arbitration import Candidate, _period, arbitrate
from decisioning.catalogue import ArbitrationSettings, CalendarUnit, ExplorationKind, Window, WindowKind
from decisioning.contact_policy import Headroom, window_start
from decisioning.engine import DecisionRequest, decide
from decisioning.explanation import explanation_dicts
from decisioning.ports import CustomerSnapshot
from decisioning.quality import validate_features
from decisioning.summary import HistorySummary, HistoryView
from decisioning.types import CONTACT_OUTCOMES, DAY, RESPONSE_OUTCOMES, ContactEvent, Context, CustomerFeatures, Outcome
from models.demo.customers import generate_customers
from policies.loader import load_catalogue
from tests.unit.factories import NOW, FixedScorer, offer

DEMO = Path(__file__).resolve().parents[2] / "policies" / "demo"


# --- the history view ---------------------------------------------------------------------------------
def reference_happenings(view: HistoryView) -> tuple[ContactEvent, ...]:
    """The derivation as it was written before the one-pass version: several passes, two sorts."""
    now = view.now
    past = [e for e in view.summary.events if e.at <= now]
    released = {(e.decision_id, e.offer_id) for e in past if e.outcome is Outcome.NOT_DISPLAYED}
    answered = {(e.decision_id, e.offer_id) for e in past if e.outcome in RESPONSE_OUTCOMES}
    settled = released | answered
    out = [
        e
        for e in past
        if e.outcome not in (Outcome.NOT_DISPLAYED, Outcome.SELECTED)
        and not (e.outcome in CONTACT_OUTCOMES and (e.decision_id, e.offer_id) in released)
    ]
    sent = {(e.decision_id, e.offer_id) for e in past if e.outcome is Outcome.SENT}
    pending = []
    for e in past:
        if e.outcome is not Outcome.SELECTED:
            continue
        period = view._confirmation(e.channel)
        if (e.decision_id, e.offer_id) in sent or period is None or e.at + period <= now:
            continue
        pending.append(ContactEvent(e.at, e.offer_id, e.group, e.channel, Outcome.SENT, e.decision_id))
    if pending:
        out = sorted([*out, *pending], key=lambda h: h.at)
    ignores = []
    for e in past:
        if e.outcome not in CONTACT_OUTCOMES or (e.decision_id, e.offer_id) in settled:
            continue
        window = view._window(e.offer_id)
        if window is not None and e.at + window <= now:
            ignores.append(ContactEvent(e.at + window, e.offer_id, e.group, e.channel, Outcome.IGNORED, e.decision_id))
    if ignores:
        out = sorted([*out, *ignores], key=lambda h: h.at)
    return tuple(out)


events = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40),  # whole hours before now: equal times happen
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["web", "email", "sms"]),
        st.sampled_from(list(Outcome)),
        st.sampled_from(["d1", "d2", "d3", None]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(events, st.integers(min_value=-2, max_value=2))
def test_the_one_pass_view_derives_what_the_passes_did(rows, shift):
    now = NOW + shift * 3600.0  # a few events fall after now
    summary = HistorySummary().with_events(
        ContactEvent(NOW - h * 3600.0, o, "g", ch, outcome, d) for h, o, ch, outcome, d in rows
    )
    windows = {"a": 6 * 3600.0, "b": None, "c": 24 * 3600.0}
    view = HistoryView(summary, now, windows, {"email": 10 * 3600.0, "sms": 2 * 3600.0}.get)
    assert view.happenings == reference_happenings(view)
    settled = {(e.decision_id, e.offer_id) for e in summary.events if e.at <= now and e.outcome in RESPONSE_OUTCOMES}
    released = {
        (e.decision_id, e.offer_id) for e in summary.events if e.at <= now and e.outcome is Outcome.NOT_DISPLAYED
    }
    assert HistoryView(summary, now, windows).unanswered_contacts(0.0) == {
        e.offer_id: e.at
        for e in summary.events
        if e.at <= now and e.outcome in CONTACT_OUTCOMES and (e.decision_id, e.offer_id) not in settled | released
    }


def test_at_one_moment_recorded_events_come_first_then_pending_sends_then_implicit_ignores():
    t = NOW - 6 * 3600.0
    summary = HistorySummary().with_events(
        [
            ContactEvent(NOW - 12 * 3600.0, "a", "g", "web", Outcome.PRESENTED, "d1"),  # ignored at t
            ContactEvent(t, "b", "g", "email", Outcome.SELECTED, "d2"),  # a pending send at t
            ContactEvent(t, "c", "g", "web", Outcome.CLICKED, "d3"),  # recorded at t
        ]
    )
    view = HistoryView(summary, NOW, {"a": 6 * 3600.0}, {"email": 10 * 3600.0}.get)
    assert [(h.offer_id, h.outcome) for h in view.happenings if h.at == t] == [
        ("c", Outcome.CLICKED),
        ("b", Outcome.SENT),
        ("a", Outcome.IGNORED),
    ]
    assert view.happenings == reference_happenings(view)


def test_an_event_is_a_tuple_built_from_its_row_and_an_unknown_outcome_is_refused():
    event = ContactEvent.from_row([5, "card_gold", "cards", "web", "clicked", "d-1"])
    assert event == ContactEvent(5.0, "card_gold", "cards", "web", Outcome.CLICKED, "d-1")
    assert event.outcome is Outcome.CLICKED and isinstance(event.at, float)
    with pytest.raises(ValueError, match="'liked' is not a valid Outcome"):
        ContactEvent.from_row([5, "card_gold", "cards", "web", "liked", "d-1"])


# --- the rules and the whole decision -------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo():
    catalogue = load_catalogue(DEMO)
    scorer = FixedScorer({o.id: 0.02 + 0.003 * i for i, o in enumerate(catalogue.offers)})
    return catalogue, scorer


def _history(catalogue, rng: random.Random) -> HistorySummary:
    outcomes = [Outcome.PRESENTED] * 5 + [Outcome.CLICKED, Outcome.DECLINED, Outcome.ACCEPTED, Outcome.SENT]
    rows = []
    for k in range(rng.randrange(0, 40)):
        o = rng.choice(catalogue.offers)
        channel = ("web", "mobile", "call_centre", "email")[k % 4]
        rows.append(ContactEvent(NOW - rng.uniform(0, 60) * DAY, o.id, o.group, channel, rng.choice(outcomes), f"d{k}"))
    return HistorySummary().with_events(rows)


def _customers(catalogue, n: int, seed: int):
    """(index, validated features) of `n` generated demo customers."""
    for i, (cid, values) in enumerate(generate_customers(n, catalogue.features, seed=seed, now=NOW)):
        yield i, validate_features(catalogue.features, cid, CustomerSnapshot(cid, values, {"*": NOW}), NOW)


def test_a_decision_without_explanation_is_the_decision_with_one(demo):
    catalogue, scorer = demo
    rng = random.Random(7)
    shown = 0
    for i, customer in _customers(catalogue, 300, seed=5):
        context = Context(("web", "mobile", "call_centre", "email")[i % 4], NOW, intent=(None, "complaint")[i % 2])
        summary = _history(catalogue, rng)
        plain = decide(catalogue, DecisionRequest(f"d-{i}", customer, context, 1 + i % 4), summary, scorer)
        explained = decide(catalogue, DecisionRequest(f"d-{i}", customer, context, 1 + i % 4, True), summary, scorer)
        assert plain.offers == explained.offers
        assert (plain.suppressions, plain.scored, plain.notes) == (
            explained.suppressions,
            explained.scored,
            explained.notes,
        )
        shown += len(plain.offers)
    assert shown > 300  # the generated customers do get offers: the comparison is not of empty decisions


def test_the_explanations_of_a_decision_convert_as_each_one_alone_would(demo):
    catalogue, scorer = demo
    rng = random.Random(11)
    parts = 0
    for i, customer in _customers(catalogue, 40, seed=9):
        request = DecisionRequest(f"d-{i}", customer, Context("call_centre", NOW), 5, True)
        decision = decide(catalogue, request, _history(catalogue, rng), scorer)
        assert explanation_dicts(decision.explanations) == [e.to_dict() for e in decision.explanations]
        parts += sum(1 for e in decision.explanations if e.rule is not None or e.policy is not None)
    assert parts > 200  # rules and policies did explain drops: the shared parts were exercised


def test_a_rule_that_fails_drops_its_offers_with_the_same_note_on_both_paths(demo):
    catalogue, scorer = demo
    values = dict(generate_customers(1, catalogue.features, seed=1, now=NOW)[0][1])
    values["age"] = "forty"  # unvalidated: every rule reading age fails
    customer = CustomerFeatures("c-1", values)
    context = Context("web", NOW)
    plain = decide(catalogue, DecisionRequest("d", customer, context, 3), HistorySummary(), scorer)
    explained = decide(catalogue, DecisionRequest("d", customer, context, 3, True), HistorySummary(), scorer)
    failed = [n for n in plain.notes if "'age' should be a number" in n]
    assert failed and plain.notes == explained.notes and plain.offers == explained.offers
    assert all(p.offer.group not in ("cards", "loans") for p in plain.offers)  # the adult rule guards them


# --- the arbitration ----------------------------------------------------------------------------------
def reference_arbitrate(candidates, max_offers, max_per_group, headroom):
    """The greedy arbitration as it was: every rank filters every candidate again."""
    ordered = sorted(candidates, key=lambda c: (not c.pinned, -c.priority, c.offer.id))
    groups: dict[str, int] = {}
    used: dict[str, int] = {}
    caps = {}
    for h in headroom:
        if h.remaining < max_offers:
            for o in h.offer_ids:
                caps.setdefault(o, []).append(h)
    taken: list[str] = []

    def fits(c):
        if max_per_group is not None and groups.get(c.offer.group, 0) >= max_per_group:
            return False
        return all(used.get(h.policy_id, 0) < h.remaining for h in caps.get(c.offer.id, ()))

    while len(taken) < max_offers:
        feasible = [c for c in ordered if c.offer.id not in taken and fits(c)]
        if not feasible:
            break
        pick = next((c for c in feasible if c.pinned), feasible[0])
        taken.append(pick.offer.id)
        groups[pick.offer.group] = groups.get(pick.offer.group, 0) + 1
        for h in caps.get(pick.offer.id, ()):
            used[h.policy_id] = used.get(h.policy_id, 0) + 1
    return taken


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.floats(0.0, 1.0), st.booleans()), min_size=0, max_size=12),
    st.integers(1, 5),
    st.sampled_from([None, 0, 1, 2]),
    st.lists(st.tuples(st.sets(st.integers(0, 11)), st.integers(-1, 3)), max_size=3),
)
def test_the_incremental_arbitration_chooses_what_the_full_one_did(rows, max_offers, per_group, caps):
    candidates = [
        Candidate(offer(f"o{i}", f"g{g}"), p, 1.0, 1.0, 1.0, pinned=pinned and i % 5 == 0)
        for i, (g, p, pinned) in enumerate(rows)
    ]
    headroom = [Headroom(f"p{k}", frozenset(f"o{i}" for i in ids), left) for k, (ids, left) in enumerate(caps)]
    result = arbitrate(
        candidates, max_offers, ArbitrationSettings(max_per_group=per_group), headroom=headroom, explain=True
    )
    assert [s.candidate.offer.id for s in result.selected] == reference_arbitrate(
        candidates, max_offers, per_group, headroom
    )
    assert [s.rank for s in result.selected] == list(range(1, len(result.selected) + 1))
    assert set(result.passed_over) == {c.offer.id for c in candidates} - {s.candidate.offer.id for s in result.selected}


def test_epsilon_greedy_draws_the_same_as_before_from_the_decision_seed():
    candidates = [Candidate(offer(f"o{i}", f"g{i}"), 0.1 + i / 100, 1.0, 1.0, 1.0) for i in range(10)]
    exploring = ArbitrationSettings(max_per_group=None, exploration=ExplorationKind.EPSILON, epsilon=0.5)
    picks = [
        [s.candidate.offer.id for s in arbitrate(candidates, 3, exploring, seed=seed).selected] for seed in range(40)
    ]
    rng_picks = []
    for seed in range(40):  # the draws of random.Random(seed), as the arbitration makes them
        rng, left, out = random.Random(seed), sorted(candidates, key=lambda c: -c.priority), []
        for _ in range(3):
            pick = left[rng.randrange(len(left))] if rng.random() < 0.5 else left[0]
            out.append(pick.offer.id)
            left = [c for c in left if c is not pick]
        rng_picks.append(out)
    assert picks == rng_picks
    assert len({tuple(p) for p in picks}) > 5  # it does explore


# --- the control group's period ------------------------------------------------------------------------
def _reference_period(settings: ArbitrationSettings, now: float) -> str:
    local = datetime.fromtimestamp(now, ZoneInfo(settings.timezone))
    if settings.control_period == "quarter":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    return f"{local.year}-{local.month:02d}"


@pytest.mark.parametrize("zone", ["UTC", "Europe/Amsterdam", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham"])
@pytest.mark.parametrize("period", ["month", "quarter"])
def test_the_cached_period_changes_exactly_at_local_midnight_of_its_bound(zone, period):
    settings = ArbitrationSettings(timezone=zone, control_period=period)
    for year, month in [(2026, 1), (2026, 3), (2026, 4), (2026, 10), (2026, 12), (2027, 1)]:
        bound = datetime(year, month, 1, tzinfo=ZoneInfo(zone)).timestamp()
        for t in (bound - 86_400, bound - 0.001, bound, bound + 0.001, bound - 1, bound + 86_400, bound - 0.001):
            assert _period(settings, t) == _reference_period(settings, t), (zone, period, t)
    rng = random.Random(3)
    t = datetime(2025, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp()
    for _ in range(3000):  # forward and sometimes back in time, across many bounds
        t += rng.uniform(-2, 1) * 86_400 if rng.random() < 0.1 else rng.uniform(0, 3) * 86_400
        assert _period(settings, t) == _reference_period(settings, t)


# --- calendar windows of contact policies ---------------------------------------------------------------
def _reference_window_start(unit: CalendarUnit, now: float, zone: str) -> float:
    """The start of the calendar window as it was computed on every call (local midnight, then back)."""
    local = datetime.fromtimestamp(now, ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit is CalendarUnit.WEEK:
        midnight = midnight - timedelta(days=midnight.weekday())
    elif unit is CalendarUnit.MONTH:
        midnight = midnight.replace(day=1)
    return datetime(midnight.year, midnight.month, midnight.day, tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize("zone", ["UTC", "Europe/Amsterdam", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham"])
@pytest.mark.parametrize("unit", list(CalendarUnit))
def test_the_kept_calendar_window_starts_anew_exactly_at_its_next_start(zone, unit):
    window = Window(kind=WindowKind.CALENDAR, unit=unit)
    # Around the starts of days, weeks and months, daylight-saving changes included (March, October).
    for day in ["2026-03-01", "2026-03-29", "2026-03-30", "2026-04-01", "2026-10-25", "2026-10-26", "2027-01-01"]:
        start = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone)).timestamp()
        for t in (start - 86_400, start - 0.001, start, start + 0.001, start - 1, start + 3_600, start - 0.001):
            assert window_start(window, t, zone) == _reference_window_start(unit, t, zone), (zone, unit, t)
    rng = random.Random(5)
    t = datetime(2025, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp()
    for _ in range(2000):  # forward and sometimes back in time, across many starts
        t += rng.uniform(-1, 0.5) * 86_400 if rng.random() < 0.1 else rng.uniform(0, 2) * 86_400
        assert window_start(window, t, zone) == _reference_window_start(unit, t, zone)
