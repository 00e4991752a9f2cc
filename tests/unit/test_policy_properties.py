"""Property: whatever the order, channels and sizes of decisions, combined contact policies always hold."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning.catalogue import ArbitrationSettings, CalendarUnit, Level
from decisioning.engine import DecisionRequest, decide
from decisioning.summary import HistorySummary
from decisioning.types import DAY, ContactEvent, Outcome
from tests.unit.factories import NOW, FixedScorer, catalogue, context, customer, offer, policy

TZ = "Europe/Amsterdam"
OFFERS = [offer(f"{g}_{i}", g) for g in ("cards", "loans") for i in range(3)]
POLICIES = [
    policy("offer_cap", ["presented"], days=3, threshold=2),
    policy("group_cap", ["presented"], Level.GROUP, days=7, threshold=3),
    policy("daily_cap", ["presented"], Level.ALL, calendar=CalendarUnit.DAY, threshold=4),
    policy("decline_cooloff", ["declined"], days=30, threshold=1, suppress_days=30),
]
CAT = catalogue(OFFERS, POLICIES, ArbitrationSettings(timezone=TZ, max_per_group=None, consistency_boost=1.0))
SCORER = FixedScorer({o.id: 0.05 + 0.01 * i for i, o in enumerate(OFFERS)})

steps = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=2 * DAY),  # time since the previous step
        st.sampled_from(["web", "mobile", "call_centre"]),
        st.integers(min_value=1, max_value=4),  # offers asked
        st.booleans(),  # whether the customer declines the first offer presented
    ),
    min_size=1,
    max_size=40,
)


def _local_day(t: float) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(TZ)).date().isoformat()


@settings(max_examples=60, deadline=None)
@given(steps)
def test_combined_policies_are_never_exceeded(sequence):
    summary, now = HistorySummary(), NOW
    for i, (gap, channel, n, declines) in enumerate(sequence):
        now += gap
        request = DecisionRequest(f"d{i}", customer(), context(channel, now), n)
        decision = decide(CAT, request, summary, SCORER)
        if i == 0:  # nothing is capped yet: a decision that presents nothing would hold every cap vacuously
            assert decision.offers, decision
        new = [
            ContactEvent(now, p.offer.id, p.offer.group, channel, Outcome.PRESENTED, f"d{i}")
            for p in decision.offers
        ]
        if declines and new:
            new.append(
                ContactEvent(now + 1, new[0].offer_id, new[0].group, channel, Outcome.DECLINED, f"d{i}")
            )
            now += 1
        summary = summary.with_events(new)
    _check(summary.events)


def _check(events: tuple[ContactEvent, ...]) -> None:
    shown = [e for e in events if e.outcome is Outcome.PRESENTED]
    declined = [e for e in events if e.outcome is Outcome.DECLINED]
    for e in shown:
        same_offer = [x for x in shown if x.offer_id == e.offer_id and e.at - 3 * DAY <= x.at <= e.at]
        assert len(same_offer) <= 2
        same_group = [x for x in shown if x.group == e.group and e.at - 7 * DAY <= x.at <= e.at]
        assert len(same_group) <= 3
        same_day = [x for x in shown if _local_day(x.at) == _local_day(e.at) and x.at <= e.at]
        assert len(same_day) <= 4
        assert not any(d.offer_id == e.offer_id and d.at < e.at < d.at + 30 * DAY for d in declined)
