"""Column operations of the vectorised evaluator, mirroring `decisioning.rules.scalar` value for value.

Errors that only a value of unknown type can cause (a string in arithmetic, a string ordered against a
number) are found per row and raised only for `active` rows: the rows where the online evaluator, with
its short-circuits, would have evaluated that operation at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from decisioning.rules.columns import Array, Dyn
from decisioning.rules.errors import RuleError
from decisioning.rules.ir import T

Value = Array | Dyn
Active = Array | None  # None: every row

_ORDER = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def fail_rows(bad: Array, active: Active, message: str, pos: int | None) -> None:
    """Raise RuleError if any active row is bad."""
    rows = bad if active is None else bad & active
    if rows.any():
        raise RuleError(message, position=pos)


def constant(value: object, kind: T, n: int) -> Value:
    if kind is T.NUM:
        return np.full(n, value, dtype=np.float64)
    if kind is T.BOOL:
        return np.full(n, value, dtype=bool)
    if kind is T.STR:
        return np.full(n, value, dtype=object)
    return Dyn(np.full(n, np.nan))  # None


# --- conversions --------------------------------------------------------------------------------------------
def as_number(value: Value, kind: T, n: int, active: Active, pos: int | None) -> Array:
    """Numbers (bools as 1/0, missing as NaN); text rows of an unknown-type value are errors."""
    if kind in (T.NUM, T.BOOL):
        return value.astype(np.float64, copy=False)  # type: ignore[union-attr]
    if isinstance(value, Dyn):
        if value.is_text is not None:
            fail_rows(value.is_text, active, "arithmetic on a string", pos)
        return value.num
    return np.full(n, np.nan)


def as_text(value: Value, kind: T, n: int) -> Array:
    return value if kind is T.STR else np.full(n, None, dtype=object)  # type: ignore[return-value]


def as_dyn(value: Value, kind: T) -> Dyn:
    if isinstance(value, Dyn):
        return value
    if kind is T.STR:
        present = ~np.equal(value, None)
        return Dyn(np.full(len(value), np.nan), value, present)
    return Dyn(value.astype(np.float64, copy=False))


def number_truth(values: Array) -> Array:
    return (values != 0) & ~np.isnan(values)


def truth(value: Value, kind: T) -> Array:
    """True, a number not 0 and not NaN, or a non-empty string."""
    if isinstance(value, Dyn):
        out = number_truth(value.num)
        return out if value.is_text is None else np.where(value.is_text, value.text.astype(bool), out)
    if kind is T.STR:
        return value.astype(bool)  # bool(None) and bool('') are False
    if value.dtype.kind == "b":
        return value
    return number_truth(value)


def missing(value: Value, kind: T) -> Array:
    if isinstance(value, Dyn):
        return value.missing()
    if kind is T.STR:
        return np.equal(value, None)
    return np.isnan(value) if value.dtype.kind == "f" else np.zeros(len(value), dtype=bool)


# --- comparisons ---------------------------------------------------------------------------------------
def compare(op: str, a: Value, a_kind: T, b: Value, b_kind: T, active: Active, pos: int | None) -> Array:
    """One link of a comparison chain; missing operands compare False (`!=`: True)."""
    numeric = {a_kind, b_kind} <= {T.NUM, T.BOOL}
    if op in ("==", "!="):
        if numeric:
            same = _floats(a) == _floats(b)
        elif a_kind is T.STR and b_kind is T.STR:
            same = (a == b) & ~np.equal(a, None) & ~np.equal(b, None)
        else:
            same = _dyn_equal(as_dyn(a, a_kind), as_dyn(b, b_kind))
        return same if op == "==" else ~same
    if numeric:
        return _ORDER[op](_floats(a), _floats(b))
    return _dyn_order(op, as_dyn(a, a_kind), as_dyn(b, b_kind), active, pos)


def _floats(value: Value) -> Array:
    return value.astype(np.float64, copy=False)  # type: ignore[union-attr]


def _dyn_equal(a: Dyn, b: Dyn) -> Array:
    same = a.num == b.num  # text and missing rows hold NaN: never equal
    if a.is_text is not None and b.is_text is not None:
        same |= a.is_text & b.is_text & (a.text == b.text)
    return same


def _dyn_order(op: str, a: Dyn, b: Dyn, active: Active, pos: int | None) -> Array:
    out = _ORDER[op](a.num, b.num)
    a_text, b_text = (d.is_text if d.is_text is not None else np.zeros(len(d.num), bool) for d in (a, b))
    present = ~(a.missing() | b.missing())
    fail_rows(present & (a_text != b_text), active, f"'{op}' compares a string with a number", pos)
    both = a_text & b_text
    if both.any():
        out[both] = _ORDER[op](a.text[both], b.text[both])  # type: ignore[index]
    return out


def member(value: Value, kind: T, values: tuple, values_kind: T) -> Array:
    """`value in values` for a literal list of numbers or of strings."""
    if values_kind is T.NUM:
        numbers = value.num if isinstance(value, Dyn) else value.astype(np.float64, copy=False)
        return np.isin(numbers, np.array(values, dtype=np.float64))
    dyn, wanted = as_dyn(value, kind), frozenset(values)
    out = np.zeros(len(dyn.num), dtype=bool)
    if dyn.is_text is not None and dyn.is_text.any():
        texts = dyn.text[dyn.is_text].tolist()  # type: ignore[index]
        out[dyn.is_text] = per_distinct(texts, wanted.__contains__)
    return out


def per_distinct(rows: list[Any], test: Callable[[Any], bool]) -> Array:
    """`test` of each row's value, computed once per distinct value.

    String columns are categorical or repetitive: the Python loop runs over few distinct values, never
    over every row (the rows are mapped through a dict in C). Fixed-width numpy strings would be faster
    but drop trailing NULs, and then disagree with the online evaluator.
    """
    results = {value: test(value) for value in dict.fromkeys(rows)}
    return np.fromiter(map(results.__getitem__, rows), dtype=bool, count=len(rows))


# --- arithmetic and functions --------------------------------------------------------------------------
def divide(a: Array, b: Array) -> Array:
    return np.where(b == 0, np.nan, a / b)


def modulo(a: Array, b: Array) -> Array:
    return np.where(b == 0, np.nan, np.remainder(a, b))


def coalesce(values: list[Value], kind: T, n: int) -> Value:
    """The first non-missing value of each row (the last argument's otherwise)."""
    if kind is T.ANY or kind is T.NONE:
        out = as_dyn(values[-1], kind)
        for v in reversed(values[:-1]):
            out = v.where(~v.missing(), out)  # type: ignore[union-attr]
        return out
    out = values[-1]
    for v in reversed(values[:-1]):
        out = np.where(missing(v, kind), out, v)
    return out


def contains(text: Dyn, needle: Dyn, active: Active, pos: int | None) -> Array:
    """Case-insensitive substring test, False when either side is missing."""
    n = len(text.num)
    gap = text.missing() | needle.missing()
    is_text = [d.is_text if d.is_text is not None else np.zeros(n, bool) for d in (text, needle)]
    fail_rows(~gap & ~(is_text[0] & is_text[1]), active, "contains() takes text, not a number", pos)
    rows = is_text[0] & is_text[1]
    out = np.zeros(n, dtype=bool)
    if rows.any():
        pairs = zip(text.text[rows].tolist(), needle.text[rows].tolist(), strict=True)  # type: ignore[index]
        out[rows] = per_distinct(list(pairs), _contains_pair)
    return out


def _contains_pair(pair: tuple[str, str]) -> bool:
    return pair[1].lower() in pair[0].lower()
