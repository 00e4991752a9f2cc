"""The compiled offer catalogue: offers, groups, rules, contact policies and arbitration settings.

These are the core's view of the catalogue. `policies/` holds the YAML, its pydantic schema and the loader
that validates the files and compiles them into these frozen dataclasses (rules already compiled).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from decisioning.rules import CompiledRule
from decisioning.triggers import Trigger
from decisioning.types import FeatureValue, Outcome


class RuleClass(StrEnum):
    """The three named classes of offer rules (DESIGN.md)."""

    ELIGIBILITY = "eligibility"  # the customer qualifies at all
    APPLICABILITY = "applicability"  # the offer is relevant now
    SUITABILITY = "suitability"  # the offer is appropriate for this customer, now


class FeatureType(StrEnum):
    NUMBER = "number"
    BOOL = "bool"
    CATEGORY = "category"


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One declared customer feature: what loading validates and what rules are checked against."""

    name: str
    type: FeatureType
    default: FeatureValue
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    max_age_days: float | None = None
    description: str = ""
    source: str = "batch"  # "batch" (loaded overnight) or "event" (written by customer events)


@dataclass(frozen=True, slots=True)
class Rule:
    """A named rule of one class, declared on an offer group or an offer (`owner` says which)."""

    name: str
    rule_class: RuleClass
    compiled: CompiledRule
    owner: str  # "group:cards" or "offer:card_gold"

    @property
    def text(self) -> str:
        return self.compiled.text


@dataclass(frozen=True, slots=True)
class Treatment:
    """The creative of an offer in one channel."""

    channel: str
    title: str
    text: str = ""
    image_url: str | None = None
    url: str | None = None
    script: str | None = None  # what a call-centre agent reads out


class BudgetPeriod(StrEnum):
    DAY = "day"
    CAMPAIGN = "campaign"


@dataclass(frozen=True, slots=True)
class Budget:
    """At most `limit` presentations of the offer per day (in the catalogue's time zone) or per campaign,
    shared by all replicas and reserved at decision time."""

    limit: int
    period: BudgetPeriod = BudgetPeriod.DAY


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    name: str
    group: str
    product: str
    treatments: Mapping[str, Treatment]
    rules: tuple[Rule, ...]  # the group's rules first, then the offer's; all must hold (AND)
    value: CompiledRule  # a number expression (a constant is an expression too)
    lever: float = 1.0  # business lever: offer weight x group weight
    prior: float = 0.05  # prior response probability, used when the model has no data for the offer
    start: float | None = None  # active from (epoch seconds, inclusive)
    end: float | None = None  # active until (epoch seconds, exclusive)
    tags: tuple[str, ...] = ()
    budget: Budget | None = None
    response_window_days: float | None = None
    marketing: bool = True  # counts toward and is limited by "all marketing" policies

    def is_active(self, now: float) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)


@dataclass(frozen=True, slots=True)
class OfferGroup:
    id: str
    name: str
    lever: float = 1.0
    rules: tuple[Rule, ...] = ()


class Level(StrEnum):
    OFFER = "offer"
    GROUP = "group"
    ALL = "all"  # all marketing offers of the customer (global fatigue)


class WindowKind(StrEnum):
    ROLLING = "rolling"
    CALENDAR = "calendar"


class CalendarUnit(StrEnum):
    DAY = "day"
    WEEK = "week"  # weeks start on Monday
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Window:
    """Rolling (the last `seconds`, boundary inclusive) or calendar (since the start of the current
    day / week / month in the catalogue's time zone)."""

    kind: WindowKind = WindowKind.ROLLING
    seconds: float | None = None
    unit: CalendarUnit | None = None

    def describe(self) -> str:
        if self.kind is WindowKind.CALENDAR:
            return f"this {self.unit}"
        days = (self.seconds or 0) / 86_400
        return f"last {days:g} days" if days >= 1 else f"last {(self.seconds or 0) / 3600:g} hours"


@dataclass(frozen=True, slots=True)
class ContactPolicy:
    """(counted outcomes, level, channel scope, window, threshold, effect), optionally for a segment.

    When the count of `outcomes` at `level`, in `channels` (None: all), within `window` reaches
    `threshold`, the `suppress` scope (default: the level's own) is suppressed for `suppress_days`
    from the moment the threshold was reached, or, when `suppress_days` is None, while the window holds.
    `offers` / `groups` restrict the policy to some offers or groups (empty: every marketing offer).
    """

    id: str
    outcomes: frozenset[Outcome]
    level: Level
    window: Window
    threshold: int
    suppress: Level
    suppress_days: float | None = None
    channels: frozenset[str] | None = None
    segment: CompiledRule | None = None
    offers: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    description: str = ""


