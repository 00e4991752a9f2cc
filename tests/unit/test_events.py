"""Real-time event rules: the demo file, what each event updates, and what a bad file is told."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from decisioning.ports import EventError, FeatureUpdate
from decisioning.quality import validate_features
from decisioning.types import DAY, FeatureValue
from features.memory import InMemoryCustomerCache
from policies import load_catalogue
from policies.events import EventRulesError, UnknownEventType, load_event_rules

DEMO = Path(__file__).resolve().parents[2] / "policies" / "demo"
AT = 1_763_000_000.0


@pytest.fixture(scope="module")
def rules():
    return load_event_rules(DEMO)


def test_the_demo_file_lists_its_event_types(rules) -> None:
    assert rules.types == (
        "app_login",
        "card_declined",
        "pos_payment",
        "salary_received",
        "transfer_out",
        "visited_page",
        "withdrawal",
    )
    assert rules.knows("card_declined") and not rules.knows("card_eaten")
    assert "mortgage_calc_visits_30d" in rules.features()


@pytest.mark.parametrize(
    ("event_type", "attributes", "expected"),
    [
        (
            "card_declined",
            {"merchant": "x"},
            [("card_declined_count", "incr", 1.0), ("card_declined_last_at", "max", AT)],
        ),
        (
            "salary_received",
            {"amount": 3200},
            [("salary_last_at", "max", AT), ("salary_last_amount", "set", 3200.0)],
        ),
        (
            "salary_received",
            {"amount": "3200.50"},
            [("salary_last_at", "max", AT), ("salary_last_amount", "set", 3200.5)],
        ),
        (
            "transfer_out",
            {"description": "Savings to Revolut", "amount": 900},
            [("transfer_out_competitor_30d", "count", None, 30 * DAY), ("churn_signal_at", "max", AT)],
        ),
        (
            "transfer_out",
            {"description": "BUNQ b.v. ref 123"},
            [("transfer_out_competitor_30d", "count", None, 30 * DAY), ("churn_signal_at", "max", AT)],
        ),
        ("transfer_out", {"description": "Rent May", "amount": 900}, []),
        ("transfer_out", {}, []),
        (
            "withdrawal",
            {"amount": 5000},
            [
                ("large_withdrawal_last_at", "max", AT),
                ("large_withdrawals_7d", "count", None, 7 * DAY),
                ("churn_signal_at", "max", AT),
            ],
        ),
        (
            "withdrawal",
            {"amount": "12000"},
            [
                ("large_withdrawal_last_at", "max", AT),
                ("large_withdrawals_7d", "count", None, 7 * DAY),
                ("churn_signal_at", "max", AT),
            ],
        ),
        ("withdrawal", {"amount": 4999.99}, []),
        ("withdrawal", {}, []),
        (
            "visited_page",
            {"page": "mortgage_calculator"},
            [("mortgage_calc_visits_30d", "count", None, 30 * DAY), ("mortgage_calc_last_at", "max", AT)],
        ),
        ("visited_page", {"page": "savings"}, []),
        ("pos_payment", {"method": "app", "amount": 12.5}, [("app_pos_payments_30d", "count", None, 30 * DAY)]),
        ("pos_payment", {"method": "card"}, []),
        ("app_login", {}, [("app_login_last_at", "max", AT)]),
    ],
)
def test_demo_events_update_the_documented_features(rules, event_type, attributes, expected) -> None:
    assert rules.updates_for(event_type, attributes, AT) == [FeatureUpdate(*e) for e in expected]


def test_unknown_event_type_is_refused_and_names_the_known_ones(rules) -> None:
    with pytest.raises(UnknownEventType, match="card_declined"):
        rules.updates_for("card_eaten", {}, AT)
    assert issubclass(UnknownEventType, EventError)


@pytest.mark.parametrize(
    ("event_type", "attributes", "message"),
    [
        ("withdrawal", {"amount": "lots"}, "amount' should be a number"),
        ("salary_received", {}, "amount' is missing"),
        ("salary_received", {"amount": -5}, "amount' is invalid"),  # below the feature's minimum
    ],
)
def test_bad_attributes_are_event_errors(rules, event_type, attributes, message) -> None:
    with pytest.raises(EventError, match=message):
        rules.updates_for(event_type, attributes, AT)


async def test_events_applied_to_the_cache_become_features(rules) -> None:
    cache = InMemoryCustomerCache()
    for at, description in [(AT, "to revolut"), (AT + 60, "rent"), (AT - 60, "to bunq")]:
        updates = rules.updates_for("transfer_out", {"description": description}, at)
        await cache.apply_updates("c1", updates, at)
    snapshot = await cache.load("c1")
    assert snapshot.features["churn_signal_at"] == AT  # the late, older event did not move it back
    specs = load_catalogue(DEMO).features

    def transfers(now: float) -> FeatureValue:
        return validate_features(specs, "c1", snapshot, now).values["transfer_out_competitor_30d"]

    # Transfers to competitor banks in the last 30 days, counted when the decision is made.
    assert (transfers(AT), transfers(AT + 30 * DAY - 60), transfers(AT + 30 * DAY)) == (2, 1, 0)


def write_catalogue(tmp_path: Path, events: str) -> Path:
    shutil.copy(DEMO / "features.yaml", tmp_path / "features.yaml")
    (tmp_path / "events.yaml").write_text(textwrap.dedent(events))
    return tmp_path


def problems_of(tmp_path: Path, events: str) -> list[str]:
    with pytest.raises(EventRulesError) as caught:
        load_event_rules(write_catalogue(tmp_path, events))
    return caught.value.problems


def test_every_problem_of_a_bad_file_is_listed(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        events:
          odd:
            attributes: {amount: number}
            rules:
              - when: amount >= 10 and colour == 'red'
                updates:
                  - {feature: age, op: set, value: 30}
                  - {feature: no_such_feature, op: incr}
                  - {feature: churn_signal_at, op: max}
                  - {feature: salary_last_amount, op: set, value: -1}
                  - {feature: salary_last_amount, op: set, value: $bonus}
              - when: amount >=
                updates: [{feature: card_declined_count, op: incr}]
              - when: count(offer='card_gold') > 0
                updates: [{feature: card_declined_count, op: incr}]
        """,
    )
    text = "\n".join(problems)
    assert len(problems) == 8, text
    for expected in [
        "colour",
        "'age' is not a feature declared with source: event",
        "'no_such_feature'",
        "max of churn_signal_at needs a value",
        "value -1",
        "attribute 'bonus'",
        "rules.1",
        "not the history",
    ]:
        assert expected in text


