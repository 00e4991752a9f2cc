"""Runtime helpers of the online evaluator: one value at a time.

Generated rule code calls only these (and inline float operators). Values are normalised when read:
a number is a float (NaN when missing), a bool is True/False/None, a string is a str/None, and a value of
unknown type is one of those. NaN and None are both "missing" and behave identically everywhere.
`decisioning.rules.vector` implements the same semantics over whole columns; a property test holds
the two in agreement.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import numpy as np

from decisioning.rules.errors import RuleError

nan = math.nan
_NUMBER_TYPES = (int, float, np.integer, np.floating)
_BOOL_TYPES = (bool, np.bool_)
_ORDER: dict[str, Callable[[object, object], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


# --- reading values ------------------------------------------------------------------------------------
def read_number(value: object, name: str) -> float:
    """A number feature's value: a float, NaN when missing. `read_number(None, "age")` -> nan."""
    if value.__class__ is float:
        return value  # type: ignore[return-value]
    if value is None:
        return nan
    if isinstance(value, _BOOL_TYPES):
        return 1.0 if value else 0.0
    if isinstance(value, _NUMBER_TYPES):
        return _float(value, name)
    raise RuleError(f"'{name}' should be a number, not {_show(value)}")


def read_bool(value: object, name: str) -> bool | None:
    """A bool feature's value: True, False, or None when missing (NaN counts as missing)."""
    if value is True or value is False or value is None:
        return value  # type: ignore[return-value]
    if isinstance(value, _BOOL_TYPES + _NUMBER_TYPES):
        return None if value != value else bool(value)
    raise RuleError(f"'{name}' should be a bool, not {_show(value)}")


def read_text(value: object, name: str) -> str | None:
    """A category's value: a str, or None when missing (NaN counts as missing)."""
    if value.__class__ is str or value is None:
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float | np.floating) and value != value:
        return None
    raise RuleError(f"'{name}' should be text, not {_show(value)}")


def read_any(value: object, name: str) -> float | str | bool | None:
    """A value of unknown type (event or context attribute): normalised, or a RuleError if unsupported."""
    if value.__class__ is str or value.__class__ is float or value is None:
        return value  # type: ignore[return-value]
    if isinstance(value, _BOOL_TYPES):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, _NUMBER_TYPES):
        return _float(value, name)
    raise RuleError(f"'{name}' holds an unsupported value {_show(value)}")


def _float(value: object, name: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise RuleError(f"'{name}' holds a number too large: {_show(value)}") from None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:36]}...'"


# --- truth and missing values -----------------------------------------------------------------------------
def truth(value: object) -> bool:
    """True, a number not 0 and not NaN, or a non-empty string. `truth(nan)` -> False."""
    if value.__class__ is float:
        return value != 0.0 and value == value  # type: ignore[comparison-overlap]
    if value.__class__ is str:
        return value != ""
    return value is True


def missing(value: object) -> bool:
    return value is None or value != value


def bool_number(value: bool | None) -> float:
    """A bool where a number is needed: 1.0, 0.0, or NaN when missing."""
    return nan if value is None else 1.0 if value else 0.0


def to_number(value: object, pos: int | None) -> float:
    """A value of unknown type where a number is needed; a string there is an error."""
    if value.__class__ is float:
        return value  # type: ignore[return-value]
    if value.__class__ is str:
        raise RuleError(f"arithmetic on a string {_show(value)}", position=pos)
    return bool_number(value)  # type: ignore[arg-type]


def number_result(value: object, pos: int | None) -> float:
    """The result of a number rule whose type is only known at evaluation."""
    if value.__class__ is str:
        raise RuleError(f"a number rule gave text {_show(value)}", position=pos)
    return to_number(value, pos)


# --- comparisons --------------------------------------------------------------------------------------------
def equal(a: object, b: object) -> bool:
    """`==`: False when either side is missing; a string never equals a number."""
    return a is not None and b is not None and a == b


def order(op: str, a: object, b: object, pos: int | None) -> bool:
    """`<`, `<=`, `>`, `>=`: False when either side is missing; a string against a number is an error."""
    if a is None or b is None or a != a or b != b:
        return False
    if (a.__class__ is str) is not (b.__class__ is str):
        raise RuleError(f"'{op}' compares a string with a number", position=pos)
    return _ORDER[op](a, b)


def in_texts(value: object, values: frozenset[str]) -> bool:
    return value.__class__ is str and value in values


def in_numbers(value: object, values: frozenset[float]) -> bool:
    return value.__class__ is not str and value in values


# --- arithmetic ---------------------------------------------------------------------------------------------
def div(a: float, b: float) -> float:
    """`/`: NaN when dividing by zero."""
    return a / b if b else nan


def mod(a: float, b: float) -> float:
    """`%` (sign of the divisor, as Python and numpy): NaN for a zero divisor."""
    return a % b if b else nan


# --- functions ----------------------------------------------------------------------------------------------
def minimum(*args: float) -> float:
    """`min` of numbers: NaN if any is NaN (unlike Python's order-dependent `min`)."""
    out = args[0]
    for x in args[1:]:
        if x != x or out != out:
            return nan
        out = out if out <= x else x
    return out


def maximum(*args: float) -> float:
    out = args[0]
    for x in args[1:]:
        if x != x or out != out:
            return nan
        out = out if out >= x else x
    return out


def absolute(x: float) -> float:
    return math.fabs(x)


def round_half_even(x: float, digits: int) -> float:
    """`round(x, n)` exactly as `np.round`: scale by 10**n, round half to even, scale back."""
    scale = 10.0 ** abs(digits)
    y = x * scale if digits >= 0 else x / scale
    if y - y == 0.0:  # finite: Python's round of a float is an exact half-to-even rint
        y = float(round(y))
    return y / scale if digits >= 0 else y * scale


def coalesce(*args: object) -> object:
    """The first argument that is not missing (the last one otherwise)."""
    for x in args[:-1]:
        if x is not None and x == x:
            return x
    return args[-1]


def contains(text: object, needle: object, pos: int | None) -> bool:
    """Case-insensitive substring test; False when either side is missing."""
    if missing(text) or missing(needle):
        return False
    if text.__class__ is not str or needle.__class__ is not str:
        raise RuleError("contains() takes text, not a number", position=pos)
    return needle.lower() in text.lower()  # type: ignore[attr-defined]
