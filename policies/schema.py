"""The pydantic schema of the catalogue's YAML files.

These models check each entry's shape: field names (unknown fields are errors), types, ranges and
combinations within one entry. What needs the whole catalogue (a group that exists, a channel the
catalogue declares, a rule that compiles against the feature schema) is checked by `policies.compiler`.

Each file is validated in two steps, so that one bad entry does not hide the others: the file's outline
(`CatalogueFile`, `OffersFile`...) with its entries left raw, then every entry on its own (`GroupSpec`,
`OfferSpec`, `PolicySpec`, `FeatureEntry`).
"""

from __future__ import annotations

import keyword
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from decisioning.catalogue import (
    BudgetPeriod,
    CalendarUnit,
    ConsistencyMode,
    ControlMode,
    ExplorationKind,
    FeatureType,
    Level,
)
from decisioning.types import Outcome

# Ids appear in history rows, metrics labels and rule text (`days_since(offer='card_gold')`): keep them
# plain so that they never need quoting or escaping anywhere.
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
RESERVED_NAMES = frozenset({"channel", "placement", "intent", "now"})
RuleText = str | StrictBool
RuleSet = dict[Annotated[str, Field(min_length=1, max_length=80)], RuleText]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleClasses(Strict):
    """Rules in the three named classes, each a mapping of rule name to expression."""

    eligibility: RuleSet = {}
    applicability: RuleSet = {}
    suitability: RuleSet = {}


# --- catalogue.yaml ----------------------------------------------------------------------------------
class ControlSpec(Strict):
    share: float = Field(0.0, ge=0, lt=1)
    salt: str = Field("control", min_length=1)
    period: Literal["fixed", "month", "quarter"] = "fixed"
    mode: ControlMode = ControlMode.RANDOM


class ExplorationSpec(Strict):
    kind: ExplorationKind = ExplorationKind.NONE
    epsilon: float = Field(0.0, ge=0, le=1)
    thompson_strength: Positive = 50.0

    @model_validator(mode="after")
    def _epsilon_needs_epsilon_greedy(self) -> ExplorationSpec:
        if self.epsilon > 0 and self.kind is not ExplorationKind.EPSILON:
            raise ValueError(f"epsilon is only used with kind {ExplorationKind.EPSILON.value}")
        return self


class ConsistencySpec(Strict):
    mode: ConsistencyMode = ConsistencyMode.BOOST
    days: Positive = 2.0
    boost: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 1.5


class ArbitrationSpec(Strict):
    max_per_group: Annotated[int, Field(ge=1)] | None = 1
    # intent -> group id (or "*" for every group) -> weight
    context_weights: dict[str, dict[str, NonNegative]] = {}
    control: ControlSpec = ControlSpec()
    exploration: ExplorationSpec = ExplorationSpec()
    consistency: ConsistencySpec = ConsistencySpec()
    default_response_window_days: Positive | None = 7.0


class OutboundChannelSpec(Strict):
    """An outbound channel (email, SMS, letter, call list): its decisions are selections for a campaign."""

    # A selection the campaign tool does not confirm as sent within this period stops counting.
    confirm_within_hours: Positive = 48.0


class CatalogueFile(Strict):
    """catalogue.yaml; `groups` entries are validated one by one with `GroupSpec`."""

    channels: list[Identifier] = Field(min_length=1)
    # Which of the channels are outbound; the others are inbound (the customer came to us).
    outbound: dict[str, OutboundChannelSpec] = {}
    timezone: str = "UTC"
    arbitration: ArbitrationSpec = ArbitrationSpec()
    groups: list[Any] = Field(min_length=1)

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, channels: list[str]) -> list[str]:
        return _unique(channels, "channel")

    @model_validator(mode="after")
    def _outbound_channels_are_channels(self) -> CatalogueFile:
        unknown = sorted(set(self.outbound) - set(self.channels))
        if unknown:
            raise ValueError(f"outbound channels not in channels: {', '.join(unknown)}")
        return self


class GroupSpec(RuleClasses):
    id: Identifier
    name: str = Field(min_length=1)
    lever: NonNegative = 1.0


# --- offers*.yaml ------------------------------------------------------------------------------------
class TreatmentSpec(Strict):
    title: str = Field(min_length=1)
    text: str = ""
    image_url: str | None = None
    url: str | None = None
    script: str | None = None


class BudgetSpec(Strict):
    limit: int = Field(ge=1)
    period: BudgetPeriod = BudgetPeriod.DAY


class OfferSpec(RuleClasses):
    id: Identifier
    name: str = Field(min_length=1)
    group: str
    product: str = Field(min_length=1)
    # A date means midnight, a datetime without offset means wall-clock time, both in the catalogue's zone.
    start: datetime | date | None = None
    end: datetime | date | None = None
    channels: dict[str, TreatmentSpec] = Field(min_length=1)
    value: float | str = 1.0
    weight: NonNegative = 1.0
    prior: float = Field(0.05, gt=0, lt=1)
    tags: list[str] = []
    budget: BudgetSpec | None = None
    response_window_days: Positive | None = None
    marketing: bool = True


