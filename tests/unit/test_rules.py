"""The rule language: operators, functions and missing values, each checked online *and* vectorised."""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from decisioning.rules import CompiledRule, RuleEnv, RuleError, compile_rule, history_columns
from decisioning.summary import HistoryView
from decisioning.types import DAY, Context

NOW = 1_800_000_000.0
SCHEMA = MappingProxyType({
    "age": "number", "income": "number", "score": "number", "last_login_at": "number",
    "has_card": "bool", "vip": "bool", "segment": "category", "region": "category", "note": "category",
})


def context(channel: str = "web", **attributes: Any) -> Context:
    return Context(channel, NOW, placement="home_hero", intent=attributes.pop("intent", None),
                   attributes=MappingProxyType(attributes))


def columns_for(rule: CompiledRule, rows: Sequence[Mapping[str, Any]], ctx: Context,
                views: Sequence[HistoryView | None]) -> dict[str, Any]:
    """The batch inputs of `rule` for these rows: features as object columns, context as scalars."""
    columns: dict[str, Any] = history_columns(rule.history_calls, views)
    for key in rule.inputs:
        if key in ("channel", "placement", "intent", "now"):
            columns[key] = getattr(ctx, key)
        elif key.startswith("context:"):
            columns[key] = ctx.attributes.get(key.removeprefix("context:"))
        elif key not in columns:
            columns[key] = np.array([row.get(key) for row in rows] + [None], dtype=object)[:-1]
    return columns


def same(a: Any, b: Any) -> bool:
    return (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == b


def run(text: str | float, kind: str = "bool", *, features: Mapping[str, str] | None = SCHEMA,
        ctx: Context | None = None, view: HistoryView | None = None, **row: Any) -> Any:
    """Evaluate online, check that the vectorised result (over the row, twice) agrees, return it."""
    rule = compile_rule(text, kind=kind, features=features)
    ctx = ctx or context()
    online = rule.evaluate(RuleEnv(row, ctx, view))
    assert isinstance(online, bool if kind == "bool" else float)
    vector = rule.evaluate_columns(columns_for(rule, [row, row], ctx, [view, view]), 2)
    assert vector.dtype == (np.bool_ if kind == "bool" else np.float64)
    assert same(online, vector[0]) and same(online, vector[1]), (online, vector)
    return online


# --- comparisons ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("age == 40", True), ("age != 40", False), ("age < 40", False), ("age <= 40", True),
    ("age > 39.5", True), ("age >= 41", False), ("18 <= age < 65", True), ("18 <= age < 40", False),
    ("65 > age > 18 >= 0", True), ("segment == 'mass'", True), ("segment != 'mass'", False),
    ("segment < 'n'", True), ("'mass' == segment", True), ("segment == region", False),
    ("has_card == True", True), ("has_card != False", True), ("vip < has_card", True),
])
def test_comparisons(text: str, expected: bool) -> None:
    assert run(text, age=40, segment="mass", region="north", has_card=True, vip=False) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("age > 18", False), ("age < 18", False), ("age == 18", False), ("age != 18", True),
    ("18 <= age < 65", False), ("segment == 'mass'", False), ("segment != 'mass'", True),
    ("segment < 'z'", False), ("segment == region", False), ("segment != region", True),
    ("has_card == False", False), ("has_card != True", True), ("not has_card", True), ("has_card", False),
])
def test_a_comparison_with_a_missing_operand_is_false_except_not_equal(text: str, expected: bool) -> None:
    assert run(text, age=None, segment=None, region=None, has_card=None) is expected


def test_nan_is_missing_like_none() -> None:
    assert run("age > 18 or age <= 18", age=math.nan) is False
    assert run("is_missing(age) and is_missing(segment)", age=math.nan, segment=math.nan) is True


@pytest.mark.parametrize(("text", "row", "expected"), [
    ("segment in ['mass', 'affluent']", {"segment": "mass"}, True),
    ("segment in ('student',)", {"segment": "mass"}, False),
    ("segment not in {'student', 'senior'}", {"segment": "mass"}, True),
    ("segment in ['mass']", {"segment": None}, False),
    ("segment not in ['mass']", {"segment": None}, True),
    ("age in [18, 40.0, -1]", {"age": 40}, True),
    ("age not in [18, 40]", {"age": None}, True),
    ("has_card in [1]", {"has_card": True}, True),
    ("age in []", {"age": 40}, False),
])
def test_membership(text: str, row: dict[str, Any], expected: bool) -> None:
    assert run(text, **row) is expected


# --- truth, and/or/not, if ------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (1, True), (-0.5, True), (0, False), (-0.0, False), (math.nan, False), (None, False), (math.inf, True),
])
def test_number_truth(value: float | None, expected: bool) -> None:
    assert run("score", score=value) is expected
    assert run("not score", score=value) is not expected


@pytest.mark.parametrize(("value", "expected"), [("x", True), ("", False), (None, False)])
def test_text_truth(value: str | None, expected: bool) -> None:
    assert run("note", note=value) is expected


