"""Contact policies: should we make this offer, given what we already did?

A policy is (counted outcomes, level, channel scope, window, threshold, effect), optionally limited to a
segment and to some offers or groups. The exact semantics, pinned by tests/unit/test_contact_policy.py:

- **What is counted**: the customer's effective history (decisioning.summary.HistoryView): presentations
  released by `not_displayed` do not count; a contact unanswered after its response window counts as
  `ignored` at the moment the window closed.
- **The current decision does not count against itself**: "at most 3 presentations per 7 days" lets a
  customer with 2 earlier presentations see the offer a third time. It counts for every later decision from
  the moment it is made. Within one decision that presents several offers, a cap on presentations of a
  group or of all offers also limits how many offers this decision may add (`Headroom`).
- **Rolling windows include their boundary**: an event exactly 7 days old is inside "the last 7 days".
- **Calendar windows** start at local midnight (day), Monday midnight (week) or the 1st (month) in the
  catalogue's time zone, daylight-saving transitions included.
- **Effect**: without `suppress_days`, the scope is suppressed while the count in the window is at or above
  the threshold. With `suppress_days`, it is suppressed from the moment the threshold was reached (the time of
  the event that reached it) until that moment plus `suppress_days` (exclusive end).
- **Channel scope** is both what is counted and where the policy applies: a policy on [email, sms] counts
  outbound sends in those channels and suppresses decisions in those channels only. No scope: every channel,
  inbound and outbound together.
- **Which offers**: the policy's `offers`/`groups` when given, else every marketing offer.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from decisioning.bits import indices
from decisioning.catalogue import CalendarUnit, ContactPolicy, Level, Offer, Window, WindowKind
from decisioning.rules import RuleEnv, RuleError
from decisioning.summary import HistoryView, times_by_scope
from decisioning.types import DAY, Outcome

ALL = "*"  # the one scope of a policy at the level of all marketing offers
# Enum members read once: `Level.ALL` inside a function is a lookup through the enum's metaclass (~0.15 µs),
# and a decision's policies make dozens of them.
_LEVEL_ALL, _LEVEL_GROUP, _LEVEL_OFFER = Level.ALL, Level.GROUP, Level.OFFER
_PRESENTED = Outcome.PRESENTED
_ROLLING = WindowKind.ROLLING
_WEEK, _MONTH = CalendarUnit.WEEK, CalendarUnit.MONTH


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why a policy suppressed an offer: the rule, what it counted, and until when."""

    policy_id: str
    scope: str  # "offer:<id>", "group:<id>" or "all"
    count: int
    threshold: int
    outcomes: tuple[str, ...]
    window: str
    until: float | None  # None: while the window holds
    description: str = ""

    def reason(self) -> str:
        counted = "/".join(self.outcomes)
        until = "while the window holds" if self.until is None else f"until {_iso(self.until)}"
        return (
            f"contact policy '{self.policy_id}': {self.count} {counted} for {self.scope} in the "
            f"{self.window} (threshold {self.threshold}); suppressed {until}"
        )


class Headroom(NamedTuple):
    """How many more offers of `offer_ids` this decision may present before `policy_id`'s cap is hit.

    A named tuple: a decision makes several (a frozen dataclass costs ~1 µs more to build)."""

    policy_id: str
    offer_ids: frozenset[str]
    remaining: int


class PolicyOutcome(NamedTuple):
    suppressed: dict[str, Suppression]  # offer id -> the first policy that suppressed it
    headroom: tuple[Headroom, ...]
    errors: tuple[str, ...] = ()  # segment conditions that failed to evaluate (policy then applied)


@dataclass(frozen=True, eq=False)
class PolicyPlan:
    """Contact policies over a fixed list of offers, prepared once: offer i is bit i of an int, and each
    policy knows the bits of the offers it covers, overall and per group. A decision's policies then
    work on a few scopes and ints instead of lists of offers (`decisioning.plan` keeps one per catalogue).
    """

    policies: tuple[ContactPolicy, ...]
    offers: tuple[Offer, ...]
    index: dict[str, int]  # offer id -> bit
    covers: tuple[int, ...]  # per policy: the offers it covers (its offers / groups, else every marketing one)
    group_bits: tuple[dict[str, int], ...]  # per policy: group -> the covered offers of that group
    _ids: dict[int, frozenset[str]] = field(default_factory=dict, repr=False)

    def ids(self, bits: int) -> frozenset[str]:
        """The ids of the offers in `bits` (remembered: the same sets come back decision after decision)."""
        found = self._ids.get(bits)
        if found is None:
            if len(self._ids) >= _MAX_REMEMBERED_SETS:
                self._ids.clear()
            found = self._ids[bits] = frozenset(self.offers[i].id for i in indices(bits))
        return found


_MAX_REMEMBERED_SETS = 4096


