"""Contact policies and arbitration for a whole partition at once: the batch's replacement of the per-customer
`decisioning.engine.decide`, with the same answers (tests/batch: parity with POST /v1/decisions and with
`decide` itself, exploration on).

What `decide` does one customer at a time is done here as arrays over the partition (n customers x m offers):
- **contact policies**: a customer without a history has nothing counted, so no policy can suppress an
  offer, and a cap on presentations leaves room for `threshold` offers; when every such cap leaves at least
  `top`, the customers without a history need no policy evaluation at all (the usual case: 90% of a bank's
  customers had no contact in the retention period). Customers with a history run the core's own
  `evaluate_policies` over their summary (the same function, the same order of offers), and their
  suppressed offers are cleared from the alive matrix;
- **value, priority and ranking**: the offers' value expressions in their vectorised form (constants once),
  priority = propensity x value x lever x context weight x consistency boost as one array product (the same
  float operations in the same order as `Candidate.priority`), and the ranking (priority descending, offer
  id ascending) as one `lexsort`;
- **choice**: greedy or epsilon-greedy with `max_per_group`, a short loop per customer over its ranked
  offers with the decision's own seeded generator (`random.Random(seed of the decision id)`, drawing as
  `arbitration._Chooser` draws), so exploration picks and logs exactly what online would.

Customers it does not handle go to `decide` unchanged (`needs_core`): the control group, Thompson sampling,
consistency `pin`, a contact-policy headroom that could bind this decision (a cap leaving fewer than `top`),
and a ranking with a NaN priority.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from decisioning.arbitration import in_control_group
from decisioning.catalogue import Catalogue, ConsistencyMode, ContactPolicy, ExplorationKind, Level, Offer
from decisioning.contact_policy import Suppression, evaluate_policies
from decisioning.engine import Decision, PresentedOffer, _seed
from decisioning.plan import Plan, plan_for
from decisioning.rules import RuleEnv, RuleError
from decisioning.summary import HistoryView
from decisioning.types import DAY, Context, CustomerFeatures, Direction, Outcome


@dataclass
class Bulk:
    """The partition's arrays: alive after the rules, then after the policies; scores, values, priorities."""

    alive: np.ndarray  # (n, m) bool
    propensity: np.ndarray  # (n, m) float64, NaN where not scored
    needs_core: np.ndarray  # (n,) bool: decided by `decide` instead
    suppressions: list[tuple[Suppression, ...]]  # per customer, in `decide`'s order


def fast_mode(catalogue: Catalogue) -> str | None:
    """The arbitration mode this module reproduces for the catalogue; None: every customer needs `decide`."""
    s = catalogue.settings
    if s.exploration is ExplorationKind.THOMPSON or s.consistency is ConsistencyMode.PIN:
        return None
    return "epsilon_greedy" if s.exploration is ExplorationKind.EPSILON and s.epsilon > 0 else "greedy"


def cap_bounds(catalogue: Catalogue, channel: str, top: int) -> dict[str, int]:
    """Per presentation cap (a policy counting `presented` above offer level, in this channel): the most
    offers one decision can take from what it covers, given `top` and `max_per_group`. A headroom of at
    least that many cannot bind (`arbitration._Slots` blocks an offer only once the picks among the
    policy's offers reach its `remaining`)."""
    plan, per_group = plan_for(catalogue), catalogue.settings.max_per_group
    out = {}
    for p in catalogue.policies:
        if Outcome.PRESENTED not in p.outcomes or p.level is Level.OFFER:
            continue
        if p.channels is not None and channel not in p.channels:
            continue
        named = p.offers or p.groups
        covered = [o for o in plan.offers if ((o.id in p.offers or o.group in p.groups) if named else o.marketing)]
        groups = len({o.group for o in covered})
        out[p.id] = top if per_group is None else min(top, groups * per_group)
    return out


def apply_policies(
    catalogue: Catalogue,
    context: Context,
    customers: Sequence[CustomerFeatures],
    views: Sequence[HistoryView],
    empty: HistoryView,
    columns: Mapping[str, object],
    bulk: Bulk,
    top: int,
) -> None:
    """Clear the suppressed offers from `bulk.alive` and mark who needs `decide` (module docstring)."""
    plan = plan_for(catalogue)
    bounds = cap_bounds(catalogue, context.channel, top)
    # Without a history, a cap's headroom is its threshold: it may bind only where its segment holds.
    tight = [p for p in catalogue.policies if p.id in bounds and p.threshold < bounds[p.id]]
    capped = _in_segments(tight, columns, customers, context, views)
    control = np.array([in_control_group(c.customer_id, catalogue.settings, context.now) for c in customers])
    bulk.needs_core |= control | (capped & np.array([v is empty for v in views], dtype=bool))
    for i in np.flatnonzero(~bulk.needs_core & np.array([v is not empty for v in views], dtype=bool)):
        _customer_policies(catalogue, plan, context, customers[i], views[i], bulk, int(i), bounds)


