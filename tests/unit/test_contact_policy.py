"""Contact policies: every kind, and the edge cases users of commercial systems keep asking about."""

from __future__ import annotations

from decisioning.catalogue import CalendarUnit, Level, Window, WindowKind
from decisioning.contact_policy import evaluate_policies, window_start
from decisioning.rules import RuleEnv
from decisioning.summary import HistorySummary, HistoryView
from decisioning.types import DAY, HOUR, ContactEvent, Outcome
from tests.unit.factories import NOW, at, context, event, offer, policy

GOLD = offer("card_gold", "cards")
CASHBACK = offer("card_cashback", "cards")
LOAN = offer("loan_personal", "loans")
APP = offer("app_activation", "service", marketing=False)
OFFERS = [GOLD, CASHBACK, LOAN, APP]


def suppressed(
    policies, events, *, channel="web", now=NOW, offers=OFFERS, features=None, tz="UTC", windows=None
):
    view = HistoryView(
        HistorySummary(tuple(sorted(events, key=lambda e: e.at))), now, windows or (lambda _: None)
    )
    env = RuleEnv(features or {}, context(channel, now), view)
    return evaluate_policies(
        policies, offers, env, view, tz, frozenset(o.id for o in offers if not o.marketing)
    )


CAP = policy("offer_cap", ["presented"], days=7, threshold=3)


def test_frequency_cap_lets_the_customer_reach_the_cap_but_not_pass_it():
    two = [event(1, "card_gold"), event(2, "card_gold")]
    assert "card_gold" not in suppressed([CAP], two).suppressed  # the current decision makes it 3
    three = [*two, event(3, "card_gold")]
    hit = suppressed([CAP], three).suppressed["card_gold"]
    assert (hit.policy_id, hit.count, hit.threshold, hit.until) == ("offer_cap", 3, 3, None)
    assert "card_cashback" not in suppressed([CAP], three).suppressed  # offer level: other offers are free


def test_rolling_window_boundary_is_inclusive():
    events = [event(1, "card_gold"), event(2, "card_gold"), event(7, "card_gold")]
    assert "card_gold" in suppressed([CAP], events).suppressed
    events[-1] = ContactEvent(NOW - 7 * DAY - 1, "card_gold", "cards", "web", Outcome.PRESENTED)
    assert "card_gold" not in suppressed([CAP], events).suppressed


def test_cap_counts_presentations_across_channels():
    events = [
        event(1, "card_gold", channel="web"),
        event(2, "card_gold", channel="mobile"),
        event(3, "card_gold", channel="email", outcome="sent"),
    ]
    cap = policy("cap_any", ["presented", "sent"], days=7, threshold=3)
    assert "card_gold" in suppressed([cap], events, channel="call_centre").suppressed


def test_not_displayed_releases_the_presentation():
    events = [
        event(1, "card_gold", decision_id="d1"),
        event(2, "card_gold", decision_id="d2"),
        event(3, "card_gold", decision_id="d3"),
        event(0.9, "card_gold", "not_displayed", decision_id="d1"),
    ]
    assert "card_gold" not in suppressed([CAP], events).suppressed


DECLINE = policy("decline_cooloff", ["declined"], days=30, threshold=1, suppress_days=30)


def test_cool_off_after_a_decline_lasts_exactly_its_days():
    declined = [event(29.9, "card_gold", "declined", channel="call_centre")]
    hit = suppressed([DECLINE], declined, channel="web").suppressed["card_gold"]
    assert hit.until == NOW - 29.9 * DAY + 30 * DAY
    assert "contact policy 'decline_cooloff': 1 declined" in hit.reason()
    assert "card_gold" not in suppressed([DECLINE], [event(30, "card_gold", "declined")]).suppressed


def test_group_cool_off_needs_the_declines_within_one_window():
    rule = policy("group_declines", ["declined"], Level.GROUP, days=90, threshold=3, suppress_days=60)
    within = [event(d, "card_gold" if d % 2 else "card_cashback", "declined") for d in (10, 40, 80)]
    out = suppressed([rule], within).suppressed
    assert {"card_gold", "card_cashback"} <= set(out) and "loan_personal" not in out
    assert out["card_gold"].until == NOW - 10 * DAY + 60 * DAY
    spread = [event(d, "card_gold", "declined") for d in (10, 50, 105)]  # 95 days apart: never 3 in 90
    assert suppressed([rule], spread).suppressed == {}


def test_suppression_for_days_starts_when_the_threshold_is_reached():
    rule = policy("group_declines", ["declined"], Level.GROUP, days=90, threshold=3, suppress_days=60)
    old = [event(d, "card_gold", "declined") for d in (100, 120, 150)]  # reached 100 days ago: ended
    assert suppressed([rule], old).suppressed == {}


def test_offer_count_can_suppress_its_whole_group():
    rule = policy(
        "declined_any_card",
        ["declined"],
        Level.OFFER,
        days=30,
        threshold=1,
        suppress=Level.GROUP,
        suppress_days=14,
    )
    out = suppressed([rule], [event(3, "card_gold", "declined")]).suppressed
    assert set(out) == {"card_gold", "card_cashback"}


FATIGUE = policy("outbound_fatigue", ["sent"], Level.ALL, days=7, threshold=2, channels=["email", "sms"])


