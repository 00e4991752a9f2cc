"""Compile validated catalogue entries into the core's frozen dataclasses (decisioning.catalogue).

Here live the checks that need the whole catalogue: groups, channels, offers and features that must exist,
ids that must be unique, dates in order, and every rule compiled against the feature schema. Problems are
collected, never raised one at a time: `compile_catalogue` returns the catalogue only when there are none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from decisioning.catalogue import (
    ArbitrationSettings,
    Budget,
    CalendarUnit,
    Catalogue,
    ContactPolicy,
    FeatureSpec,
    FeatureType,
    Offer,
    OfferGroup,
    Rule,
    RuleClass,
    Treatment,
    Window,
    WindowKind,
)
from decisioning.rules import CompiledRule, RuleError, compile_rule
from decisioning.types import DAY, HOUR
from policies.problems import Problem, closest, rule_message
from policies.schema import (
    CatalogueFile,
    FeatureEntry,
    GroupSpec,
    OfferSpec,
    PolicySpec,
    RuleClasses,
    WindowSpec,
)

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Entry(Generic[S]):
    """A validated entry and where it came from, for problem messages."""

    spec: S
    file: str  # the file's path as the loader was given it
    location: str  # e.g. "offer card_gold (offers.yaml entry 3)"


@dataclass
class Sources:
    """Everything the files held that passed schema validation, plus the ids of entries that did not
    (so that an offer of a group with a typo in its own entry is not reported a second time)."""

    catalogue_file: str
    settings: CatalogueFile | None = None
    groups: list[Entry[GroupSpec]] = field(default_factory=list)
    offers: list[Entry[OfferSpec]] = field(default_factory=list)
    policies: list[Entry[PolicySpec]] = field(default_factory=list)
    features: list[Entry[FeatureEntry]] = field(default_factory=list)
    broken_ids: set[str] = field(default_factory=set)  # "group:x", "offer:y", "feature:z"
    # Kinds ("group", "offer") with a file that could not be read at all: their ids are unknown, so
    # references to them are not checked (each would be a false "unknown offer").
    unreadable: set[str] = field(default_factory=set)
    broken_feature_types: dict[str, FeatureType] = field(default_factory=dict)


def compile_catalogue(sources: Sources, version: str) -> tuple[Catalogue | None, list[Problem]]:
    """The compiled catalogue (None when anything is wrong) and every problem found."""
    compiler = _Compiler(sources)
    catalogue = compiler.catalogue(version)
    return (catalogue if not compiler.problems else None), compiler.problems


class _Compiler:
    def __init__(self, sources: Sources) -> None:
        self.src = sources
        self.problems: list[Problem] = []
        self.features = self._features()
        # Without a readable feature schema, rules are still checked for syntax but not for names.
        self.types: dict[str, FeatureType] | None = (
            None
            if "feature" in sources.unreadable
            else {**sources.broken_feature_types, **{f.name: f.type for f in self.features}}
        )
        settings = sources.settings
        self.channels = tuple(settings.channels) if settings else None
        self.tz = self._timezone(settings.timezone if settings else "UTC")
        self.group_ids = _KnownIds.of("group", {e.spec.id for e in sources.groups}, sources)
        self.offer_ids = _KnownIds.of("offer", {e.spec.id for e in sources.offers}, sources)

    def problem(self, entry: Entry | None, what: str, message: str) -> None:
        file = entry.file if entry else self.src.catalogue_file
        location = ": ".join(p for p in (entry.location if entry else "", what) if p)
        self.problems.append(Problem(file, location, message))

    def catalogue(self, version: str) -> Catalogue | None:
        groups = self._groups()
        offers = tuple(o for e in self._unique(self.src.offers, "offer") if (o := self._offer(e, groups)))
        policies = tuple(p for e in self._unique(self.src.policies, "policy") if (p := self._policy(e)))
        settings = self._settings()
        if self.src.settings is None:
            return None
        channels = tuple(self.src.settings.channels)
        outbound = {name: spec.confirm_within_hours * 3_600 for name, spec in self.src.settings.outbound.items()}
        return Catalogue(
            version,
            channels,
            MappingProxyType(groups),
            offers,
            policies,
            settings,
            self.features,
            outbound=MappingProxyType(outbound),
        )

    # --- features ------------------------------------------------------------------------------------
    def _features(self) -> tuple[FeatureSpec, ...]:
        return tuple(feature_spec(e.spec) for e in self._unique(self.src.features, "feature", key="name"))

    # --- rules ---------------------------------------------------------------------------------------
    def rule(
        self, entry: Entry, text: str | bool | float, *, what: str, kind: str = "bool"
    ) -> CompiledRule | None:
        """Compile one rule against the feature schema; on error, record where and return None."""
        try:
            compiled = compile_rule(
                text, kind=kind, features=self.types, where=f"{entry.file}: {entry.location}: {what}"
            )
        except RuleError as err:
            self.problem(entry, what, rule_message(err))
            return None
        self._check_history(entry, what, compiled)
        return compiled

    def _check_history(self, entry: Entry, what: str, compiled: CompiledRule) -> None:
        # A history call on a misspelt offer would silently count nothing, forever: make it an error.
        for call in compiled.history_calls:
            for known, ident in ((self.offer_ids, call.offer), (self.group_ids, call.group)):
                if ident is not None and (unknown := known.unknown(ident)):
                    self.problem(entry, what, f"reads the history of an {unknown}: {compiled.text}")

    def rules(self, entry: Entry, spec: RuleClasses, owner: str) -> tuple[Rule, ...]:
        """The entry's rules in class order (eligibility, applicability, suitability), file order within."""
        out = []
        for rule_class in RuleClass:
            for name, text in getattr(spec, rule_class.value).items():
                compiled = self.rule(entry, text, what=f"{rule_class.value} rule '{name}'")
                if compiled is not None:
                    out.append(Rule(name, rule_class, compiled, owner))
        return tuple(out)

    # --- groups and offers ---------------------------------------------------------------------------
    def _groups(self) -> dict[str, OfferGroup]:
        # A group whose rules have errors is still returned, so its offers are checked as usual.
        return {
            e.spec.id: OfferGroup(
                e.spec.id, e.spec.name, e.spec.lever, self.rules(e, e.spec, f"group:{e.spec.id}")
            )
            for e in self._unique(self.src.groups, "group")
        }

    def _offer(self, entry: Entry[OfferSpec], groups: Mapping[str, OfferGroup]) -> Offer | None:
        s, before = entry.spec, len(self.problems)
        group = self._group_of(entry, groups)
        treatments = self._treatments(entry)
        rules = (group.rules if group else ()) + self.rules(entry, s, f"offer:{s.id}")
        value = self.rule(entry, s.value, what="value", kind="number")
        start, end = self._active(entry)
        if len(self.problems) > before or group is None or value is None:
            return None
        budget = Budget(s.budget.limit, s.budget.period) if s.budget else None
        return Offer(
            s.id,
            s.name,
            s.group,
            s.product,
            treatments,
            rules,
            value,
            lever=s.weight * group.lever,
            prior=s.prior,
            start=start,
            end=end,
            tags=tuple(s.tags),
            budget=budget,
            response_window_days=s.response_window_days,
            marketing=s.marketing,
        )

    def _group_of(self, entry: Entry[OfferSpec], groups: Mapping[str, OfferGroup]) -> OfferGroup | None:
        if unknown := self.group_ids.unknown(entry.spec.group):
            self.problem(entry, "group", unknown)
        return groups.get(entry.spec.group)

    def _treatments(self, entry: Entry[OfferSpec]) -> Mapping[str, Treatment]:
        self._known_channels(entry, entry.spec.channels, "channels")
        return MappingProxyType(
            {
                channel: Treatment(channel, t.title, t.text, t.image_url, t.url, t.script)
                for channel, t in entry.spec.channels.items()
            }
        )

    def _known_channels(self, entry: Entry, channels: Iterable[str], what: str) -> None:
        if self.channels is None:  # catalogue.yaml itself is broken: nothing to check against
            return
        for channel in channels:
            if channel not in self.channels:
                self.problem(
                    entry,
                    what,
                    f"channel '{channel}' is not one of the catalogue's channels "
                    f"({', '.join(self.channels)}){closest(channel, self.channels)}",
                )

    def _active(self, entry: Entry[OfferSpec]) -> tuple[float | None, float | None]:
        start, end = (_epoch(v, self.tz) for v in (entry.spec.start, entry.spec.end))
        if start is not None and end is not None and start >= end:
            self.problem(entry, "end", f"end {entry.spec.end} is not after start {entry.spec.start}")
        return start, end

    # --- contact policies ----------------------------------------------------------------------------
    def _policy(self, entry: Entry[PolicySpec]) -> ContactPolicy | None:
        s, before = entry.spec, len(self.problems)
        self._known_channels(entry, s.channels or (), "channels")
        self._known(entry, s.offers, self.offer_ids, "offers")
        self._known(entry, s.groups, self.group_ids, "groups")
        segment = self.rule(entry, s.segment, what="segment") if s.segment is not None else None
        if len(self.problems) > before:
            return None
        return ContactPolicy(
            s.id,
            frozenset(s.count),
            s.level,
            _window(s.window),
            s.threshold,
            s.suppress or s.level,
            suppress_days=s.for_days,
            channels=frozenset(s.channels) if s.channels is not None else None,
            segment=segment,
            offers=frozenset(s.offers),
            groups=frozenset(s.groups),
            description=s.description,
        )

    def _known(self, entry: Entry, ids: Iterable[str], known: _KnownIds, what: str) -> None:
        for ident in ids:
            if unknown := known.unknown(ident):
                self.problem(entry, what, unknown)

    # --- settings ------------------------------------------------------------------------------------
    def _settings(self) -> ArbitrationSettings:
        spec = self.src.settings
        if spec is None:
            return ArbitrationSettings()
        self._check_context_weights(spec.arbitration.context_weights)
        a, control = spec.arbitration, spec.arbitration.control
        return ArbitrationSettings(
            timezone=spec.timezone,
            max_per_group=a.max_per_group,
            context_weights=MappingProxyType({k: MappingProxyType(v) for k, v in a.context_weights.items()}),
            control_share=control.share,
            control_salt=control.salt,
            control_period=control.period,
            control_mode=control.mode,
            exploration=a.exploration.kind,
            epsilon=a.exploration.epsilon,
            thompson_strength=a.exploration.thompson_strength,
            consistency=a.consistency.mode,
            consistency_days=a.consistency.days,
            consistency_boost=a.consistency.boost,
            default_response_window_days=a.default_response_window_days,
        )

    def _check_context_weights(self, weights: Mapping[str, Mapping[str, float]]) -> None:
        for intent, by_group in weights.items():
            for group_id in by_group:
                if group_id != "*" and (unknown := self.group_ids.unknown(group_id)):
                    self.problem(None, f"arbitration.context_weights.{intent}", unknown)

    def _timezone(self, name: str) -> ZoneInfo:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(
                None, "timezone", f"unknown time zone '{name}' (use an IANA name such as Europe/Amsterdam)"
            )
            return ZoneInfo("UTC")

    def _unique(self, entries: list[Entry], kind: str, key: str = "id") -> list[Entry]:
        """The entries whose id is not taken by an earlier one; each later duplicate is a problem."""
        first: dict[str, Entry] = {}
        for e in entries:
            ident = getattr(e.spec, key)
            if ident in first:
                self.problem(
                    e, "", f"duplicate {kind} {key} '{ident}' (first defined as {first[ident].location})"
                )
            else:
                first[ident] = e
        return list(first.values())


