"""Real-time event rules: the demo file, what each event updates, and what a bad file is told."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from decisioning.ports import EventError, FeatureUpdate
from features.memory import InMemoryCustomerCache
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
    assert "mortgage_calc_visits" in rules.features()


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
            [("transfer_out_competitor_count", "incr", 1.0), ("churn_signal_at", "max", AT)],
        ),
        (
            "transfer_out",
            {"description": "BUNQ b.v. ref 123"},
            [("transfer_out_competitor_count", "incr", 1.0), ("churn_signal_at", "max", AT)],
        ),
        ("transfer_out", {"description": "Rent May", "amount": 900}, []),
        ("transfer_out", {}, []),
        (
            "withdrawal",
            {"amount": 5000},
            [("large_withdrawal_last_at", "max", AT), ("churn_signal_at", "max", AT)],
        ),
        (
            "withdrawal",
            {"amount": "12000"},
            [("large_withdrawal_last_at", "max", AT), ("churn_signal_at", "max", AT)],
        ),
        ("withdrawal", {"amount": 4999.99}, []),
        ("withdrawal", {}, []),
        (
            "visited_page",
            {"page": "mortgage_calculator"},
            [("mortgage_calc_visits", "incr", 1.0), ("mortgage_calc_last_at", "max", AT)],
        ),
        ("visited_page", {"page": "savings"}, []),
        ("pos_payment", {"method": "app", "amount": 12.5}, [("app_pos_payments", "incr", 1.0)]),
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
    features = (await cache.load("c1")).features
    assert features["transfer_out_competitor_count"] == 2
    assert features["churn_signal_at"] == AT  # the late, older event did not move it back


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
                updates: [{feature: app_pos_payments, op: incr}]
              - when: count(offer='card_gold') > 0
                updates: [{feature: app_pos_payments, op: incr}]
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
