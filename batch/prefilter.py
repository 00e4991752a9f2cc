"""The vectorised half of a batch decision: active dates, channel and every rule, over a partition's columns.

The result is, per customer, the bits of the offers still alive (the `decisioning.plan` encoding), which
`decide(..., prefiltered=bits)` takes instead of evaluating the rules one customer at a time. Rules are
applied in the plan's order (eligibility, applicability, suitability; group rules first), so the rule
counted as dropping an offer is the one the online explanation would name.

A rule whose vectorised form raises (a column holds a value it cannot read) is evaluated per customer
with its online form, where an error makes the rule false for that customer only: exactly what the
online path does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from decisioning.bits import indices
from decisioning.catalogue import Catalogue, Rule
from decisioning.plan import plan_for
from decisioning.rules import CompiledRule, RuleEnv, RuleError
from decisioning.rules.history_calls import HistoryCall
from decisioning.summary import HistoryView
from decisioning.types import Context, FeatureValue


@dataclass(frozen=True)
class Prefiltered:
    """Per customer, the offers that passed the static filters and the rules."""

    bits: list[int]  # one per customer, in partition order
    alive: np.ndarray  # the same as an (n customers, m offers) bool matrix
    columns: dict[str, object]  # the inputs the rules read, as columns (more can be added: `rule_columns`)
    static_bits: int  # offers active now with a treatment for the channel (the same for everyone)
    eligible_pairs: int  # (customer, offer) pairs alive after the rules
    rule_drops: Counter[str]  # "class:owner:name" -> (customer, offer) pairs it dropped first


def prefilter(
    catalogue: Catalogue,
    context: Context,
    values: Sequence[Mapping[str, FeatureValue]],
    views: Sequence[HistoryView],
) -> Prefiltered:
    """Run the static filters and every rule over n customers at once.

    >>> pre = prefilter(catalogue, Context("email", now), [customer.values], [view])  # doctest: +SKIP
    >>> pre.bits[0] == 0b101                                                           # doctest: +SKIP
    True
    """
    plan = plan_for(catalogue)
    n = len(values)
    static = plan.active_bits(context.now) & plan.channel_bits.get(context.channel, 0)
    alive = np.zeros((n, len(plan.offers)), dtype=bool)
    alive[:, list(indices(static))] = True
    drops: Counter[str] = Counter()
    columns = rule_columns([guard.rule.compiled for guard in plan.rules], context, values, views)
    for guard in plan.rules:
        members = list(indices(guard.members & static))
        if not members:
            continue
        hit = alive[:, members]
        holds = _holds(guard.rule, columns, n, values, context, views)
        dropped = hit & ~holds[:, None]
        if dropped.any():
            drops[_rule_key(guard.rule)] += int(dropped.sum())
            alive[:, members] = hit & holds[:, None]
    return Prefiltered(_bits(alive), alive, columns, static, int(alive.sum()), drops)


def _rule_key(rule: Rule) -> str:
    return f"{rule.rule_class.value}:{rule.owner}:{rule.name}"


def rule_columns(
    rules: Sequence[CompiledRule],
    context: Context,
    values: Sequence[Mapping[str, FeatureValue]],
    views: Sequence[HistoryView],
    known: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Every input the rules read, as `evaluate_columns` takes them: feature columns, the context as
    scalars, history calls; `known` columns (built for other rules of the same customers) are reused."""
    calls = [call for rule in rules for call in rule.history_calls if call.key not in (known or {})]
    inputs = {key for rule in rules for key in rule.inputs}
    columns: dict[str, object] = {
        "channel": context.channel, "placement": context.placement, "intent": context.intent, "now": context.now,
    }  # fmt: skip
    columns.update(known or {})
    columns.update(_history_columns(calls, views))
    for key in inputs - columns.keys():
        if key.startswith("context:"):
            columns[key] = context.attributes.get(key.removeprefix("context:"))
        else:
            columns[key] = _feature_column([v.get(key) for v in values])
    return columns


def _history_columns(calls: Sequence[HistoryCall], views: Sequence[HistoryView]) -> dict[str, np.ndarray]:
    """One float64 column per distinct call; each distinct view is asked once (customers without a
    history share one view)."""
    distinct = list({id(v): v for v in views}.values())
    position = {id(v): i for i, v in enumerate(distinct)}
    rows = np.fromiter((position[id(v)] for v in views), dtype=np.intp, count=len(views))
    unique = {call.key: call for call in calls}
    return {key: np.array([call.evaluate(v) for v in distinct], dtype=np.float64)[rows] for key, call in unique.items()}


def _feature_column(items: list[FeatureValue]) -> np.ndarray:
    # A column of plain numbers goes to float64, one of booleans to bool (what `bind` would make of
    # them, minus its type scan of an object column).
    if all(type(x) is float or type(x) is int for x in items):
        return np.array(items, dtype=np.float64)
    if all(type(x) is bool for x in items):
        return np.array(items, dtype=bool)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _holds(
    rule: Rule,
    columns: Mapping[str, object],
    n: int,
    values: Sequence[Mapping[str, FeatureValue]],
    context: Context,
    views: Sequence[HistoryView],
) -> np.ndarray:
    try:
        return np.asarray(rule.compiled.evaluate_columns(columns, n), dtype=bool)
    except RuleError:
        return np.fromiter((_holds_one(rule, RuleEnv(v, context, h)) for v, h in zip(values, views, strict=True)),
                           dtype=bool, count=n)  # fmt: skip


def _holds_one(rule: Rule, env: RuleEnv) -> bool:
    try:
        return bool(rule.compiled.evaluate(env))
    except RuleError:
        return False  # as online: a rule that cannot be evaluated drops the offer (the decision notes why)


def _bits(alive: np.ndarray) -> list[int]:
    """Each row of a bool matrix as an int whose bit i is column i."""
    if alive.shape[1] == 0:
        return [0] * alive.shape[0]
    packed = np.packbits(alive, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]