class ExplorationKind(StrEnum):
    NONE = "none"
    EPSILON = "epsilon_greedy"
    THOMPSON = "thompson"


class ConsistencyMode(StrEnum):
    OFF = "off"
    BOOST = "boost"
    PIN = "pin"


class ControlMode(StrEnum):
    RANDOM = "random"  # control customers get a uniformly random eligible offer
    NONE = "none"  # control customers get no marketing offer


@dataclass(frozen=True, slots=True)
class ArbitrationSettings:
    timezone: str = "UTC"
    max_per_group: int | None = 1
    # intent -> group -> weight; "*" as group applies to every group
    context_weights: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    control_share: float = 0.0
    control_salt: str = "control"
    control_period: str = "fixed"  # "fixed", "month" or "quarter": the hash includes the period
    control_mode: ControlMode = ControlMode.RANDOM
    exploration: ExplorationKind = ExplorationKind.NONE
    epsilon: float = 0.0
    thompson_strength: float = 50.0  # pseudo-observations of the Beta posterior around the propensity
    consistency: ConsistencyMode = ConsistencyMode.BOOST
    consistency_days: float = 2.0
    consistency_boost: float = 1.5
    default_response_window_days: float | None = 7.0


@dataclass(frozen=True, eq=False)
class Catalogue:
    version: str  # content hash of the source files
    channels: tuple[str, ...]
    groups: Mapping[str, OfferGroup]
    offers: tuple[Offer, ...]
    policies: tuple[ContactPolicy, ...]
    settings: ArbitrationSettings
    features: tuple[FeatureSpec, ...] = ()
    # Outbound channels -> seconds within which a selection must be confirmed as sent (else it stops counting)
    outbound: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    # Real-time triggers (`triggers.yaml`): conditions that, made true by an event, start an outbound decision.
    triggers: tuple[Trigger, ...] = ()
    offers_by_id: Mapping[str, Offer] = field(init=False, repr=False, compare=False)
    service_offer_ids: frozenset[str] = field(init=False, repr=False, compare=False)
    # The version of `features` that each decision's stored feature values are written in (see
    # `feature_schema_version`); computed once here, not per decision.
    feature_schema: str = field(init=False, repr=False, compare=False)
    # Offer id -> response window in seconds (None: no implicit ignore), read for every contact of every
    # decision's history: a dict read instead of an offer lookup and a multiplication.
    _response_windows: Mapping[str, float | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "offers_by_id", MappingProxyType({o.id: o for o in self.offers}))
        object.__setattr__(self, "service_offer_ids", frozenset(o.id for o in self.offers if not o.marketing))
        object.__setattr__(self, "feature_schema", feature_schema_version(self.features))
        default = self.settings.default_response_window_days
        windows = {
            o.id: None if days is None else days * 86_400
            for o in self.offers
            for days in [default if o.response_window_days is None else o.response_window_days]
        }
        object.__setattr__(self, "_response_windows", windows)

    def offer(self, offer_id: str) -> Offer | None:
        return self.offers_by_id.get(offer_id)

    def is_outbound(self, channel: str) -> bool:
        """True for a channel whose decisions are selections for a campaign (email, SMS, call list)."""
        return channel in self.outbound

    def confirmation_seconds(self, channel: str) -> float | None:
        """How long an outbound selection in `channel` counts without a confirmed send (None: inbound)."""
        return self.outbound.get(channel)

    def response_window_seconds(self, offer_id: str) -> float | None:
        """The offer's response window in seconds; the default window for an offer no longer in the
        catalogue; None when there is none."""
        if offer_id in self._response_windows:
            return self._response_windows[offer_id]
        days = self.settings.default_response_window_days
        return None if days is None else days * 86_400


def feature_schema_version(specs: Sequence[FeatureSpec]) -> str:
    """A short content hash of the feature schema, in its order: what a decision's stored feature values
    (one per spec, in this order) are read against.

    Descriptions are left out: they change no value, and editing one must not orphan the stored history.

    >>> a = FeatureSpec("age", FeatureType.NUMBER, 40)
    >>> feature_schema_version((a,)) == feature_schema_version((a,)), len(feature_schema_version((a,)))
    (True, 16)
    """
    described = [
        [s.name, s.type.value, s.default, s.minimum, s.maximum, list(s.categories), s.max_age_days, s.source]
        for s in specs
    ]
    text = json.dumps(described, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def feature_vector(specs: Sequence[FeatureSpec], values: Mapping[str, FeatureValue]) -> tuple[FeatureValue, ...]:
    """A customer's validated feature values in the schema's order: the compact form a decision keeps.

    >>> feature_vector((FeatureSpec("age", FeatureType.NUMBER, 40),), {"age": 31.0, "other": 1})
    (31.0,)
    """
    return tuple([values.get(s.name) for s in specs])