def policy_plan(policies: Sequence[ContactPolicy], offers: Sequence[Offer]) -> PolicyPlan:
    """The `PolicyPlan` of `policies` over `offers` (the order of `offers` is the order of the bits)."""
    offers = tuple(offers)
    covers, group_bits = [], []
    for policy in policies:
        restricted = bool(policy.offers or policy.groups)
        bits, groups = 0, {}
        for i, o in enumerate(offers):
            if (o.id in policy.offers or o.group in policy.groups) if restricted else o.marketing:
                bits |= 1 << i
                groups[o.group] = groups.get(o.group, 0) | 1 << i
        covers.append(bits)
        group_bits.append(groups)
    index = {o.id: i for i, o in enumerate(offers)}
    return PolicyPlan(tuple(policies), offers, index, tuple(covers), tuple(group_bits))


def evaluate_policies(
    policies: Sequence[ContactPolicy],
    offers: Sequence[Offer],
    env: RuleEnv,
    view: HistoryView,
    timezone: str,
    service_offers: frozenset[str] = frozenset(),
) -> PolicyOutcome:
    """Apply every contact policy to the candidate `offers` of one decision.

    `service_offers` are the catalogue's non-marketing offers: global fatigue does not count them.

    >>> outcome = evaluate_policies(catalogue.policies, offers, env, view, "Europe/Amsterdam")  # doctest: +SKIP
    >>> outcome.suppressed["card_gold"].reason()  # doctest: +SKIP
    "contact policy 'offer_cap_7d': 3 presented for offer:card_gold in the last 7 days (threshold 3); ..."
    """
    plan = policy_plan(policies, offers)
    return evaluate_plan(plan, (1 << len(plan.offers)) - 1, env, view, timezone, service_offers)


def evaluate_plan(
    plan: PolicyPlan,
    alive: int,
    env: RuleEnv,
    view: HistoryView,
    timezone: str,
    service_offers: frozenset[str] = frozenset(),
) -> PolicyOutcome:
    """`evaluate_policies` for the offers `alive` (bits) of a prepared plan: what a decision calls."""
    suppressed: dict[str, Suppression] = {}
    headroom: list[Headroom] = []
    errors: list[str] = []
    for k, policy in enumerate(plan.policies):
        if not _applies(policy, env, errors):
            continue
        by_scope = _times_by_scope(policy, view, service_offers)
        if not by_scope and not _limits_this_decision(policy):
            continue  # nothing counted yet: nothing to suppress, no cap to share out
        targets = alive & plan.covers[k]
        if targets:
            _apply(plan, k, targets, by_scope, view.now, timezone, suppressed, headroom)
    return PolicyOutcome(suppressed, tuple(headroom), tuple(errors))


def _applies(policy: ContactPolicy, env: RuleEnv, errors: list[str]) -> bool:
    if policy.channels is not None and env.context.channel not in policy.channels:
        return False
    if policy.segment is None:
        return True
    try:
        return bool(policy.segment.evaluate(env))
    except RuleError as err:
        # A policy whose segment cannot be evaluated still protects the customer: apply it.
        errors.append(f"contact policy '{policy.id}': segment condition failed: {err.message}")
        return True


def _limits_this_decision(policy: ContactPolicy) -> bool:
    return _PRESENTED in policy.outcomes and policy.level is not _LEVEL_OFFER


def _apply(
    plan: PolicyPlan,
    k: int,
    targets: int,
    by_scope: dict[str, list[float]],
    now: float,
    timezone: str,
    suppressed: dict[str, Suppression],
    headroom: list[Headroom],
) -> None:
    policy = plan.policies[k]
    start = window_start(policy.window, now, timezone)  # the same for every scope of the policy
    limits = _limits_this_decision(policy)
    for scope, members in _scopes(plan, k, targets, by_scope, every=limits or policy.threshold < 1):
        times = by_scope.get(scope, ())
        # `times` is in time order: the count in [start, now] by bisection.
        now_count = bisect_right(times, now) - bisect_left(times, start)
        if policy.suppress_days is None:
            count, until = now_count, None
        else:
            count, until = _latest_trigger(policy, times, now, timezone)
        if count >= policy.threshold and (until is None or until > now):
            _suppress(plan, k, scope, count, until, members, targets, suppressed)
        elif limits:
            headroom.append(Headroom(policy.id, plan.ids(members), policy.threshold - now_count))


def _scopes(
    plan: PolicyPlan, k: int, targets: int, by_scope: dict[str, list[float]], *, every: bool = True
) -> list[tuple[str, int]]:
    """The scopes to check and the bits of their targets, in the order of their first target. At offer
    level, and when not `every` (the policy neither shares out a cap nor could fire on a count of 0),
    only the scopes with counted events: the rest count 0, which suppresses nothing."""
    level = plan.policies[k].level
    if level is _LEVEL_ALL:
        return [(ALL, targets)]
    if level is _LEVEL_OFFER:
        index = plan.index
        bits = 0
        for offer_id in by_scope:
            i = index.get(offer_id)
            if i is not None:
                bits |= 1 << i
        return [(plan.offers[i].id, 1 << i) for i in indices(bits & targets)]
    scopes = []
    for group, group_bits in plan.group_bits[k].items():
        members = targets & group_bits
        if members and (every or group in by_scope):
            scopes.append((group, members))
    if len(scopes) > 1:
        scopes.sort(key=_lowest_bit)
    return scopes


