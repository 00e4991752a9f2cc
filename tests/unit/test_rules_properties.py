"""Properties of the rule language.

1. Online (row by row) and vectorised evaluation agree exactly on random well-typed rules over random
   rows, missing values, NaN and infinities included; when a row makes the online rule fail, the
   vectorised evaluation fails too, and only then.
2. Random text and random expressions (forbidden constructs included) never make compiling or
   evaluating raise anything but RuleError, and never execute anything: an audit hook watches.
"""

from __future__ import annotations

import ast
import contextlib
import math
import sys
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decisioning.rules import CompiledRule, RuleEnv, RuleError, compile_rule, history_columns
from decisioning.summary import HistorySummary, HistoryView
from decisioning.types import DAY, ContactEvent, Context, Outcome

NOW = 1_800_000_000.0
SCHEMA = {"n1": "number", "n2": "number", "n3": "number", "b1": "bool", "b2": "bool", "s1": "category",
          "s2": "category"}
Draw = Callable[[st.SearchStrategy[Any]], Any]

# --- random well-typed rules ------------------------------------------------------------------------
NUMBER_LEAVES = ("n1", "n2", "n3", "0", "1", "-2", "0.5", "2.5", "7", "1e10", "now", "b1",
                 "context('a')", "count(offer='x', days=7)", "days_since(offer='x')")
TEXT_LEAVES = ("s1", "s2", "'a'", "'A'", "'ab'", "''", "context('t')", "context('a')")
BOOL_LEAVES = ("b1", "b2", "True", "False")


def number(draw: Draw, depth: int) -> str:
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(NUMBER_LEAVES))
    a, b = number(draw, depth - 1), number(draw, depth - 1)
    return draw(st.sampled_from([
        f"({a} + {b})", f"({a} - {b})", f"({a} * {b})", f"({a} / {b})", f"({a} % {b})", f"(-{a})",
        f"min({a}, {b})", f"max({a}, {b}, 1)", f"abs({a})", f"round({a})",
        f"round({a}, {draw(st.integers(-2, 3))})", f"clip({a}, {b}, 3)", f"coalesce({a}, {b})",
        f"({a} if {boolean(draw, depth - 1)} else {b})", f"days_ago({a})",
    ]))


def text(draw: Draw, depth: int) -> str:
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(TEXT_LEAVES))
    a, b = text(draw, depth - 1), text(draw, depth - 1)
    return draw(st.sampled_from([f"coalesce({a}, {b})", f"({a} if {boolean(draw, depth - 1)} else {b})"]))


def anything(draw: Draw, depth: int) -> str:
    return draw(st.sampled_from([number, text, boolean]))(draw, depth)


