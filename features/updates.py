"""The meaning of a real-time feature update, shared by the in-process cache and checked before Redis.

"incr" adds a number (a missing or non-numeric value counts as 0), "set" stores any value, "max" keeps the
larger number (a missing or non-numeric value loses). Every update also stamps the feature's time, even a
"max" that kept the current value: the event was seen. The Redis adapter implements the same three in
Lua; the contract tests hold the two to the same results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from decisioning.ports import FeatureUpdate
from decisioning.types import FeatureValue

OPS = frozenset({"incr", "set", "max"})
NUMERIC_OPS = frozenset({"incr", "max"})


def check_updates(updates: Sequence[FeatureUpdate]) -> None:
    """Raise ValueError for an unknown op or a non-numeric value where a number is due.

    >>> check_updates([FeatureUpdate("n", "incr", 1)])
    >>> check_updates([FeatureUpdate("n", "double", 1)])
    Traceback (most recent call last):
    ...
    ValueError: unknown feature update op 'double' for n
    """
    for u in updates:
        if u.op not in OPS:
            raise ValueError(f"unknown feature update op {u.op!r} for {u.feature}")
        numeric = isinstance(u.value, int | float) and not isinstance(u.value, bool)
        if u.op in NUMERIC_OPS and not (numeric and math.isfinite(u.value)):  # type: ignore[arg-type]
            raise ValueError(f"{u.op} of {u.feature} needs a finite number, got {u.value!r}")


def apply_update(current: FeatureValue, update: FeatureUpdate) -> FeatureValue:
    """The feature's value after `update`; a current value that is not a number counts as missing.

    >>> apply_update(None, FeatureUpdate("n", "incr", 1)), apply_update(5, FeatureUpdate("t", "max", 3))
    (1, 5)
    """
    if update.op == "set":
        return update.value
    number = current if isinstance(current, int | float) and not isinstance(current, bool) else None
    if update.op == "incr":
        return (number or 0) + update.value  # type: ignore[operator]
    if update.op == "max":
        return update.value if number is None or update.value > number else number  # type: ignore[operator]
    raise ValueError(f"unknown feature update op {update.op!r} for {update.feature}")