def test_global_fatigue_counts_outbound_marketing_in_its_channels_only():
    sends = [
        event(1, "card_gold", "sent", channel="email"),
        event(2, "loan_personal", "sent", group="loans", channel="sms"),
    ]
    out = suppressed([FATIGUE], sends, channel="email").suppressed
    assert set(out) == {"card_gold", "card_cashback", "loan_personal"}  # the service offer is exempt
    assert suppressed([FATIGUE], sends, channel="web").suppressed == {}  # inbound is outside its scope


def test_global_fatigue_ignores_service_contacts():
    sends = [
        event(1, "app_activation", "sent", group="service", channel="email"),
        event(2, "card_gold", "sent", channel="email"),
    ]
    assert suppressed([FATIGUE], sends, channel="email").suppressed == {}


def test_calendar_day_starts_at_local_midnight():
    tz = "Europe/Amsterdam"
    daily = policy("daily_cap", ["presented"], Level.ALL, calendar=CalendarUnit.DAY, threshold=2)
    now = at("2026-11-23 09:00", tz)
    before_midnight = ContactEvent(at("2026-11-22 23:59", tz), "card_gold", "cards", "web", Outcome.PRESENTED)
    after_midnight = ContactEvent(
        at("2026-11-23 00:00", tz), "loan_personal", "loans", "web", Outcome.PRESENTED
    )
    early = ContactEvent(at("2026-11-23 08:00", tz), "card_cashback", "cards", "web", Outcome.PRESENTED)
    assert suppressed([daily], [before_midnight, after_midnight], now=now, tz=tz).suppressed == {}
    out = suppressed([daily], [before_midnight, after_midnight, early], now=now, tz=tz).suppressed
    assert "card_gold" in out and out["card_gold"].window == "this day"
    # 00:00 in Amsterdam is 23:00 UTC the day before: "today" in Amsterdam, "yesterday" in UTC.
    assert suppressed([daily], [after_midnight, early], now=now, tz="UTC").suppressed == {}


def test_calendar_windows_across_daylight_saving_and_weeks():
    tz = "Europe/Amsterdam"
    day = Window(WindowKind.CALENDAR, unit=CalendarUnit.DAY)
    # 2026-03-29 is 23 hours long in Amsterdam: midnight is still midnight.
    assert window_start(day, at("2026-03-29 12:00", tz), tz) == at("2026-03-29 00:00", tz)
    assert window_start(day, at("2026-03-30 00:30", tz), tz) - at("2026-03-29 00:00", tz) == 23 * HOUR + 0
    week = Window(WindowKind.CALENDAR, unit=CalendarUnit.WEEK)
    assert window_start(week, at("2026-11-29 23:00", tz), tz) == at(
        "2026-11-23 00:00", tz
    )  # Sunday -> Monday
    month = Window(WindowKind.CALENDAR, unit=CalendarUnit.MONTH)
    assert window_start(month, at("2026-11-01 00:00", tz), tz) == at("2026-11-01 00:00", tz)


def test_segment_condition_limits_a_policy_to_some_customers():
    strict = policy("students_cap", ["presented"], days=7, threshold=1, segment="segment == 'student'")
    events = [event(1, "card_gold")]
    assert "card_gold" in suppressed([strict], events, features={"segment": "student"}).suppressed
    assert suppressed([strict], events, features={"segment": "mass"}).suppressed == {}


def test_unanswered_presentation_counts_as_ignored_after_its_response_window_and_late_answer_corrects():
    ignored = policy("ignored_twice", ["ignored"], days=60, threshold=2, suppress_days=30)
    events = [event(20, "card_gold", decision_id="d1"), event(10, "card_gold", decision_id="d2")]
    week = {"card_gold": 7 * DAY}
    assert "card_gold" in suppressed([ignored], events, windows=week.get).suppressed
    late = ContactEvent(NOW - 1 * DAY, "card_gold", "cards", "mobile", Outcome.CLICKED, "d1")
    assert suppressed([ignored], [*events, late], windows=week.get).suppressed == {}
    fresh = [event(20, "card_gold", decision_id="d1"), event(3, "card_gold", decision_id="d2")]
    assert suppressed([ignored], fresh, windows=week.get).suppressed == {}  # d2's window is still open


def test_policy_restricted_to_offers_or_groups():
    loans_only = policy("loans_cap", ["presented"], Level.GROUP, days=7, threshold=1, groups=["loans"])
    events = [event(1, "loan_personal", group="loans"), event(1, "card_gold")]
    assert set(suppressed([loans_only], events).suppressed) == {"loan_personal"}


def test_group_cap_gives_this_decision_its_headroom():
    group_cap = policy("cards_week", ["presented"], Level.GROUP, days=7, threshold=2)
    out = suppressed([group_cap], [event(1, "card_gold")])
    assert out.suppressed == {}
    [room] = [h for h in out.headroom if "card_gold" in h.offer_ids]
    assert room.remaining == 1 and room.offer_ids == {"card_gold", "card_cashback"}


def test_first_policy_to_suppress_is_the_one_explained():
    out = suppressed(
        [DECLINE, CAP], [event(1, "card_gold", "declined"), *[event(d, "card_gold") for d in (1, 2, 3)]]
    )
    assert out.suppressed["card_gold"].policy_id == "decline_cooloff"