def boolean(draw: Draw, depth: int) -> str:
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(BOOL_LEAVES))
    a, b, c = (number(draw, depth - 1) for _ in range(3))
    s, t = text(draw, depth - 1), text(draw, depth - 1)
    op1, op2 = (draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="])) for _ in range(2))
    x, y = anything(draw, depth - 1), anything(draw, depth - 1)
    return draw(st.sampled_from([
        f"({a} {op1} {b})", f"({a} {op1} {b} {op2} {c})", f"({s} {op1} {t})", f"({s} in ['a', 'ab', ''])",
        f"({a} not in [0, 1, 2.5])", f"(not {x})", f"({x} and {y})", f"({x} or {y} or {a})",
        f"is_missing({x})", f"contains({s}, {t})",
        f"({boolean(draw, depth - 1)} if {x} else {boolean(draw, depth - 1)})",
        f"(b1 {op1} b2)", f"(b1 == {a})",
    ]))


@st.composite
def rules(draw: Draw) -> tuple[str, str]:
    kind = draw(st.sampled_from(["bool", "number"]))
    return (boolean if kind == "bool" else number)(draw, draw(st.integers(1, 4))), kind


NUMBERS = st.one_of(  # mostly moderate values, so that NaN and inf do not wash every difference out
    st.none(), st.integers(-50, 50), st.floats(-100, 100), st.floats(), st.integers(-(10**6), 10**6),
    st.sampled_from([0, 0.0, -0.0, 1, 2.5, 7, 18, 1e308, -math.inf, math.nan, 2**60 + 1]),
)
TEXTS = st.one_of(st.none(), st.sampled_from(["a", "A", "ab", "", "b", "Ab", "aB", "\x00", "a\x00"]),
                  st.text(max_size=3))
BOOLS = st.sampled_from([True, False, None])
VALUES = {"n": NUMBERS, "b": BOOLS, "s": TEXTS}
ATTRIBUTES = {"a": st.one_of(NUMBERS, TEXTS, BOOLS), "t": TEXTS}


@st.composite
def row(draw: Draw) -> dict[str, Any]:
    out = {name: draw(VALUES[name[0]]) for name in SCHEMA}
    out["@attributes"] = {key: draw(strategy) for key, strategy in ATTRIBUTES.items()}
    ages = draw(st.lists(st.tuples(st.floats(0, 30), st.sampled_from([Outcome.PRESENTED, Outcome.CLICKED])),
                         max_size=4))
    events = [ContactEvent(NOW - days * DAY, "x", "g", "web", outcome, f"d{i}") for i, (days, outcome) in
              enumerate(ages)]
    out["@view"] = HistoryView(HistorySummary().with_events(events), NOW) if draw(st.booleans()) else None
    return out


def env(values: dict[str, Any]) -> RuleEnv:
    features = {k: v for k, v in values.items() if not k.startswith("@")}
    ctx = Context("web", NOW, attributes=MappingProxyType(values["@attributes"]))
    return RuleEnv(features, ctx, values["@view"])


def column(values: list[Any], kind: str, typed: bool) -> Any:
    """A feature column: as raw objects, or (when `typed`) as the natural numpy dtype."""
    if typed and kind == "n":
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    if typed and kind == "b" and None not in values:
        return np.array(values, dtype=bool)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def columns_for(rule: CompiledRule, rows: list[dict[str, Any]], typed: bool) -> dict[str, Any]:
    out: dict[str, Any] = history_columns(rule.history_calls, [r["@view"] for r in rows])
    out["now"] = NOW
    for key in rule.inputs:
        if key.startswith("context:"):
            out[key] = column([r["@attributes"][key.removeprefix("context:")] for r in rows], "a", False)
        elif key in SCHEMA:
            out[key] = column([r[key] for r in rows], key[0], typed)
    return out


def online_results(rule: CompiledRule, rows: list[dict[str, Any]]) -> list[Any] | None:
    """The rule on each row, or None when it fails on any row."""
    out = []
    for values in rows:
        try:
            out.append(rule.evaluate(env(values)))
        except RuleError:
            return None
    return out


def same(a: Any, b: Any) -> bool:
    return (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), st.lists(row(), min_size=1, max_size=6), st.booleans(), st.sampled_from([SCHEMA, None]))
def test_online_and_vectorised_agree(rule_and_kind: tuple[str, str], rows: list[dict[str, Any]],
                                     typed: bool, schema: dict[str, str] | None) -> None:
    text, kind = rule_and_kind
    rule = compile_rule(text, kind=kind, features=schema)  # without a schema, every name has unknown type
    online = online_results(rule, rows)
    try:
        vector = rule.evaluate_columns(columns_for(rule, rows, typed), len(rows))
    except RuleError:
        assert online is None, f"vectorised failed, online did not: {online}"
        return
    assert online is not None, f"online failed, vectorised did not: {vector}"
    assert vector.dtype == (np.bool_ if kind == "bool" else np.float64)
    assert all(isinstance(v, bool if kind == "bool" else float) for v in online)
    assert all(same(a, b) for a, b in zip(online, vector.tolist(), strict=True)), (online, vector)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["x + y", "x - y", "x * y", "x / y", "x % y", "-x", "min(x, y)", "max(x, y)",
                        "abs(x)", "round(x)", "round(x, 2)", "round(x, -1)", "clip(x, y, 0)", "coalesce(x, y)",
                        "days_ago(x)"]),
       st.lists(st.tuples(st.one_of(st.floats(), st.integers(-20, 20), st.none()),
                          st.one_of(st.floats(), st.integers(-20, 20), st.none())), min_size=1, max_size=8))
def test_arithmetic_agrees_on_any_numbers(text: str, pairs: list[tuple[float | None, float | None]]) -> None:
    rule = compile_rule(text, kind="number", features={"x": "number", "y": "number"})
    online = [rule.evaluate(RuleEnv({"x": x, "y": y}, Context("web", NOW))) for x, y in pairs]
    xs, ys = ([math.nan if v is None else float(v) for v in side] for side in zip(*pairs, strict=True))
    vector = rule.evaluate_columns({"x": np.array(xs), "y": np.array(ys), "now": NOW}, len(pairs))
    assert all(same(a, b) for a, b in zip(online, vector.tolist(), strict=True)), (online, vector)


# --- never anything but RuleError, never any execution -----------------------------------------------------
_WATCHED = ("exec", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "subprocess.Popen", "open",
            "socket.connect", "ctypes.dlopen", "builtins.input")
_events: list[tuple[str, tuple]] | None = None


def _audit(event: str, args: tuple) -> None:
    if _events is not None and (event in _WATCHED or event == "compile"):
        _events.append((event, args))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only inside `watched`


