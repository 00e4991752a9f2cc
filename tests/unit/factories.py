"""Small builders for core objects, so that each test says only what matters to it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from decisioning.catalogue import (
    ArbitrationSettings,
    Budget,
    CalendarUnit,
    Catalogue,
    ContactPolicy,
    Level,
    Offer,
    OfferGroup,
    Rule,
    RuleClass,
    Treatment,
    Window,
    WindowKind,
)
from decisioning.rules import compile_rule
from decisioning.types import DAY, ContactEvent, Context, CustomerFeatures, FeatureValue, Outcome

CHANNELS = ("web", "mobile", "call_centre", "email", "sms")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def at(text: str, tz: str = "UTC") -> float:
    """Epoch seconds of an ISO local time in `tz`: at("2026-03-29 01:30", "Europe/Amsterdam")."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def rule(name: str, text: str, rule_class: RuleClass = RuleClass.ELIGIBILITY, owner: str = "offer:x") -> Rule:
    return Rule(name, rule_class, compile_rule(text), owner)


def offer(
    offer_id: str,
    group: str = "cards",
    *,
    channels: Iterable[str] = CHANNELS,
    rules: Sequence[Rule] = (),
    value: str | float = 100.0,
    lever: float = 1.0,
    prior: float = 0.05,
    marketing: bool = True,
    budget: Budget | None = None,
    response_window_days: float | None = None,
    start: float | None = None,
    end: float | None = None,
) -> Offer:
    treatments = {c: Treatment(c, f"{offer_id} on {c}") for c in channels}
    return Offer(
        id=offer_id,
        name=offer_id.replace("_", " ").title(),
        group=group,
        product=offer_id,
        treatments=treatments,
        rules=tuple(rules),
        value=compile_rule(str(value), kind="number"),
        lever=lever,
        prior=prior,
        marketing=marketing,
        budget=budget,
        response_window_days=response_window_days,
        start=start,
        end=end,
    )


def policy(
    policy_id: str,
    outcomes: Iterable[str],
    level: Level = Level.OFFER,
    *,
    days: float | None = None,
    hours: float | None = None,
    calendar: CalendarUnit | None = None,
    threshold: int = 1,
    suppress: Level | None = None,
    suppress_days: float | None = None,
    channels: Iterable[str] | None = None,
    segment: str | None = None,
    offers: Iterable[str] = (),
    groups: Iterable[str] = (),
) -> ContactPolicy:
    if calendar is not None:
        window = Window(WindowKind.CALENDAR, unit=calendar)
    else:
        window = Window(WindowKind.ROLLING, seconds=(days or 0) * DAY + (hours or 0) * 3600)
    return ContactPolicy(
        id=policy_id,
        outcomes=frozenset(Outcome(o) for o in outcomes),
        level=level,
        window=window,
        threshold=threshold,
        suppress=suppress or level,
        suppress_days=suppress_days,
        channels=None if channels is None else frozenset(channels),
        segment=None if segment is None else compile_rule(segment),
        offers=frozenset(offers),
        groups=frozenset(groups),
    )


def catalogue(
    offers: Sequence[Offer],
    policies: Sequence[ContactPolicy] = (),
    settings: ArbitrationSettings | None = None,
    groups: Mapping[str, OfferGroup] | None = None,
    outbound: Mapping[str, float] | None = None,
) -> Catalogue:
    """A catalogue of `offers`; `outbound` maps outbound channels to their confirmation period (seconds)."""
    groups = groups or {o.group: OfferGroup(o.group, o.group.title()) for o in offers}
    return Catalogue(
        version="test",
        channels=CHANNELS,
        groups=groups,
        offers=tuple(offers),
        policies=tuple(policies),
        settings=settings or ArbitrationSettings(consistency_boost=1.0),
        outbound=dict(outbound or {}),
    )


def customer(customer_id: str = "c-1", **values: FeatureValue) -> CustomerFeatures:
    return CustomerFeatures(customer_id, values)


def context(channel: str = "web", now: float = NOW, **kw: object) -> Context:
    return Context(channel=channel, now=now, **kw)  # type: ignore[arg-type]


def event(
    days_ago: float,
    offer_id: str,
    outcome: str = "presented",
    *,
    group: str = "cards",
    channel: str = "web",
    decision_id: str | None = None,
    now: float = NOW,
) -> ContactEvent:
    return ContactEvent(now - days_ago * DAY, offer_id, group, channel, Outcome(outcome), decision_id)


class FixedScorer:
    """A scorer with a propensity per offer id (default for unknown ids): the core's Scorer port."""

    version = "fixed-1"

    def __init__(self, propensities: Mapping[str, float] | None = None, default: float = 0.1) -> None:
        self.propensities = dict(propensities or {})
        self.default = default

    def score(self, customer: CustomerFeatures, context: Context, offers: Sequence[Offer]) -> np.ndarray:
        return np.array([self.propensities.get(o.id, self.default) for o in offers], dtype=float)

    def for_customer(self, customer_id: str) -> FixedScorer:
        return self


def with_settings(cat: Catalogue, **changes: object) -> Catalogue:
    settings = replace(cat.settings, **changes)  # type: ignore[arg-type]
    return catalogue(cat.offers, cat.policies, settings, cat.groups, cat.outbound)
