"""History functions in rules: `days_since(...)` and `count(...)` over a customer's contact history.

Their arguments are literal keywords only, so every call is known when the rule compiles: the catalogue
can check the offers and groups it names, and the batch computes one column per distinct call.
"""

from __future__ import annotations

import ast
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np

from decisioning.rules.errors import RuleError
from decisioning.summary import HistoryView
from decisioning.types import DAY, HOUR, Outcome

HISTORY_FUNCTIONS = ("days_since", "count")
MAX_WINDOW_SECONDS = 3660 * DAY  # ten years: far beyond what a summary holds, short of absurd
_COUNTABLE = tuple(o.value for o in Outcome if o is not Outcome.NOT_DISPLAYED)


@dataclass(frozen=True)
class HistoryCall:
    """One static history-function call found in a rule.

    >>> HistoryCall("count", None, "loans", ("presented",), None, 30 * DAY).key
    "count(group='loans',outcome=['presented'],days=30)"
    """

    function: str  # "days_since" | "count"
    offer: str | None
    group: str | None
    outcomes: tuple[str, ...]
    channels: tuple[str, ...] | None
    seconds: float | None
    _outcomes: frozenset[Outcome] = field(init=False, repr=False, compare=False)
    _channels: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_outcomes", frozenset(Outcome(o) for o in self.outcomes))
        object.__setattr__(self, "_channels", None if self.channels is None else frozenset(self.channels))

    @property
    def key(self) -> str:
        """The canonical column name: equal calls, however spelt, share one key."""
        named = (("offer", self.offer), ("group", self.group))
        parts = [f"{name}={value!r}" for name, value in named if value is not None]
        parts.append(f"outcome={_list(self.outcomes)}")
        if self.channels is not None:
            parts.append(f"channel={_list(self.channels)}")
        if self.seconds is not None:
            parts.append(_window_text(self.seconds))
        return f"{self.function}({','.join(parts)})"

    def evaluate(self, view: HistoryView | None) -> float:
        """The call's value for one customer: days since (inf when never) or a count (0 without a view).

        >>> HistoryCall("days_since", "x", None, ("presented",), None, None).evaluate(None)
        inf
        """
        if view is None:
            return math.inf if self.function == "days_since" else 0.0
        # The view's own indexes, asked directly (rules call this on every decision): an offer's or a
        # group's times from the index every call with the same outcomes and channels shares.
        if self.offer is not None:
            times: Sequence[float] = view.times_by_scope(self._outcomes, self._channels, True).get(self.offer, ())
        elif self.group is not None:
            times = view.times_by_scope(self._outcomes, self._channels, False).get(self.group, ())
        else:
            found = view.matching(self._outcomes, channels=self._channels)
            if self.function == "days_since":
                return (view.now - found[-1].at) / DAY if found else math.inf
            if self.seconds is None:
                return float(len(found))
            return float(len(found) - bisect_left(found, view.now - self.seconds, key=_AT))
        if self.function == "days_since":
            return (view.now - times[-1]) / DAY if times else math.inf
        if self.seconds is None:
            return float(len(times))
        return float(len(times) - bisect_left(times, view.now - self.seconds))


_AT = attrgetter("at")


def history_columns(calls: Iterable[HistoryCall], views: Sequence[HistoryView]) -> dict[str, np.ndarray]:
    """The batch side: one float64 column per distinct call, one row per customer's view.

    >>> history_columns([HistoryCall("count", None, None, ("presented",), None, None)], [None])
    {"count(outcome=['presented'])": array([0.])}
    """
    unique = {call.key: call for call in calls}
    # Views are per-customer Python objects: one pass per call over them is the only way in.
    return {
        key: np.fromiter((call.evaluate(v) for v in views), dtype=np.float64, count=len(views))
        for key, call in unique.items()
    }