def watched(action: Callable[[], Any]) -> list[tuple[str, tuple]]:
    """Run `action` and return the audited events it raised; only RuleError may escape it."""
    global _events
    _events = []
    try:
        action()
    except RuleError:
        pass
    finally:
        events, _events = _events, None
    return events


def assert_nothing_executed(events: list[tuple[str, tuple]]) -> None:
    for event, args in events:
        if event == "compile":
            # Rule text is only ever parsed to an AST; what is compiled to code is the generated AST.
            source, filename = args
            text = isinstance(source, str | bytes)
            assert (text and filename == "<rule text>") or isinstance(source, ast.AST), (event, args)
        else:
            raise AssertionError(f"rule compilation or evaluation raised the audit event {event}{args}")


def compile_and_run(text: str, features: dict[str, str] | None) -> None:
    rule = compile_rule(text, features=features)
    ctx = Context("web", NOW, intent="complaint", attributes=MappingProxyType({"a": 1, "t": "x"}))
    for values in ({}, {"n1": 5, "s1": "a", "b1": True, "x": "y", "age": 3.5}, {"n1": None, "x": 1}):
        for call in (rule.evaluate, rule.explain):
            with contextlib.suppress(RuleError):
                call(RuleEnv(values, ctx, None))
    rule.evaluate_columns({k: np.array([1.0, math.nan]) for k in rule.names}, 2)


TOKENS = ["(", ")", "[", "]", ",", ".", ":", "=", "==", "<", "**", "*", "+", "-", "/", "%", "not", "and",
          "or", "in", "if", "else", "for", "lambda", "n1", "s1", "b1", "x", "age", "__import__", "__class__",
          "os", "'os'", "'a'", "1", "10", "9", "None", "True", "count", "days_since", "context", "min", "offer",
          "outcome", "'x'", "'presented'", "days", "round", "contains", "is_missing", "{", "}", "yield", "\\n"]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(st.sampled_from(TOKENS), max_size=16).map(" ".join)),
       st.sampled_from([None, SCHEMA]))
def test_random_text_only_ever_raises_rule_error(text: str, features: dict[str, str] | None) -> None:
    assert_nothing_executed(watched(lambda: compile_and_run(text, features)))


def expressions() -> st.SearchStrategy[str]:
    """Random Python expressions, allowed and forbidden constructs mixed."""
    leaves = st.sampled_from(["n1", "s1", "b1", "x", "__import__", "os", "1", "10", "'a'", "None", "()",
                              "True", "-1.5", "[1, 2]", "'presented'", "1e400", "10**400"])

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        pair = st.tuples(inner, inner)
        return st.one_of(
            pair.map(lambda p: f"{p[0]}.{p[1] if p[1].isidentifier() else 'y'}"),
            pair.map(lambda p: f"{p[0]}[{p[1]}]"),
            inner.map(lambda a: f"(lambda: {a})"),
            pair.map(lambda p: f"[{p[0]} for x in {p[1]}]"),
            pair.map(lambda p: f"({p[0]} ** {p[1]})"),
            pair.map(lambda p: f"({p[0]} * {p[1]})"),
            st.tuples(st.sampled_from(["min", "max", "abs", "round", "coalesce", "contains", "is_missing",
                                       "context", "count", "days_since", "eval", "getattr", "x", "()"]),
                      st.lists(inner, max_size=3))
            .map(lambda p: f"{p[0]}({', '.join(p[1])})"),
            pair.map(lambda p: f"count(offer={p[0]}, days={p[1]})"),
            pair.map(lambda p: f"({p[0]}, {p[1]})"),
            pair.map(lambda p: f"{{{p[0]}: {p[1]}}}"),
            inner.map(lambda a: f"(not {a})"),
            st.tuples(inner, inner, inner).map(lambda p: f"({p[0]} if {p[1]} else {p[2]})"),
            pair.map(lambda p: f"({p[0]} and {p[1]})"),
            st.tuples(inner, st.sampled_from(["<", "==", "in", "not in", "is", "!="]), inner)
            .map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
            inner.map(lambda a: f"(-{a})"),
            inner.map(lambda a: f"f'{{{a}}}'"),
        )

    return st.recursive(leaves, extend, max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(expressions(), st.sampled_from([None, SCHEMA]))
def test_random_expressions_only_ever_raise_rule_error(text: str, features: dict[str, str] | None) -> None:
    assert_nothing_executed(watched(lambda: compile_and_run(text, features)))


def test_the_audit_hook_would_see_an_execution() -> None:
    events = watched(lambda: exec("1"))  # proves the watcher is not blind
    assert any(event == "exec" for event, _ in events)
