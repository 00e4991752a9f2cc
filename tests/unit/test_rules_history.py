"""History functions in rules, and the customer journeys they exist for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from decisioning.rules import HistoryCall, RuleEnv, compile_rule, history_columns
from decisioning.summary import HistorySummary, HistoryView
from decisioning.types import DAY, ContactEvent, Outcome
from tests.unit.test_rules import NOW, context, run

P, S, C, A, D = Outcome.PRESENTED, Outcome.SENT, Outcome.CLICKED, Outcome.ACCEPTED, Outcome.DECLINED


Event = tuple[float, str, str, str, Outcome, str | None]


def view(*events: Event, window: float | None = None) -> HistoryView:
    """A history view at NOW; each event is (days ago, offer, group, channel, outcome, decision id)."""
    rows = [ContactEvent(NOW - ago * DAY, offer, group, channel, outcome, decision)
            for ago, offer, group, channel, outcome, decision in events]
    return HistoryView(HistorySummary().with_events(rows), NOW, lambda _: window)


HISTORY = view(
    (10, "card_gold", "cards", "web", P, "d1"),
    (9, "card_gold", "cards", "web", C, "d1"),
    (5, "loan_car", "loans", "email", S, "o1"),
    (3, "card_gold", "cards", "mobile", P, "d2"),
    (2, "loan_home", "loans", "call_centre", P, "d3"),
    (2, "loan_home", "loans", "call_centre", D, "d3"),
    (0.5, "card_gold", "cards", "web", P, "d4"),
)


@pytest.mark.parametrize(("text", "expected"), [
    ("days_since(offer='card_gold')", 0.5),
    ("days_since(offer='card_gold', outcome='clicked')", 9.0),
    ("days_since(group='loans', outcome=['presented', 'sent'])", 2.0),
    ("days_since(group='loans', outcome='sent')", 5.0),
    ("days_since(offer='card_gold', channel='mobile')", 3.0),
    ("days_since(offer='card_gold', channel=['mobile', 'email'])", 3.0),
    ("days_since(outcome='accepted')", math.inf),
    ("days_since(offer='nothing')", math.inf),
    ("count(offer='card_gold')", 3.0),
    ("count(offer='card_gold', days=7)", 2.0),
    ("count(offer='card_gold', days=3)", 2.0),  # the window's boundary is inclusive
    ("count(offer='card_gold', hours=12)", 1.0),
    ("count(group='loans', outcome=['presented', 'sent', 'declined'])", 3.0),
    ("count(outcome='presented', channel='web')", 2.0),
    ("count(outcome=['clicked', 'accepted', 'declined'])", 2.0),
    ("count()", 4.0),
])
def test_history_functions(text: str, expected: float) -> None:
    assert run(text, "number", view=HISTORY) == expected


def test_without_a_history_nothing_happened() -> None:
    assert run("days_since(offer='x')", "number") == math.inf
    assert run("count(offer='x', days=30)", "number") == 0.0


def test_a_presentation_the_channel_did_not_display_does_not_count() -> None:
    history = view((1, "x", "g", "web", P, "d1"), (1, "x", "g", "web", Outcome.NOT_DISPLAYED, "d1"))
    assert run("count(offer='x')", "number", view=history) == 0.0
    assert run("days_since(offer='x')", "number", view=history) == math.inf


def test_an_unanswered_contact_becomes_ignored_after_the_response_window() -> None:
    history = view((10, "x", "g", "email", S, "o1"), window=7 * DAY)
    assert run("count(offer='x', outcome='ignored')", "number", view=history) == 1.0
    assert run("days_since(offer='x', outcome='ignored')", "number", view=history) == 3.0


def test_calls_have_one_canonical_key_however_spelt() -> None:
    a = compile_rule("count(group='loans', outcome=['sent', 'presented'], days=1)").history_calls[0]
    b = compile_rule("count(outcome=('presented', 'sent', 'sent'), hours=24, group='loans')").history_calls[0]
    assert a == b and a.key == b.key == "count(group='loans',outcome=['presented','sent'],days=1)"
    c = compile_rule("days_since(offer='x', channel=['web', 'sms'])").history_calls[0]
    assert c.key == "days_since(offer='x',outcome=['presented'],channel=['sms','web'])"
    assert compile_rule("count(hours=1.5)").history_calls[0].key == "count(outcome=['presented'],hours=1.5)"
    assert HistoryCall("count", None, "loans", ("presented",), None, 30 * DAY).key == (
        "count(group='loans',outcome=['presented'],days=30)")


def test_a_rule_lists_each_distinct_call_once() -> None:
    rule = compile_rule("count(offer='a', days=7) < 3 and count(offer='a', hours=168) >= 0 "
                        "and days_since(offer='a') > 1")
    assert [c.function for c in rule.history_calls] == ["count", "days_since"]
    assert rule.history_calls[0].seconds == 7 * DAY and rule.history_calls[0].offer == "a"


def test_history_columns_match_online_evaluation_customer_by_customer() -> None:
    views = [HISTORY, view(), view((1, "card_gold", "cards", "web", A, "d9")), None]
    rule = compile_rule(
        "count(group='cards', days=30) >= 2 or days_since(offer='card_gold', outcome='accepted') < 2")
    columns = history_columns(rule.history_calls, views)
    assert all(column.dtype == np.float64 and len(column) == 4 for column in columns.values())
    online = [rule.evaluate(RuleEnv({}, context(), v)) for v in views]
    assert rule.evaluate_columns(columns, 4).tolist() == online == [True, False, True, False]


def test_a_history_call_is_not_computed_when_a_short_circuit_decides() -> None:
    calls = []

    class CountingView(HistoryView):
        def times(self, *args: object, **kwargs: object) -> list[float]:
            calls.append(args)
            return super().times(*args, **kwargs)  # type: ignore[arg-type]

    counting = CountingView(HistorySummary(), NOW)
    rule = compile_rule("channel == 'sms' and count(offer='x') == 0")
    assert rule.evaluate(RuleEnv({}, context("web"), counting)) is False and calls == []


# --- journeys ---------------------------------------------------------------------------------------------
REMIND = ("days_since(offer='x', outcome='presented') >= 7 "
          "and count(offer='x', outcome=['clicked', 'accepted', 'declined']) == 0")


@pytest.mark.parametrize(("events", "remind"), [
    ([(8, "x", "g", "web", P, "d1")], True),
    ([(6, "x", "g", "web", P, "d1")], False),  # too early
    ([(8, "x", "g", "web", P, "d1"), (7.5, "x", "g", "web", C, "d1")], False),  # responded
    ([(20, "x", "g", "web", P, "d1"), (19, "x", "g", "web", D, "d1")], False),  # declined
    ([(8, "x", "g", "web", P, "d1"), (2, "x", "g", "mobile", P, "d2")], False),  # presented again lately
    ([(8, "x", "g", "web", P, "d1"), (1, "y", "g", "web", C, "d2")], True),  # a response to another offer
])
def test_remind_after_seven_days_without_a_response(events: list, remind: bool) -> None:
    assert run(REMIND, view=view(*events)) is remind


def test_a_reminder_rule_also_holds_for_a_customer_never_contacted() -> None:
    # days_since is inf when nothing happened: a reminder must say that there was a first contact.
    assert run(REMIND, view=view()) is True
    assert run(f"count(offer='x') > 0 and {REMIND}", view=view()) is False


def test_thank_after_acceptance() -> None:
    thank = ("count(offer='card_gold', outcome='accepted', days=3) >= 1 "
             "and count(offer='thanks', outcome=['presented', 'sent'], days=30) == 0")
    accepted = [(1, "card_gold", "cards", "web", P, "d1"), (1, "card_gold", "cards", "web", A, "d1")]
    assert run(thank, view=view(*accepted)) is True
    assert run(thank, view=view(*accepted, (0.5, "thanks", "service", "email", S, "o1"))) is False
    assert run(thank, view=view(*[(10, *e[1:]) for e in accepted])) is False  # too long ago
    assert run(thank, view=view((1, "card_gold", "cards", "web", P, "d1"))) is False


def test_offer_b_only_after_a_was_accepted() -> None:
    after_a = "count(offer='a', outcome='accepted') > 0"
    assert run(after_a, view=view((40, "a", "g", "web", P, "d1"), (39, "a", "g", "web", A, "d1"))) is True
    assert run(after_a, view=view((40, "a", "g", "web", P, "d1"), (39, "a", "g", "web", D, "d1"))) is False
    assert run(after_a, view=view((1, "b", "g", "web", A, "d1"))) is False


def test_hours_windows_and_channels() -> None:
    history = view((1 / 24 * 3, "x", "g", "sms", S, "o1"), (1 / 24 * 30, "x", "g", "sms", S, "o2"))
    assert run("count(outcome='sent', channel='sms', hours=24)", "number", view=history) == 1.0
    assert run("count(outcome='sent', channel='web', hours=48)", "number", view=history) == 0.0
    assert run("count(outcome='sent', hours=31)", "number", view=history) == 2.0