def test_and_or_return_bools_and_short_circuit() -> None:
    assert run("age and segment", age=3, segment="mass") is True
    assert run("age or segment", age=0, segment="") is False
    assert run("age or 7", "number", age=0) == 1.0  # a bool where a number is wanted: 1 or 0
    # The right side is not evaluated online when the left decides; vectorised it is, without error.
    lots = context(amount="lots")
    assert run("channel == 'sms' and context('amount') > 10", features=None, ctx=lots) is False
    assert run("channel == 'web' or context('amount') > 10", features=None, ctx=lots) is True
    with pytest.raises(RuleError, match="'>' compares a string with a number"):
        run("channel == 'web' and context('amount') > 10", features=None, ctx=lots)


def test_if_else() -> None:
    assert run("income * 0.1 if vip else 5", "number", income=1000, vip=True) == 100.0
    assert run("income * 0.1 if vip else 5", "number", income=1000, vip=None) == 5.0
    assert run("'gold' if vip else segment", features=SCHEMA, vip=False, segment="") is False
    assert run("has_card if age > 18 else None", age=30, has_card=True) is True
    assert math.isnan(run("vip if age > 18 else 2", "number", age=30, vip=None))


# --- arithmetic ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("income + 1", 1001.0), ("income - age", 960.0), ("income * 2", 2000.0), ("income / 8", 125.0),
    ("age % 7", 5.0), ("-age % 7", 2.0), ("age % -7", -2.0), ("-age", -40.0), ("- -age", 40.0),
    ("income / 0", math.nan), ("income % 0", math.nan), ("income / (age - 40)", math.nan),
    ("income + score", math.nan), ("score * 0", math.nan), ("income * 1e300 * 1e300", math.inf),
    ("has_card + has_card", 2.0), ("vip * 3", math.nan), ("days_ago(last_login_at)", 2.5),
    ("1.5e2", 150.0), ("(income - 600) / 4 + 2 * age", 180.0),
])
def test_arithmetic(text: str, expected: float) -> None:
    row = {"income": 1000, "age": 40, "score": None, "has_card": True, "vip": None,
           "last_login_at": NOW - 2.5 * DAY}
    assert same(run(text, "number", **row), expected)


# --- functions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("min(age, 18)", 18.0), ("max(age, 18, 99)", 99.0), ("min(age, score)", math.nan),
    ("max(score, age)", math.nan), ("abs(-age)", 40.0), ("abs(score)", math.nan),
    ("round(2.5)", 2.0), ("round(3.5)", 4.0), ("round(-2.5)", -2.0), ("round(2.675, 2)", 2.68),
    ("round(1234.5678, -2)", 1200.0), ("round(income / 3, 1)", 333.3), ("round(score)", math.nan),
    ("clip(age, 0, 30)", 30.0), ("clip(age, 50, 60)", 50.0), ("clip(score, 0, 1)", math.nan),
    ("coalesce(score, 7)", 7.0), ("coalesce(age, 7)", 40.0), ("coalesce(score, score, 3)", 3.0),
    ("coalesce(score, None)", math.nan), ("coalesce(vip, has_card)", 1.0),
])
def test_number_functions(text: str, expected: float) -> None:
    row = {"age": 40, "score": None, "income": 1000, "vip": None, "has_card": True}
    assert same(run(text, "number", **row), expected)
    assert same(expected, float(np.round(2.675, 2)) if text == "round(2.675, 2)" else expected)


@pytest.mark.parametrize(("text", "expected"), [
    ("is_missing(score)", True), ("is_missing(age)", False), ("is_missing(segment)", True),
    ("is_missing(vip)", True), ("is_missing(has_card)", False), ("is_missing(context('nope'))", True),
    ("contains(note, 'GOLD')", True), ("contains(note, 'silver')", False), ("contains(segment, 'a')", False),
    ("contains(note, segment)", False), ("contains('ABC', 'b')", True), ("contains(note, '')", True),
    ("coalesce(segment, 'mass') == 'mass'", True), ("coalesce(segment, region) == 'north'", True),
])
def test_predicates(text: str, expected: bool) -> None:
    row = {"age": 40, "score": None, "segment": None, "region": "north", "vip": None, "has_card": False,
           "note": "Wants a Gold card"}
    assert run(text, **row) is expected


def test_context_names_and_attributes() -> None:
    ctx = Context("call_centre", NOW, placement="agent", intent="complaint",
                  attributes=MappingProxyType({"page": "/mortgage", "amount": 1200, "flag": True}))
    assert run("channel == 'call_centre' and intent == 'complaint' and placement == 'agent'", ctx=ctx)
    assert run("context('page') == '/mortgage' and context('amount') > 1000 and context('flag')", ctx=ctx)
    assert run("now - 86400", "number", ctx=ctx) == NOW - 86400
    assert run("contains(context('page'), 'MORT')", ctx=ctx) is True
    assert run("intent in ['wants_to_close']", ctx=context()) is False  # no intent: missing


