"""The meaning of a real-time feature update, shared by the in-process cache and checked before Redis.

"incr" adds a number (a missing value counts as 0), "set" stores any value, "max" keeps the larger number
(a missing value loses). The Redis adapter implements the same three in Lua; the contract tests hold the
two to the same results.
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
    """The feature's value after `update`.

    >>> apply_update(None, FeatureUpdate("n", "incr", 1)), apply_update(5, FeatureUpdate("t", "max", 3))
    (1, 5)
    """
    if update.op == "set":
        return update.value
    if update.op == "incr":
        return (current or 0) + update.value  # type: ignore[operator]
    if update.op == "max":
        return update.value if current is None or update.value > current else current  # type: ignore[operator]
    raise ValueError(f"unknown feature update op {update.op!r} for {update.feature}")
