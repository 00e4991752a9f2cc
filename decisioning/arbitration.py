"""Arbitration: rank the surviving candidates and choose the offers to present.

priority = propensity x value x lever x context weight x consistency boost. Ties are broken by offer id, so
the same inputs always give the same ranking. Constraints: top N, at most `max_per_group` offers of one
group, and the contact-policy headroom of this decision.

Every chosen offer carries `selection_probability`: the probability that the arbitration policy picked it
at its rank, given the offers ranked above it (the product over ranks is the probability of the whole
list). Greedy choices have probability 1; exploration and the control group make it smaller, which is what
inverse-propensity estimates of a new policy need.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from decisioning.catalogue import ArbitrationSettings, ControlMode, ExplorationKind, Offer
from decisioning.contact_policy import Headroom

THOMPSON_DRAWS = 256
# Enum members read once (a lookup through the enum's metaclass costs ~0.15 µs inside a function).
_CONTROL_NONE = ControlMode.NONE
_EPSILON, _THOMPSON = ExplorationKind.EPSILON, ExplorationKind.THOMPSON


class Candidate(NamedTuple):
    """An offer that survived the rules and contact policies, with the factors of its priority.

    A named tuple, not a frozen dataclass: every decision builds one per surviving offer (~0.3 µs
    instead of ~2.5 µs each)."""

    offer: Offer
    propensity: float
    value: float
    lever: float
    context_weight: float
    boost: float = 1.0
    pinned: bool = False
    # alpha + beta of the Beta posterior behind `propensity` when it is a posterior (cold start), None when
    # a model scored it: Thompson sampling then draws from that posterior itself, not around the estimate.
    concentration: float | None = None

    @property
    def priority(self) -> float:
        return self.propensity * self.value * self.lever * self.context_weight * self.boost


class Selection(NamedTuple):
    candidate: Candidate
    rank: int
    selection_probability: float


class ArbitrationResult(NamedTuple):
    selected: tuple[Selection, ...]
    passed_over: dict[str, str]  # offer id -> why it was not chosen
    mode: str  # "greedy", "epsilon_greedy", "thompson", "control" or "control_none"


def in_control_group(customer_id: str, settings: ArbitrationSettings, now: float) -> bool:
    """A stable hash of (salt, period, customer id) below the configured share; never random per request.

    >>> in_control_group("c-1", ArbitrationSettings(control_share=0.0), 0.0)
    False
    """
    if settings.control_share <= 0:
        return False
    key = f"{settings.control_salt}|{_period(settings, now)}|{customer_id}".encode()
    bucket = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64
    return bucket < settings.control_share


def _period(settings: ArbitrationSettings, now: float) -> str:
    if settings.control_period == "fixed":
        return ""
    key = (settings.timezone, settings.control_period)
    known = _PERIODS.get(key)
    if known is not None and known[0] <= now < known[1]:
        return known[2]
    zone = ZoneInfo(settings.timezone)
    local = datetime.fromtimestamp(now, zone)
    if settings.control_period == "quarter":
        first_month = (local.month - 1) // 3 * 3 + 1
        label, months = f"{local.year}-Q{(local.month - 1) // 3 + 1}", 3
    else:
        first_month, label, months = local.month, f"{local.year}-{local.month:02d}", 1
    # The period's bounds in UTC, from the local wall clock, so that the next decision in the same
    # period skips the time-zone conversion (~10 µs): the label only changes at a bound.
    start = datetime(local.year, first_month, 1, tzinfo=zone).timestamp()
    year, month = divmod(first_month - 1 + months, 12)
    end = datetime(local.year + year, month + 1, 1, tzinfo=zone).timestamp()
    _PERIODS[key] = (start, end, label)
    return label


_PERIODS: dict[tuple[str, str], tuple[float, float, str]] = {}


def arbitrate(
    candidates: Sequence[Candidate],
    max_offers: int,
    settings: ArbitrationSettings,
    *,
    control: bool = False,
    headroom: Sequence[Headroom] = (),
    seed: int = 0,
    explain: bool = True,
) -> ArbitrationResult:
    """Choose up to `max_offers` candidates.

    >>> arbitrate([Candidate(offer, 0.1, 100.0, 1.0, 1.0)], 1, ArbitrationSettings()).selected[0].rank  # doctest: +SKIP
    1
    """
    ordered = sorted(candidates, key=_rank)
    if control and settings.control_mode is _CONTROL_NONE:
        return ArbitrationResult(
            (), {c.offer.id: "control group: no marketing offer" for c in ordered}, "control_none"
        )
    chooser = _Chooser(ordered, settings, control, seed)
    slots = _Slots(settings.max_per_group, headroom, max_offers)
    selected: list[Selection] = []
    # A candidate that does not fit now never fits later (slots only fill up), and a chosen one is gone:
    # each rank filters what was feasible at the rank before, not every candidate again.
    # Taking an offer fills only its group and its caps: when neither is full after it, every other
    # candidate that fitted still fits, and only the pick leaves the list.
    feasible = [c for c in ordered if slots.fits(c)] if slots.binding_at_start else list(ordered)
    while feasible and len(selected) < max_offers:
        pick, probability = chooser.choose(feasible)
        slots.take(pick)
        selected.append(Selection(pick, len(selected) + 1, probability))
        if len(selected) < max_offers:
            if slots.full_after(pick):
                feasible = [c for c in feasible if c is not pick and slots.fits(c)]
            else:
                feasible = [c for c in feasible if c is not pick]
    passed_over = _passed_over(ordered, chooser.taken, slots, max_offers) if explain else {}
    return ArbitrationResult(tuple(selected), passed_over, chooser.mode)


def _rank(c: Candidate) -> tuple[bool, float, str]:
    """Pinned offers first, then by priority, ties by offer id: the same inputs, the same ranking."""
    # The priority written out, not read through the property: this runs for every candidate.
    offer, propensity, value, lever, weight, boost, pinned, _ = c
    return (not pinned, -(propensity * value * lever * weight * boost), offer.id)


def choice_probabilities(
    candidates: Sequence[Candidate],
    path: Sequence[str],
    settings: ArbitrationSettings,
    *,
    control: bool = False,
    headroom: Sequence[Headroom] = (),
    seed: int = 0,
) -> list[dict[str, float]]:
    """For each rank k of `path` (offer ids, e.g. a logged decision's), the probability with which this
    arbitration would choose each candidate at rank k when ranks 1..k-1 hold path[:k-1]: the distribution
    behind `Selection.selection_probability`, computed instead of drawn. A rank whose prefix this
    arbitration cannot produce (an offer of the path not feasible here) gets an empty distribution, and so
    does every rank of a control group shown nothing.

    >>> choice_probabilities([Candidate(offer, 0.1, 100.0, 1.0, 1.0)], ["o"], ArbitrationSettings())  # doctest: +SKIP
    [{'o': 1.0}]
    """
    ordered = sorted(candidates, key=_rank)
    if control and settings.control_mode is ControlMode.NONE:
        return [{} for _ in path]
    chooser = _Chooser(ordered, settings, control, seed)
    slots = _Slots(settings.max_per_group, headroom, len(path))
    by_id = {c.offer.id: c for c in ordered}
    out: list[dict[str, float]] = []
    for offer_id in path:
        feasible = [c for c in ordered if c.offer.id not in chooser.taken and slots.fits(c)]
        out.append(chooser.distribution(feasible) if feasible else {})
        logged = by_id.get(offer_id)
        if logged is None or offer_id not in out[-1] or out[-1][offer_id] == 0.0:
            return out + [{} for _ in range(len(path) - len(out))]
        chooser.taken.add(offer_id)
        slots.take(logged)
    return out


class _Slots:
    """The constraints that limit which candidates still fit this decision."""

    def __init__(self, max_per_group: int | None, headroom: Sequence[Headroom], max_offers: int) -> None:
        self.max_per_group = max_per_group
        # A cap with room for every offer this decision may present cannot bind: leave it out.
        self.by_offer: dict[str, list[Headroom]] = {}
        for h in headroom:
            if h.remaining < max_offers:
                for offer_id in h.offer_ids:
                    self.by_offer.setdefault(offer_id, []).append(h)
        self.groups: Counter[str] = Counter()
        self.used: Counter[str] = Counter()
        # Whether a candidate can fail to fit before anything is taken: a group cap of 0, or a
        # contact-policy cap with no room left.
        self.binding_at_start = (max_per_group is not None and max_per_group <= 0) or any(
            h.remaining <= 0 for caps in self.by_offer.values() for h in caps
        )

    def full_after(self, c: Candidate) -> bool:
        """Whether taking `c` filled its group or one of its caps (then others may no longer fit)."""
        if self.max_per_group is not None and self.groups[c.offer.group] >= self.max_per_group:
            return True
        used = self.used
        return any(used[h.policy_id] >= h.remaining for h in self.by_offer.get(c.offer.id, ()))

    def fits(self, c: Candidate) -> bool:
        """`why_not(c) is None`, without building the reason (the arbitration asks this of every candidate)."""
        offer = c.offer
        if self.max_per_group is not None and self.groups[offer.group] >= self.max_per_group:
            return False
        caps = self.by_offer.get(offer.id)
        if caps:
            used = self.used
            for h in caps:
                if used[h.policy_id] >= h.remaining:
                    return False
        return True

    def why_not(self, c: Candidate) -> str | None:
        group = c.offer.group
        if self.max_per_group is not None and self.groups[group] >= self.max_per_group:
            return f"group '{group}' already has {self.groups[group]} offer(s) in this decision"
        for h in self.by_offer.get(c.offer.id, ()):
            if self.used[h.policy_id] >= h.remaining:
                return f"contact policy '{h.policy_id}' allows {max(h.remaining, 0)} more in this decision"
        return None

    def take(self, c: Candidate) -> None:
        self.groups[c.offer.group] += 1
        for h in self.by_offer.get(c.offer.id, ()):
            self.used[h.policy_id] += 1


class _Chooser:
    """Greedy, epsilon-greedy, Thompson sampling or the control group's uniform choice."""

    def __init__(self, ordered: list[Candidate], settings: ArbitrationSettings, control: bool, seed: int) -> None:
        self.settings = settings
        self.seed = seed
        self.taken: set[str] = set()
        self.mode = "control" if control else _mode(settings)
        if self.mode == "thompson":
            self.samples = _thompson_samples(ordered, settings.thompson_strength, np.random.default_rng(seed))

    @cached_property
    def rng(self) -> random.Random:
        # Python's generator for the cheap draws (a numpy Generator costs ~20 µs to create per decision),
        # made only when a draw is needed (greedy decisions draw nothing).
        return random.Random(self.seed)

    def choose(self, feasible: list[Candidate]) -> tuple[Candidate, float]:
        # `feasible` keeps the ranking's order, where pinned offers come first: the first one tells.
        pinned = feasible[0].pinned
        if self.mode == "control":
            pick, p = feasible[self.rng.randrange(len(feasible))], 1.0 / len(feasible)
        elif pinned:
            pick, p = feasible[0], 1.0  # consistency: what the customer saw elsewhere keeps its place
        elif self.mode == "epsilon_greedy":
            pick, p = self._epsilon(feasible)
        elif self.mode == "thompson":
            pick, p = self._thompson(feasible)
        else:
            pick, p = feasible[0], 1.0
        self.taken.add(pick.offer.id)
        return pick, p

    def distribution(self, feasible: list[Candidate]) -> dict[str, float]:
        """The probability of each feasible candidate being chosen now (what `choose` draws from)."""
        pinned = [c for c in feasible if c.pinned]
        if self.mode == "control":
            return {c.offer.id: 1.0 / len(feasible) for c in feasible}
        if pinned:
            return {pinned[0].offer.id: 1.0}
        if self.mode == "epsilon_greedy":
            eps, n = self.settings.epsilon, len(feasible)
            return {c.offer.id: (1.0 - eps) * (i == 0) + eps / n for i, c in enumerate(feasible)}
        if self.mode == "thompson":
            draws = np.stack([self.samples[c.offer.id] for c in feasible], axis=1)
            shares = np.bincount(np.argmax(draws, axis=1), minlength=len(feasible)) / len(draws)
            return {c.offer.id: float(s) for c, s in zip(feasible, shares, strict=True)}
        return {feasible[0].offer.id: 1.0}

    def _epsilon(self, feasible: list[Candidate]) -> tuple[Candidate, float]:
        eps, n = self.settings.epsilon, len(feasible)
        explore = self.rng.random() < eps
        pick = feasible[self.rng.randrange(n)] if explore else feasible[0]
        return pick, (1.0 - eps) * (pick is feasible[0]) + eps / n

    def _thompson(self, feasible: list[Candidate]) -> tuple[Candidate, float]:
        # The estimator of the selection probability: the share of THOMPSON_DRAWS joint draws (seeded by
        # the decision id) in which the chosen offer has the highest sampled priority among the offers
        # still feasible at this rank. The first draw is the one acted on and counts too, so the estimate
        # is never 0 for an offer that was chosen: it lies in [1/THOMPSON_DRAWS, 1], standard error
        # at most 0.5/sqrt(THOMPSON_DRAWS) (~0.03).
        ids = [c.offer.id for c in feasible]
        draws = np.stack([self.samples[i] for i in ids], axis=1)  # (draws, feasible)
        winners = np.argmax(draws, axis=1)
        pick = int(winners[0])  # the first draw decides; all draws estimate the probability
        return feasible[pick], float(np.mean(winners == pick))


def _mode(settings: ArbitrationSettings) -> str:
    if settings.exploration is _EPSILON and settings.epsilon > 0:
        return "epsilon_greedy"
    return "thompson" if settings.exploration is _THOMPSON else "greedy"


def _thompson_samples(
    ordered: list[Candidate], strength: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Sampled priorities: propensity drawn from a Beta, times the rest.

    A model's estimate gets a Beta around it worth `strength` pseudo-observations; a posterior estimate
    (`concentration` set) is drawn from that posterior, Beta(p x n, (1 - p) x n) with n = alpha + beta.
    """
    p = np.clip(np.array([c.propensity for c in ordered], dtype=float), 1e-6, 1 - 1e-6)
    rest = np.array([c.priority / c.propensity if c.propensity > 0 else 0.0 for c in ordered])
    posterior = np.array([c.concentration is not None for c in ordered], dtype=bool)
    n = np.array([c.concentration or 0.0 for c in ordered], dtype=float)
    alpha = np.where(posterior, p * n, p * strength + 1.0)
    beta = np.where(posterior, (1.0 - p) * n, (1.0 - p) * strength + 1.0)
    draws = rng.beta(alpha, beta, size=(THOMPSON_DRAWS, len(ordered)))
    sampled = draws * rest
    return {c.offer.id: sampled[:, i] for i, c in enumerate(ordered)}


def _passed_over(ordered: list[Candidate], taken: set[str], slots: _Slots, n: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for rank, c in enumerate(ordered, start=1):
        if c.offer.id in taken:
            continue
        why = slots.why_not(c)
        out[c.offer.id] = why or f"ranked {rank} of {len(ordered)} by priority; {n} offer(s) asked"
    return out