def parse_history_call(node: ast.Call, function: str, col: Callable[[ast.AST], int]) -> HistoryCall:
    """Check a `days_since(...)` / `count(...)` call's literal keyword arguments and build the call.

    `col` gives a node's 1-based column in the rule text, for error messages.
    """
    try:
        return _parse(node, function)
    except _ArgumentError as err:
        raise RuleError(err.args[0], position=col(err.args[1])) from None


class _ArgumentError(Exception):
    """(message, offending node): raised inside this module, turned into a RuleError above."""


def _parse(node: ast.Call, function: str) -> HistoryCall:
    if node.args:
        raise _error(f"{function}() takes keyword arguments only, e.g. {function}(offer='card_gold')", node)
    kwargs = _keywords(node, function)
    if "offer" in kwargs and "group" in kwargs:
        raise _error(f"{function}() takes offer= or group=, not both", node)
    return HistoryCall(
        function,
        _text(kwargs.get("offer"), "offer", function),
        _text(kwargs.get("group"), "group", function),
        _outcomes(kwargs.get("outcome"), function),
        _channels(kwargs.get("channel"), function),
        _window(kwargs, function),
    )


def _keywords(node: ast.Call, function: str) -> dict[str, ast.expr]:
    allowed = ("offer", "group", "outcome", "channel") + (("days", "hours") if function == "count" else ())
    out: dict[str, ast.expr] = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise _error(f"{function}() does not take **arguments", kw.value)
        if kw.arg not in allowed:
            raise _error(f"{function}() has no argument '{kw.arg}' (allowed: {', '.join(allowed)})", kw.value)
        if kw.arg in out:
            raise _error(f"{function}() argument '{kw.arg}' given twice", kw.value)
        out[kw.arg] = kw.value
    return out


def _text(node: ast.expr | None, name: str, function: str) -> str | None:
    if node is None:
        return None
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value):
        raise _error(f"{function}({name}=...) must be a non-empty quoted name, e.g. {name}='x'", node)
    return node.value


def _texts(node: ast.expr, name: str, function: str) -> tuple[str, ...]:
    items = node.elts if isinstance(node, ast.List | ast.Tuple) else [node]
    values = tuple(_text(item, name, function) or "" for item in items)
    if not values:
        raise _error(f"{function}({name}=[]) is empty", node)
    return tuple(sorted(set(values)))


def _outcomes(node: ast.expr | None, function: str) -> tuple[str, ...]:
    if node is None:
        return (Outcome.PRESENTED.value,)
    values = _texts(node, "outcome", function)
    for value in values:
        if value not in _COUNTABLE:
            raise _error(f"unknown outcome '{value}' (one of: {', '.join(_COUNTABLE)})", node)
    return values


def _channels(node: ast.expr | None, function: str) -> tuple[str, ...] | None:
    return None if node is None else _texts(node, "channel", function)


def _window(kwargs: dict[str, ast.expr], function: str) -> float | None:
    if "days" in kwargs and "hours" in kwargs:
        raise _error(f"{function}() takes days= or hours=, not both", kwargs["hours"])
    for name, unit in (("days", DAY), ("hours", HOUR)):
        if name in kwargs:
            node = kwargs[name]
            value = node.value if isinstance(node, ast.Constant) else None
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            # Compare before multiplying: a huge int literal would overflow the conversion to float.
            if not numeric or not 0 < value <= MAX_WINDOW_SECONDS / unit:
                limit = f"{MAX_WINDOW_SECONDS / unit:g}"
                raise _error(f"{function}({name}=...) must be a literal number above 0, up to {limit}", node)
            return float(value) * unit
    return None


def _list(values: tuple[str, ...]) -> str:
    return f"[{','.join(map(repr, values))}]"


def _window_text(seconds: float) -> str:
    for name, unit in (("days", DAY), ("hours", HOUR)):
        amount = seconds / unit
        if amount.is_integer():
            return f"{name}={int(amount)}"
    return f"hours={seconds / HOUR!r}"


def _error(message: str, node: ast.AST) -> _ArgumentError:
    return _ArgumentError(message, node)