def _lowest_bit(scope: tuple[str, int]) -> int:
    return scope[1] & -scope[1]


def _scope_label(level: Level, key: str) -> str:
    return "all" if level is _LEVEL_ALL else f"{level.value}:{key}"


def _times_by_scope(
    policy: ContactPolicy, view: HistoryView, service_offers: frozenset[str]
) -> dict[str, list[float]]:
    """One pass over the history: matching event times per scope (offer id, group or ALL), oldest first.
    Read only: a policy on every offer shares the view's index with the rules and policies that count
    the same outcomes in the same channels."""
    offers, groups = policy.offers, policy.groups
    if policy.level is not _LEVEL_ALL and not (offers or groups):
        return view.times_by_scope(policy.outcomes, policy.channels, policy.level is _LEVEL_OFFER)
    found = view.matching(policy.outcomes, channels=policy.channels)
    if not found:
        return {}
    # Which happenings count (written out per case: this runs for every policy of every decision).
    if offers or groups:
        found = [h for h in found if h.offer_id in offers or h.group in groups]
    elif policy.level is _LEVEL_ALL:
        # Global fatigue counts marketing contacts only; the history may name offers the catalogue no
        # longer has, and those were marketing offers when they were made.
        found = [h for h in found if h.offer_id not in service_offers]
    if policy.level is _LEVEL_ALL:
        return {ALL: [h.at for h in found]} if found else {}
    return times_by_scope(found, policy.level is _LEVEL_OFFER)


def _latest_trigger(
    policy: ContactPolicy, times: Sequence[float], now: float, timezone: str
) -> tuple[int, float | None]:
    """The most recent moment the threshold was reached within one window, and when its effect ends."""
    duration = (policy.suppress_days or 0.0) * DAY
    k = policy.threshold
    for i in range(len(times) - 1, k - 2, -1):
        t = times[i]
        if t + duration <= now:
            break  # older triggers ended earlier still
        start = window_start(policy.window, t, timezone)
        if times[i - k + 1] >= start:
            return sum(1 for x in times[: i + 1] if x >= start), t + duration
    return 0, None


def _suppress(
    plan: PolicyPlan,
    k: int,
    scope: str,
    count: int,
    until: float | None,
    members: int,
    targets: int,
    suppressed: dict[str, Suppression],
) -> None:
    policy = plan.policies[k]
    hit = Suppression(
        policy.id,
        _scope_label(policy.level, scope),
        count,
        policy.threshold,
        tuple(sorted(policy.outcomes)),
        policy.window.describe(),
        until,
        policy.description,
    )
    for i in indices(_suppressed_offers(plan, k, members, targets)):
        suppressed.setdefault(plan.offers[i].id, hit)


def _suppressed_offers(plan: PolicyPlan, k: int, members: int, targets: int) -> int:
    suppress = plan.policies[k].suppress
    if suppress is _LEVEL_ALL:
        return targets
    if suppress is _LEVEL_GROUP:
        groups = plan.group_bits[k]
        bits = 0
        for i in indices(members):
            bits |= groups[plan.offers[i].group]
        return bits & targets
    return members


def window_start(window: Window, now: float, timezone: str) -> float:
    """The earliest event time inside `window` at `now` (inclusive).

    >>> window_start(Window(seconds=7 * DAY), 10 * DAY, "UTC") / DAY
    3.0
    """
    if window.kind is _ROLLING:
        return now - (window.seconds or 0.0)
    # A calendar window starts at the same moment until its next start: the bounds are kept, and a decision
    # inside them skips the time-zone conversions (~4 µs each, on every decision for a daily cap).
    key = (window.unit, timezone)
    known = _CALENDAR_BOUNDS.get(key)
    if known is not None and known[0] <= now < known[1]:
        return known[0]
    bounds = _CALENDAR_BOUNDS[key] = _calendar_bounds(window.unit, now, _zone(timezone))
    return bounds[0]


_CALENDAR_BOUNDS: dict[tuple[CalendarUnit | None, str], tuple[float, float]] = {}


def _calendar_bounds(unit: CalendarUnit | None, now: float, zone: ZoneInfo) -> tuple[float, float]:
    """The start of the calendar day, week or month holding `now` and the start of the next one."""
    local = datetime.fromtimestamp(now, zone)
    first = local.date()
    if unit is _WEEK:
        first -= timedelta(days=first.weekday())
        following = first + timedelta(days=7)
    elif unit is _MONTH:
        first = first.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    else:
        following = first + timedelta(days=1)
    # Rebuilt from the wall clock so that the zone's offset on that day (not today's) is used.
    start = datetime(first.year, first.month, first.day, tzinfo=zone).timestamp()
    end = datetime(following.year, following.month, following.day, tzinfo=zone).timestamp()
    return start, end


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, _zone("UTC")).isoformat(timespec="seconds")