def _in_segments(
    policies: Sequence[ContactPolicy], columns: Mapping[str, object], customers: Sequence[CustomerFeatures],
    context: Context, views: Sequence[HistoryView],
) -> np.ndarray:  # fmt: skip
    """Per customer, whether any of the policies applies (no segment, or its segment holds or fails)."""
    n = len(customers)
    out = np.zeros(n, dtype=bool)
    for p in policies:
        if p.segment is None:
            return np.ones(n, dtype=bool)
        try:
            out |= np.asarray(p.segment.evaluate_columns(columns, n), dtype=bool)
        except RuleError:  # as online: a segment that cannot be evaluated applies the policy
            envs = (RuleEnv(c.values, context, v) for c, v in zip(customers, views, strict=True))
            out |= np.array([_segment_one(p, env) for env in envs], dtype=bool)
    return out


def _segment_one(policy: ContactPolicy, env: RuleEnv) -> bool:
    try:
        return bool(policy.segment.evaluate(env)) if policy.segment is not None else True
    except RuleError:
        return True


def _customer_policies(
    catalogue: Catalogue, plan: Plan, context: Context, customer: CustomerFeatures, view: HistoryView,
    bulk: Bulk, i: int, bounds: Mapping[str, int],
) -> None:  # fmt: skip
    alive = np.flatnonzero(bulk.alive[i])
    offers = [plan.offers[j] for j in alive]
    env = RuleEnv(customer.values, context, view)
    outcome = evaluate_policies(
        catalogue.policies, offers, env, view, catalogue.settings.timezone, catalogue.service_offer_ids
    )
    if any(h.remaining < bounds.get(h.policy_id, 0) for h in outcome.headroom):
        bulk.needs_core[i] = True
        return
    for offer_id in outcome.suppressed:
        bulk.alive[i, plan.index[offer_id]] = False
    bulk.suppressions[i] = tuple(outcome.suppressed.values())


def boosts(catalogue: Catalogue, views: Sequence[HistoryView], empty: HistoryView, now: float) -> np.ndarray:
    """The consistency boost per (customer, offer): offers contacted recently and not answered yet."""
    plan = plan_for(catalogue)
    settings = catalogue.settings
    out = np.ones((len(views), len(plan.offers)), dtype=np.float64)
    if settings.consistency is ConsistencyMode.OFF:
        return out
    since = now - settings.consistency_days * DAY
    for i, view in enumerate(views):
        if view is empty:
            continue
        for offer_id in view.unanswered_contacts(since):
            j = plan.index.get(offer_id)
            if j is not None:
                out[i, j] = settings.consistency_boost
    return out


def values(
    catalogue: Catalogue,
    columns: Mapping[str, object],
    context: Context,
    customers: Sequence[CustomerFeatures],
    views: Sequence[HistoryView],
    alive: np.ndarray,
) -> np.ndarray:
    """Each offer's value per customer: constants once, expressions vectorised (NaN read as 0, as online);
    an expression whose vectorised form fails is evaluated per customer where the offer is alive."""
    plan = plan_for(catalogue)
    n = len(customers)
    out = np.zeros((n, len(plan.offers)), dtype=np.float64)
    for j, offer in enumerate(plan.offers):
        constant = plan.constant_values[j]
        if constant is not None:
            out[:, j] = constant
            continue
        try:
            column = np.asarray(offer.value.evaluate_columns(columns, n), dtype=np.float64)
        except RuleError:
            column = np.array([
                _value_one(offer, RuleEnv(customers[i].values, context, views[i])) if alive[i, j] else 0.0
                for i in range(n)
            ])  # fmt: skip
        out[:, j] = np.where(np.isnan(column), 0.0, column)
    return out


def _value_one(offer: Offer, env: RuleEnv) -> float:
    try:
        return float(offer.value.evaluate(env))
    except RuleError:
        return 0.0  # as online: a value that cannot be evaluated counts 0 (the decision notes why)


def context_weights(catalogue: Catalogue, context: Context) -> np.ndarray:
    """The context weight of each offer for the request's intent (1 where the intent names nothing)."""
    weights = catalogue.settings.context_weights.get(context.intent or "", {})
    return np.array([float(weights.get(o.group, weights.get("*", 1.0))) for o in plan_for(catalogue).offers])


