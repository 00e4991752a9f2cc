"""The meaning of a real-time feature update, shared by the in-process cache and checked before Redis.

"incr" adds a number (a missing or non-numeric value counts as 0), "set" stores any value, "max" keeps the
larger number (a missing or non-numeric value loses). "count" records the event's time among the feature's
event times (a `WindowedCount`, kept apart from the values): the decision counts those within the window.
Every update also stamps the feature's time, even a "max" that kept the current value: the event was seen.
The Redis adapter implements the same four in Lua; the contract tests hold the two to the same results.

What a "count" keeps is bounded, trimmed on every write: only the times within one window of the newest
(an older one can never be counted again, since decisions come after the events they read) and at most
`MAX_COUNTED_EVENTS` of them, so a count saturates there; rules compare counts with small thresholds.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from decisioning.ports import FeatureUpdate, WindowedCount
from decisioning.types import FeatureValue

OPS = frozenset({"incr", "set", "max", "count"})
NUMERIC_OPS = frozenset({"incr", "max"})
MAX_COUNTED_EVENTS = 256


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
        if u.op != "count" and u.window is not None:
            raise ValueError(f"a window is for count updates only, not for {u.op} of {u.feature}")
        if u.op == "count" and not (isinstance(u.window, int | float) and 0 < u.window < math.inf):
            raise ValueError(f"count of {u.feature} needs a positive finite window, got {u.window!r}")


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


def count_event(current: WindowedCount | None, window: float, at: float) -> WindowedCount:
    """The event times of a windowed count after one more event at `at`, trimmed (see module doc).

    >>> count_event(WindowedCount(10.0, (1.0, 5.0)), 10.0, 12.0)
    WindowedCount(window=10.0, times=(5.0, 12.0))
    """
    times = list(current.times) if current is not None else []
    bisect.insort(times, at)  # events may arrive out of order: keep the times sorted
    times = times[-MAX_COUNTED_EVENTS:]
    start = bisect.bisect_left(times, times[-1] - window)
    return WindowedCount(window, tuple(times[start:]))
