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
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from decisioning.catalogue import CalendarUnit, ContactPolicy, Level, Offer, Window, WindowKind
from decisioning.rules import RuleEnv, RuleError
from decisioning.summary import HistoryView
from decisioning.types import DAY, Outcome

ALL = "*"  # the one scope of a policy at the level of all marketing offers


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


@dataclass(frozen=True, slots=True)
class Headroom:
    """How many more offers of `offer_ids` this decision may present before `policy_id`'s cap is hit."""

    policy_id: str
    offer_ids: frozenset[str]
    remaining: int


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    suppressed: dict[str, Suppression]  # offer id -> the first policy that suppressed it
    headroom: tuple[Headroom, ...]
    errors: tuple[str, ...] = ()  # segment conditions that failed to evaluate (policy then applied)


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
    suppressed: dict[str, Suppression] = {}
    headroom: list[Headroom] = []
    errors: list[str] = []
    marketing = [o for o in offers if o.marketing]
    for policy in policies:
        if not _applies(policy, env, errors):
            continue
        by_scope = _times_by_scope(policy, view, service_offers)
        if not by_scope and not _limits_this_decision(policy):
            continue  # nothing counted yet: nothing to suppress, no cap to share out
        targets = _targets(policy, offers) if policy.offers or policy.groups else marketing
        if targets:
            _apply(policy, targets, by_scope, view.now, timezone, suppressed, headroom)
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


def _targets(policy: ContactPolicy, offers: Sequence[Offer]) -> list[Offer]:
    """The offers a policy restricted to some offers or groups covers."""
    return [o for o in offers if o.id in policy.offers or o.group in policy.groups]


def _limits_this_decision(policy: ContactPolicy) -> bool:
    return Outcome.PRESENTED in policy.outcomes and policy.level is not Level.OFFER


def _apply(
    policy: ContactPolicy,
    targets: list[Offer],
    by_scope: dict[str, list[float]],
    now: float,
    timezone: str,
    suppressed: dict[str, Suppression],
    headroom: list[Headroom],
) -> None:
    start = window_start(policy.window, now, timezone)  # the same for every scope of the policy
    limits = _limits_this_decision(policy)
    for scope, members in _scopes(policy.level, targets, by_scope, every=limits or policy.threshold < 1).items():
        times = by_scope.get(scope, ())
        # `times` is in time order: the count in [start, now] by bisection.
        now_count = bisect_right(times, now) - bisect_left(times, start)
        if policy.suppress_days is None:
            count, until = now_count, None
        else:
            count, until = _latest_trigger(policy, times, now, timezone)
        if count >= policy.threshold and (until is None or until > now):
            _suppress(policy, scope, count, until, members, targets, suppressed)
        elif limits:
            headroom.append(Headroom(policy.id, frozenset(o.id for o in members), policy.threshold - now_count))


def _scopes(
    level: Level, targets: list[Offer], by_scope: dict[str, list[float]], *, every: bool = True
) -> dict[str, list[Offer]]:
    """The scopes to check, in the order of the targets. At offer level, and when not `every` (the policy
    neither shares out a cap nor could fire on a count of 0), only the scopes with counted events: the
    rest count 0, which suppresses nothing."""
    if level is Level.OFFER:
        return {o.id: [o] for o in targets if o.id in by_scope}
    if level is Level.ALL:
        return {ALL: targets}
    scopes: dict[str, list[Offer]] = {}
    for offer in targets:
        group = offer.group
        if every or group in by_scope:
            members = scopes.get(group)
            if members is None:
                scopes[group] = [offer]
            else:
                members.append(offer)
    return scopes


def _scope_label(level: Level, key: str) -> str:
    return "all" if level is Level.ALL else f"{level.value}:{key}"


def _times_by_scope(
    policy: ContactPolicy, view: HistoryView, service_offers: frozenset[str]
) -> dict[str, list[float]]:
    """One pass over the history: matching event times per scope (offer id, group or ALL), oldest first."""
    found = view.matching(policy.outcomes, channels=policy.channels)
    if not found:
        return {}
    # Which happenings count (written out per case: this runs for every policy of every decision).
    offers, groups = policy.offers, policy.groups
    if offers or groups:
        found = [h for h in found if h.offer_id in offers or h.group in groups]
    elif policy.level is Level.ALL:
        # Global fatigue counts marketing contacts only; the history may name offers the catalogue no
        # longer has, and those were marketing offers when they were made.
        found = [h for h in found if h.offer_id not in service_offers]
    if policy.level is Level.ALL:
        return {ALL: [h.at for h in found]} if found else {}
    out: dict[str, list[float]] = {}
    by_offer = policy.level is Level.OFFER
    for h in found:
        scope = h.offer_id if by_offer else h.group
        times = out.get(scope)
        if times is None:
            out[scope] = [h.at]
        else:
            times.append(h.at)
    return out


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
    policy: ContactPolicy,
    scope: str,
    count: int,
    until: float | None,
    members: list[Offer],
    targets: list[Offer],
    suppressed: dict[str, Suppression],
) -> None:
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
    for offer in _suppressed_offers(policy.suppress, members, targets):
        suppressed.setdefault(offer.id, hit)


def _suppressed_offers(suppress: Level, members: list[Offer], targets: list[Offer]) -> list[Offer]:
    if suppress is Level.ALL:
        return targets
    if suppress is Level.GROUP:
        groups = {o.group for o in members}
        return [o for o in targets if o.group in groups]
    return members


def window_start(window: Window, now: float, timezone: str) -> float:
    """The earliest event time inside `window` at `now` (inclusive).

    >>> window_start(Window(seconds=7 * DAY), 10 * DAY, "UTC") / DAY
    3.0
    """
    if window.kind is WindowKind.ROLLING:
        return now - (window.seconds or 0.0)
    local = datetime.fromtimestamp(now, _zone(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if window.unit is CalendarUnit.WEEK:
        midnight = midnight - timedelta(days=midnight.weekday())
    elif window.unit is CalendarUnit.MONTH:
        midnight = midnight.replace(day=1)
    # Rebuild from the wall clock so that the zone's offset on that day (not today's) is used.
    return datetime(midnight.year, midnight.month, midnight.day, tzinfo=_zone(timezone)).timestamp()


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, _zone("UTC")).isoformat(timespec="seconds")