def test_rules_without_schema_read_any_name() -> None:
    assert run("amount > 100 and contains(description, 'revolut')", features=None,
               amount=250, description="Transfer to Revolut") is True
    assert run("amount > 100", features=None, amount=None) is False
    assert run("coalesce(amount, 0) + 1", "number", features=None) == 1.0


def test_a_number_literal_compiles_to_a_constant() -> None:
    for value in (120, 0.25, "120"):
        assert run(value, "number") == float(value)
    assert run(True) is True and run(0, "bool") is False
    assert compile_rule(120, kind="number").text == "120"


# --- what a rule reads -------------------------------------------------------------------------------
def test_names_inputs_and_explain() -> None:
    rule = compile_rule(
        "age >= 18 and days_ago(last_login_at) < 30 and context('page') != 'x' and count(offer='a') < 3",
        features=SCHEMA)
    assert rule.names == ("age", "last_login_at")
    call = "count(offer='a',outcome=['presented'])"
    assert rule.inputs == ("age", "now", "last_login_at", "context:page", call)
    assert [c.key for c in rule.history_calls] == ["count(offer='a',outcome=['presented'])"]
    env = RuleEnv({"age": 40, "last_login_at": None}, context(page="/home"))
    assert rule.explain(env) == {"age": 40.0, "now": NOW, "last_login_at": None, "context:page": "/home",
                                 "count(offer='a',outcome=['presented'])": 0.0}


def test_a_compiled_rule_pickles_and_compares_by_text_kind_and_types() -> None:
    rule = compile_rule("age >= 18 and segment == 'mass'", features=SCHEMA, where="offers.yaml: x")
    copy = pickle.loads(pickle.dumps(rule))
    assert copy == rule and hash(copy) == hash(rule) and copy.where == rule.where
    assert copy.evaluate(RuleEnv({"age": 30, "segment": "mass"}, context())) is True
    assert rule != compile_rule("age >= 18 and segment == 'mass'")  # checked without a schema
    assert rule != compile_rule("age >= 18 and segment == 'mass'", kind="number", features=SCHEMA)


# --- vectorised inputs ------------------------------------------------------------------------------
def test_columns_may_be_typed_arrays_or_scalars() -> None:
    rule = compile_rule("age >= 18 and not has_card and segment in ['mass'] and channel == 'web'",
                        features=SCHEMA)
    columns = {
        "age": np.array([17, 18, 40, 50]),
        "has_card": np.array([False, False, True, False]),
        "segment": np.array(["mass", "mass", "mass", "affluent"]),
        "channel": "web",
    }
    assert rule.evaluate_columns(columns, 4).tolist() == [False, True, False, False]
    columns["age"] = 30
    assert rule.evaluate_columns(columns, 4).tolist() == [True, True, False, False]


def test_bool_columns_may_carry_missing_values() -> None:
    rule = compile_rule("has_card == False", features=SCHEMA)
    for column in (np.array([0.0, 1.0, np.nan]), np.array([False, True, None], dtype=object)):
        assert rule.evaluate_columns({"has_card": column}, 3).tolist() == [True, False, False]


def test_a_missing_feature_column_reads_as_missing_but_context_columns_are_required() -> None:
    assert compile_rule("segment != 'mass'", features=SCHEMA).evaluate_columns({}, 2).tolist() == [True, True]
    with pytest.raises(RuleError, match="no column 'now'"):
        compile_rule("days_ago(age) > 1", features=SCHEMA).evaluate_columns({"age": 1.0}, 2)


@pytest.mark.parametrize(("text", "column", "message"), [
    ("age > 1", np.array(["12"], dtype=object), "'age' should be a number, not '12'"),
    ("age > 1", np.array([1.0, 2.0]), r"shape \(2,\), expected \(1,\)"),
    ("segment == 'a'", np.array([3.0]), "'segment' should be text, not float64"),
    ("segment == 'a'", np.array([3.0], dtype=object), "'segment' should be text, not 3.0"),
    ("has_card", np.array(["yes"], dtype=object), "'has_card' should be a number, not 'yes'"),
    ("age > 1", np.array([[1.0]]), "shape"),
])
def test_a_column_of_the_wrong_type_is_a_rule_error(text: str, column: np.ndarray, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        compile_rule(text, features=SCHEMA).evaluate_columns({text.split()[0]: column}, 1)


@pytest.mark.parametrize(("row", "message"), [
    ({"age": "12"}, "'age' should be a number, not '12'"),
    ({"segment": 3}, "'segment' should be text, not 3"),
    ({"has_card": "yes"}, "'has_card' should be a bool, not 'yes'"),
    ({"age": 10**400}, "too large"),
])
def test_a_feature_of_the_wrong_type_is_a_rule_error_online(row: dict[str, Any], message: str) -> None:
    rule = compile_rule("age > 1 or segment == 'a' or has_card", features=SCHEMA)
    with pytest.raises(RuleError, match=message):
        rule.evaluate(RuleEnv(row, context()))