def priorities(bulk: Bulk, value: np.ndarray, catalogue: Catalogue, context: Context, boost: np.ndarray) -> np.ndarray:
    """propensity x value x lever x context weight x boost, multiplied in `Candidate.priority`'s order."""
    levers = np.array([o.lever for o in plan_for(catalogue).offers], dtype=np.float64)
    return bulk.propensity * value * levers * context_weights(catalogue, context) * boost


def ranking(alive: np.ndarray, priority: np.ndarray, offer_order: np.ndarray) -> np.ndarray:
    """Per customer, the offer columns in arbitration order: alive first, priority descending, then offer id."""
    ids = np.broadcast_to(offer_order, alive.shape)
    return np.lexsort((ids, np.where(alive, -priority, 0.0), ~alive), axis=1)


@dataclass(frozen=True)
class Chooser:
    """Greedy or epsilon-greedy choice among one customer's ranked offers (as `arbitration._Chooser`)."""

    mode: str
    epsilon: float
    max_per_group: int | None
    groups: list[int]  # group index of each offer column

    def choose(self, order: list[int], top: int, decision_id: str) -> list[tuple[int, float]]:
        """[(offer column, selection probability)] for ranks 1..; `order`: the candidates, ranked."""
        rng = random.Random(_seed(decision_id)) if self.mode == "epsilon_greedy" else None
        feasible, used, picks = order, [0] * (max(self.groups, default=0) + 1), []
        while feasible and len(picks) < top:
            pick, p = self._pick(feasible, rng)
            picks.append((pick, p))
            group = self.groups[pick]
            used[group] += 1
            full = self.max_per_group is not None and used[group] >= self.max_per_group
            feasible = [j for j in feasible if j != pick and not (full and self.groups[j] == group)]
        return picks

    def _pick(self, feasible: list[int], rng: random.Random | None) -> tuple[int, float]:
        if rng is None:
            return feasible[0], 1.0
        eps, n = self.epsilon, len(feasible)
        explore = rng.random() < eps
        pick = feasible[rng.randrange(n)] if explore else feasible[0]
        return pick, (1.0 - eps) * (pick == feasible[0]) + eps / n


def chooser_for(catalogue: Catalogue, mode: str) -> Chooser:
    plan = plan_for(catalogue)
    names = sorted({o.group for o in plan.offers})
    groups = [names.index(o.group) for o in plan.offers]
    s = catalogue.settings
    return Chooser(mode, s.epsilon, s.max_per_group, groups)


def offer_order(catalogue: Catalogue) -> np.ndarray:
    """Each offer's position in offer-id order: the ranking's tie-break, as `arbitrate` sorts ids."""
    offers = plan_for(catalogue).offers
    ranks = {offer_id: r for r, offer_id in enumerate(sorted(o.id for o in offers))}
    return np.array([ranks[o.id] for o in offers], dtype=np.int64)


def decision(
    catalogue: Catalogue, decision_id: str, customer_id: str, context: Context, mode: str, model: str,
    picks: list[tuple[int, float]], arrays: Arrays, i: int, suppressions: tuple[Suppression, ...],
) -> Decision:  # fmt: skip
    """The `Decision` value `decide` would return for customer `i` (without explanations, notes and the
    feature snapshot, which the list does not carry)."""
    offers_of = plan_for(catalogue).offers
    p, v, b, q = arrays.propensity[i], arrays.value[i], arrays.boost[i], arrays.priority[i]
    offers = tuple(
        PresentedOffer(
            offers_of[j], offers_of[j].treatments[context.channel], rank, float(p[j]), float(v[j]),
            offers_of[j].lever, arrays.weight[j], float(b[j]), float(q[j]), probability,
        )
        for rank, (j, probability) in enumerate(picks, start=1)
    )  # fmt: skip
    alive = np.flatnonzero(arrays.alive[i])
    ids = [arrays.ids[j] for j in alive.tolist()]
    candidates = tuple(zip(ids, p[alive].tolist(), q[alive].tolist(), strict=True))
    direction = Direction.OUTBOUND if catalogue.is_outbound(context.channel) else Direction.INBOUND
    return Decision(
        decision_id, customer_id, context, offers, False, mode, catalogue.version, model, direction,
        suppressions, scored=candidates,
    )  # fmt: skip


@dataclass(frozen=True)
class Arrays:
    """The partition's arrays once the policies are applied: what each bulk decision reads its row of."""

    alive: np.ndarray
    propensity: np.ndarray
    value: np.ndarray
    boost: np.ndarray
    priority: np.ndarray
    weight: list[float]  # per offer
    ids: list[str]  # per offer
