"""Compiled rules: one rule text, checked once, with an online and a vectorised evaluator that agree."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from decisioning.rules import scalar
from decisioning.rules.checker import FEATURE_TYPES, Checked, check, flatten
from decisioning.rules.columns import bind
from decisioning.rules.errors import RuleError
from decisioning.rules.history_calls import HistoryCall
from decisioning.rules.ir import Hist, Read, T, walk
from decisioning.rules.online import build_online
from decisioning.rules.vector import Env, build_vector
from decisioning.summary import HistoryView
from decisioning.types import Context, FeatureValue

if TYPE_CHECKING:
    from decisioning.catalogue import FeatureType

KINDS = ("bool", "number")
_READERS = {
    T.NUM: scalar.read_number, T.BOOL: scalar.read_bool, T.STR: scalar.read_text, T.ANY: scalar.read_any,
}


@dataclass(frozen=True, slots=True)
class RuleEnv:
    """What a rule reads for one decision: customer features, the request context, the history view.

    Build one per decision and share it between all the rules evaluated for it.
    """

    features: Mapping[str, FeatureValue]
    context: Context
    history: HistoryView | None = None


def compile_rule(
    text: str | int | float | bool,
    *,
    kind: str = "bool",
    features: Mapping[str, FeatureType | str] | None = None,
    where: str = "",
) -> CompiledRule:
    """Check and compile a rule once; evaluate it many times.

    `features` maps declared feature names to their type ("number", "bool", "category"); when given, an
    unknown name is an error and types are checked. A number (`value: 120`) compiles to a constant.

    >>> schema = {"age": "number", "has_credit_card": "bool"}
    >>> rule = compile_rule("age >= 18 and not has_credit_card", features=schema)
    >>> rule.evaluate(RuleEnv({"age": 30, "has_credit_card": False}, Context("web", now=0.0)))
    True
    """
    source = _source(text, where)
    if kind not in KINDS:
        raise RuleError(f"unknown rule kind '{kind}' (one of: {', '.join(KINDS)})", source, where=where)
    types = None if features is None else {name: str(t) for name, t in features.items()}
    try:
        checked = check(source, types)
        if kind == "number" and checked.root.type is T.STR:
            raise RuleError("a number rule must give a number, not text", position=checked.root.pos)
        return CompiledRule(source, kind, checked, types is not None, where)
    except RuleError as err:
        raise err.with_expression(flatten(source)).at(where) from None
    except (RecursionError, MemoryError) as err:  # defensive: the checker bounds depth and size first
        raise RuleError(f"rule is too complex: {type(err).__name__}", flatten(source), where=where) from None


def _source(text: object, where: str) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, bool):
        return str(text)
    if isinstance(text, int | float) and math.isfinite(text):
        return repr(float(text)) if isinstance(text, float) else str(text)
    raise RuleError(f"a rule is text or a finite number, not {text!r:.40}", where=where)


class CompiledRule:
    """A checked rule with its two evaluators.

    `names`: the feature names it reads; `history_calls`: its static history calls; `inputs`: every
    column key `evaluate_columns` needs (features by name; `channel`, `placement`, `intent`, `now`;
    `context:<key>` for `context('key')`; a history call by `call.key`).
    """

    __slots__ = (
        "_calls", "_online", "_readers", "_typed", "_vector",
        "history_calls", "inputs", "kind", "names", "text", "where",
    )

    def __init__(self, text: str, kind: str, checked: Checked, typed: bool, where: str = "") -> None:
        self.text = text
        self.kind = kind
        self.where = where
        self.names = checked.names
        self.history_calls: tuple[HistoryCall, ...] = checked.history_calls
        self.inputs = checked.inputs
        self._typed = typed
        self._readers = _input_types(checked)
        self._online = build_online(checked.root, kind)
        self._calls = {call.key: call for call in self.history_calls}  # by input key, for `explain`
        self._vector = build_vector(checked.root, kind)

    def evaluate(self, env: RuleEnv) -> bool | float:
        """The rule's value for one decision: a bool, or a float for a number rule. Raises only RuleError.

        >>> compile_rule("count(offer='x') == 0").evaluate(RuleEnv({}, Context("web", now=0.0)))
        True
        """
        try:
            return self._online(env.features, env.context, env.history)
        except Exception as err:
            raise self._error(err) from err

    @property
    def online(self) -> Callable[[Mapping[str, FeatureValue], Context, HistoryView | None], Any]:
        """The compiled function itself, `fn(features, context, history)`, for a caller that evaluates
        many rules in one loop (the decision's rule stage): it may raise any exception, where `evaluate`
        raises a RuleError that says which rule and why."""
        return self._online

    def evaluate_columns(self, columns: Mapping[str, np.ndarray | FeatureValue], n: int) -> np.ndarray:
        """The rule over n rows at once: a bool array, or a float64 array for a number rule.

        Each column is a scalar (broadcast) or an array of length n. A missing feature or `context:`
        column reads as missing, as an absent feature does online.

        >>> compile_rule("age >= 18").evaluate_columns({"age": np.array([17.0, 40.0])}, 2)
        array([False,  True])
        """
        try:
            with np.errstate(all="ignore"):
                bound = {key: bind(self._column(columns, key), key, t, n) for key, t in self._readers.items()}
                return self._vector(Env(bound, n))
        except Exception as err:
            raise self._error(err) from err

    def _column(self, columns: Mapping[str, Any], key: str) -> Any:
        if key in columns:
            return columns[key]
        if key in ("channel", "placement", "intent", "now") or key not in self._optional:
            raise RuleError(f"no column '{key}' given")
        return None

    @property
    def _optional(self) -> frozenset[str]:
        return frozenset(self.names) | {k for k in self.inputs if k.startswith("context:")}

    def explain(self, env: RuleEnv) -> dict[str, FeatureValue]:
        """The values the rule reads for this decision, by input key (missing values as None).

        >>> compile_rule("age >= 18").explain(RuleEnv({"age": 40}, Context("web", now=0.0)))
        {'age': 40.0}
        """
        try:
            values = {key: self._read(env, key, t) for key, t in self._readers.items()}
        except Exception as err:
            raise self._error(err) from err
        return {key: None if isinstance(v, float) and math.isnan(v) else v for key, v in values.items()}

    def _read(self, env: RuleEnv, key: str, kind: T) -> Any:
        call = self._calls.get(key)
        if call is not None:
            return call.evaluate(env.history)
        if key.startswith("context:"):
            raw = env.context.attributes.get(key.removeprefix("context:"))
        elif key in ("channel", "placement", "intent", "now"):
            raw = getattr(env.context, key)
        else:
            raw = env.features.get(key)
        return _READERS[kind](raw, key)

    def _error(self, err: Exception) -> RuleError:
        if not isinstance(err, RuleError):
            err = RuleError(f"evaluation failed: {type(err).__name__}: {err}")
        return err.with_expression(flatten(self.text)).at(self.where)

    def __repr__(self) -> str:
        return f"CompiledRule({self.text!r}, kind={self.kind!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompiledRule) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[Any, ...]:
        return (self.text, self.kind, self._typed, tuple(sorted(self._readers.items())))

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled code does not pickle: ship the text and the types it was checked with, recompile.
        types = None
        if self._typed:
            types = {name: _FEATURE_TYPE_NAMES[self._readers[name]] for name in self.names}
        return (_recompile, (self.text, self.kind, types, self.where))


_FEATURE_TYPE_NAMES = {t: name for name, t in FEATURE_TYPES.items()}


def _recompile(text: str, kind: str, features: dict[str, str] | None, where: str) -> CompiledRule:
    return compile_rule(text, kind=kind, features=features, where=where)


def _input_types(checked: Checked) -> dict[str, T]:
    out: dict[str, T] = {}
    for node in walk(checked.root):
        if isinstance(node, Read):
            out.setdefault(node.key, node.type)
        elif isinstance(node, Hist):
            out.setdefault(node.call.key, T.NUM)
    return {key: out[key] for key in checked.inputs}