def test_the_file_shape_is_checked(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path, "events:\n  x:\n    rules:\n      - updates: [{feature: a, op: double}]\n"
    )
    assert any("op" in p for p in problems)
    problems = problems_of(tmp_path, "events:\n  x:\n    colour: red\n    rules: []\n")
    assert len(problems) == 2  # an unknown key, and no rules


def test_a_file_can_be_named_directly(tmp_path: Path) -> None:
    write_catalogue(
        tmp_path,
        "events:\n  ping:\n    rules: [{updates: [{feature: app_login_last_at, op: max, value: $at}]}]\n",
    )
    rules = load_event_rules(tmp_path / "events.yaml")
    assert rules.updates_for("ping", {}, 5.0) == [FeatureUpdate("app_login_last_at", "max", 5.0)]


def test_windowed_count_updates_are_checked(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        events:
          odd:
            rules:
              - updates:
                  - {feature: mortgage_calc_last_at, op: count, window_days: 0}
          other:
            rules:
              - updates:
                  - {feature: mortgage_calc_visits_30d, op: count, window_days: 30}
                  - {feature: app_pos_payments_30d, op: count, window_days: 30}
          again:
            rules:
              - updates:
                  - {feature: mortgage_calc_visits_30d, op: count, window_days: 7}
                  - {feature: app_pos_payments_30d, op: incr}
        """,
    )
    assert problems == [
        f"{tmp_path / 'events.yaml'}: event odd: rules.0.updates.0.window_days: Input should be greater than 0",
        f"{tmp_path / 'events.yaml'}: event again: mortgage_calc_visits_30d is updated with op: count, "
        "window_days: 7 here and with op: count, window_days: 30 in event other: a counted feature takes "
        "counts only, all with the same window_days",
        f"{tmp_path / 'events.yaml'}: event again: app_pos_payments_30d is updated with op: incr here and with "
        "op: count, window_days: 30 in event other: a counted feature takes counts only, all with the same "
        "window_days",
    ], "\n".join(problems)


def test_windowed_count_updates_need_a_window_and_no_value(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        events:
          odd:
            rules:
              - updates:
                  - {feature: transfer_out_competitor_30d, op: count}
                  - {feature: large_withdrawals_7d, op: count, window_days: 7, value: 2}
                  - {feature: card_declined_count, op: incr, window_days: 7}
                  - {feature: large_withdrawal_last_at, op: max, value: $at}
                  - {feature: churn_signal_at, op: count, window_days: 0.5}
        """,
    )
    assert [p.split(": ", 2)[2] for p in problems] == [
        "rules.0: updates.0: count of transfer_out_competitor_30d needs window_days (e.g. window_days: 30)",
        "rules.0: updates.1: count of large_withdrawals_7d takes no value: each event counts one",
        "rules.0: updates.2: window_days is only for op: count, not for incr of card_declined_count",
    ]


def test_a_window_may_be_a_fraction_of_a_day(tmp_path: Path) -> None:
    write_catalogue(
        tmp_path,
        "events:\n  ping:\n    rules: [{updates: [{feature: card_declined_count, op: count, window_days: 0.5}]}]\n",
    )
    rules = load_event_rules(tmp_path)
    assert rules.updates_for("ping", {}, AT) == [FeatureUpdate("card_declined_count", "count", None, DAY / 2)]