@dataclass(frozen=True, slots=True)
class _KnownIds:
    """The ids of one kind that references may name.

    Entries that failed schema validation still count as known (their own problem is reported already);
    when a file of that kind could not be read at all, nothing can be checked (`complete` is False).
    """

    kind: str
    ids: frozenset[str]
    complete: bool

    @classmethod
    def of(cls, kind: str, valid: set[str], sources: Sources) -> _KnownIds:
        prefix = f"{kind}:"
        broken = {b.removeprefix(prefix) for b in sources.broken_ids if b.startswith(prefix)}
        return cls(kind, frozenset(valid | broken), kind not in sources.unreadable)

    def unknown(self, ident: str) -> str | None:
        """The problem with a reference to `ident` ("unknown offer 'x' (did you mean 'y'?)"), or None."""
        if not self.complete or ident in self.ids:
            return None
        return f"unknown {self.kind} '{ident}'{closest(ident, self.ids)}"


def feature_spec(f: FeatureEntry) -> FeatureSpec:
    """The core's spec of one validated `features.yaml` entry."""
    return FeatureSpec(
        f.name,
        f.type,
        f.default,
        minimum=f.min,
        maximum=f.max,
        categories=tuple(f.categories),
        max_age_days=f.max_age_days,
        description=f.description,
        source=f.source,
    )


def _epoch(value: datetime | date | None, tz: ZoneInfo) -> float | None:
    """Epoch seconds of a catalogue date (midnight) or datetime (wall clock unless it has an offset)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return (value if value.tzinfo else value.replace(tzinfo=tz)).timestamp()


def _window(spec: WindowSpec) -> Window:
    if spec.calendar is not None:
        return Window(WindowKind.CALENDAR, unit=CalendarUnit(spec.calendar))
    seconds = spec.days * DAY if spec.days is not None else (spec.hours or 0) * HOUR
    return Window(WindowKind.ROLLING, seconds=seconds)