class OffersFile(Strict):
    offers: list[Any] = Field(min_length=1)


# --- policies.yaml -----------------------------------------------------------------------------------
class WindowSpec(Strict):
    """Exactly one of: `days` or `hours` (rolling), `calendar` (day, week or month)."""

    days: Positive | None = None
    hours: Positive | None = None
    calendar: CalendarUnit | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WindowSpec:
        given = [k for k in ("days", "hours", "calendar") if getattr(self, k) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise ValueError(f"give exactly one of days, hours or calendar (got {got})")
        return self


_LEVEL_ORDER = {Level.OFFER: 0, Level.GROUP: 1, Level.ALL: 2}


class PolicySpec(Strict):
    id: Identifier
    description: str = ""
    count: list[Outcome] = Field(min_length=1)
    level: Level
    channels: list[str] | None = None
    window: WindowSpec
    threshold: int = Field(ge=1)
    suppress: Level | None = None  # None: the level's own scope
    for_days: Positive | None = None  # None: while the window holds
    segment: RuleText | None = None
    offers: list[str] = []
    groups: list[str] = []

    @field_validator("count")
    @classmethod
    def _countable(cls, outcomes: list[Outcome]) -> list[Outcome]:
        # `not_displayed` only releases a presentation; the history never reports it as a happening.
        if Outcome.NOT_DISPLAYED in outcomes:
            raise ValueError("not_displayed cannot be counted: it releases a presentation instead")
        return _unique(outcomes, "outcome")

    @model_validator(mode="after")
    def _suppress_at_least_level(self) -> PolicySpec:
        # Counting per group and suppressing one offer would leave open *which* offer: refuse it.
        if self.suppress is not None and _LEVEL_ORDER[self.suppress] < _LEVEL_ORDER[self.level]:
            raise ValueError(
                f"suppress '{self.suppress.value}' is narrower than level '{self.level.value}'; "
                "suppress the counted scope or a wider one"
            )
        return self


class PoliciesFile(Strict):
    policies: list[Any] = []


# --- features.yaml -----------------------------------------------------------------------------------
class FeatureEntry(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    type: FeatureType
    default: float | StrictBool | str | None = None
    min: float | None = None
    max: float | None = None
    categories: list[str] = []
    max_age_days: Positive | None = None
    description: str = ""
    # Where the value comes from: the overnight batch or real-time customer events (events.yaml).
    source: Literal["batch", "event"] = "batch"

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        # Rules read `channel`, `intent`... from the request context: a feature so named would be shadowed.
        if name in RESERVED_NAMES or keyword.iskeyword(name):
            raise ValueError(f"'{name}' is reserved by the rule language; choose another feature name")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> FeatureEntry:
        checks = {FeatureType.NUMBER: _check_number, FeatureType.BOOL: _check_bool}
        checks.get(self.type, _check_category)(self)
        return self


class FeaturesFile(Strict):
    features: list[Any] = Field(min_length=1)


def _check_number(f: FeatureEntry) -> None:
    if f.categories:
        raise ValueError("categories are only for category features")
    if f.min is not None and f.max is not None and f.min > f.max:
        raise ValueError(f"min {f.min:g} is greater than max {f.max:g}")
    if f.default is None:
        return
    if isinstance(f.default, bool | str):
        raise ValueError(f"default {f.default!r} is not a number")
    if not (f.min is None or f.default >= f.min) or not (f.max is None or f.default <= f.max):
        low, high = ("-inf" if f.min is None else f"{f.min:g}"), ("inf" if f.max is None else f"{f.max:g}")
        raise ValueError(f"default {f.default:g} is outside [{low}, {high}]")


def _check_bool(f: FeatureEntry) -> None:
    if f.min is not None or f.max is not None or f.categories:
        raise ValueError("min, max and categories do not apply to bool features")
    if f.default is not None and not isinstance(f.default, bool):
        raise ValueError(f"default {f.default!r} is not true or false")


def _check_category(f: FeatureEntry) -> None:
    if f.min is not None or f.max is not None:
        raise ValueError("min and max do not apply to category features")
    if not f.categories:
        raise ValueError("a category feature needs its categories")
    _unique(f.categories, "category")
    if f.default is not None and f.default not in f.categories:
        raise ValueError(f"default {f.default!r} is not among the categories")


def _unique(items: list, what: str) -> list:
    seen: set = set()
    dupes = [x for x in items if x in seen or seen.add(x)]
    if dupes:
        raise ValueError(f"duplicate {what} {', '.join(map(str, dupes))}")
    return items


# Every field name the schema knows: misspelt fields are matched against it to suggest a fix.
FIELD_NAMES = frozenset().union(
    *(
        model.model_fields
        for model in (
            CatalogueFile,
            ArbitrationSpec,
            ControlSpec,
            ExplorationSpec,
            ConsistencySpec,
            GroupSpec,
        )
    ),
    *(model.model_fields for model in (OffersFile, OfferSpec, TreatmentSpec, BudgetSpec)),
    *(model.model_fields for model in (PoliciesFile, PolicySpec, WindowSpec, FeaturesFile, FeatureEntry)),
)
