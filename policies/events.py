"""Real-time event features: which customer events update which features (`events.yaml`), and how.

`load_event_rules` reads and checks the file against the feature schema (`features.yaml` beside it): every
updated feature must be declared with `source: event`, `incr`/`max`/`count` only apply to numbers, literal
values must fit the feature's type and range, and each condition compiles in the rule language against the
event's declared attributes (a misspelt attribute is an error at load, not a condition that never holds).
The result turns an incoming event into the `FeatureUpdate`s that `CustomerCache.apply_updates` applies
atomically. `check_event_rules` returns the same checks as `Problem`s (file, where, what), as
`nbo catalogue validate` lists them; a catalogue directory without `events.yaml` has no event types.

An update is `{feature: <name>, op: incr | set | max, value: <value>}`, or a windowed count:

    - {feature: transfer_out_competitor_30d, op: count, window_days: 30}

The feature then reads as the number of matching events in the `window_days` (a rolling window, fractions
allowed: 0.5 is twelve hours) before the decision's time, counted when the decision is made: a count
decays by itself, with no event needed. A count takes no `value` (each event counts one); every count of
one feature must use the same window, and a counted feature is updated by counts only. The caches keep
the event times, trimmed on write to one window and at most `features.updates.MAX_COUNTED_EVENTS`.

>>> rules = load_event_rules("policies/demo/events.yaml")
>>> rules.updates_for("withdrawal", {"amount": "7500"}, at=1_700_000_000.0)[0]
FeatureUpdate(feature='large_withdrawal_last_at', op='max', value=1700000000.0, window=None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.ports import EventError, FeatureUpdate
from decisioning.quality import INVALID, Coercer, coerce_bool, coercer_for, is_event_feature, number_coercer
from decisioning.rules import CompiledRule, RuleEnv, RuleError, compile_rule
from decisioning.types import DAY, Context, FeatureValue
from policies.compiler import feature_spec
from policies.problems import Problem, rule_message, validation_messages
from policies.schema import FeatureEntry, FeaturesFile
from policies.yaml_files import read_yaml

EVENT_TIME = "$at"
EVENTS_FILE = "events.yaml"
FEATURES_FILE = "features.yaml"
EVENT_CHANNEL = "event"  # the context channel conditions see; they have no request context of their own


class UnknownEventType(EventError):
    pass


class EventRulesError(ValueError):
    """`events.yaml` does not fit the feature schema or the rule language; lists every problem."""

    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.problems = [str(p) for p in problems]
        super().__init__("\n".join(self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpdateSpec(_Strict):
    feature: str
    op: Literal["incr", "set", "max", "count"]
    value: float | bool | str | None = None
    window_days: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None  # count only


class RuleSpec(_Strict):
    when: str | None = None
    updates: list[UpdateSpec] = Field(min_length=1)


class EventSpec(_Strict):
    description: str = ""
    attributes: dict[str, FeatureType] = {}
    rules: list[RuleSpec] = Field(min_length=1)


class EventsFile(_Strict):
    """The outline; each event is validated on its own with `EventSpec`, so one bad event hides no other."""

    events: dict[str, Any]


EVENT_FIELD_NAMES = frozenset().union(*(m.model_fields for m in (UpdateSpec, RuleSpec, EventSpec, EventsFile)))

_ATTRIBUTE_COERCERS: dict[FeatureType, Coercer] = {
    FeatureType.NUMBER: number_coercer(None, None),
    FeatureType.BOOL: coerce_bool,
    FeatureType.CATEGORY: lambda raw: None if raw is None else str(raw),
}


@dataclass(frozen=True, slots=True)
class _Update:
    feature: str
    op: str
    literal: FeatureValue  # used when `source` is None
    source: str | None  # EVENT_TIME or an attribute name
    coerce: Coercer  # the feature's: type and range
    window: float | None = None  # seconds, for "count"

    def resolve(self, event_type: str, attributes: Mapping[str, Any], at: float) -> FeatureUpdate:
        if self.source is None:
            return FeatureUpdate(self.feature, self.op, self.literal, self.window)
        raw = at if self.source == EVENT_TIME else attributes.get(self.source)
        value = self.coerce(raw)
        if value is None or value is INVALID:
            what = "missing" if value is None else f"invalid ({raw!r})"
            raise EventError(f"{event_type}: attribute '{self.source}' is {what} for {self.feature}")
        return FeatureUpdate(self.feature, self.op, value)


@dataclass(frozen=True, slots=True)
class _Rule:
    when: CompiledRule | None
    updates: tuple[_Update, ...]


@dataclass(frozen=True, slots=True)
class _Event:
    attributes: Mapping[str, FeatureType]
    rules: tuple[_Rule, ...]
    description: str = ""

    def typed(self, event_type: str, raw: Mapping[str, Any]) -> dict[str, FeatureValue]:
        """The declared attributes coerced to their type (missing ones as None); others are ignored."""
        out: dict[str, FeatureValue] = {}
        for name, kind in self.attributes.items():
            value = _ATTRIBUTE_COERCERS[kind](raw.get(name))
            if value is INVALID:
                raise EventError(f"{event_type}: attribute '{name}' should be a {kind}, not {raw.get(name)!r}")
            out[name] = value
        return out


class CompiledEventRules:
    """The compiled event rules: the known event types and the updates each event implies."""

    def __init__(self, events: Mapping[str, _Event]) -> None:
        self._events = dict(events)
        self.types = tuple(sorted(self._events))

    def knows(self, event_type: str) -> bool:
        return event_type in self._events

    def description(self, event_type: str) -> str:
        return self._events[event_type].description

    def features(self) -> frozenset[str]:
        """Every feature some event updates."""
        return frozenset(u.feature for e in self._events.values() for r in e.rules for u in r.updates)

    def updates_for(self, event_type: str, attributes: Mapping[str, Any], at: float) -> list[FeatureUpdate]:
        """The feature updates of one event, in file order; [] when no rule's condition holds.

        Raises `UnknownEventType` for a type the file does not list, `EventError` when an attribute a
        condition or an update needs is missing or invalid.
        """
        event = self._events.get(event_type)
        if event is None:
            raise UnknownEventType(f"unknown event type '{event_type}'; known: {', '.join(self.types)}")
        typed = event.typed(event_type, attributes)
        env = RuleEnv(typed, Context(EVENT_CHANNEL, now=at))
        updates: list[FeatureUpdate] = []
        for rule in event.rules:
            if rule.when is None or _holds(event_type, rule.when, env):
                updates.extend(u.resolve(event_type, typed, at) for u in rule.updates)
        return updates


def _holds(event_type: str, rule: CompiledRule, env: RuleEnv) -> bool:
    try:
        return bool(rule.evaluate(env))
    except RuleError as err:
        raise EventError(f"{event_type}: condition '{rule.text}' cannot be evaluated: {err}") from err


def load_event_rules(path: str | Path, specs: Sequence[FeatureSpec] | None = None) -> CompiledEventRules:
    """Load `events.yaml` (`path` is the file or the catalogue directory holding it) and check it.

    Updates are checked against the event features (`source: event`) of `specs`, by default those of
    `features.yaml` beside the file. Raises `EventRulesError` listing every problem.
    """
    rules, problems = check_event_rules(path, specs)
    if rules is None:
        raise EventRulesError(problems)
    return rules


def check_event_rules(
    path: str | Path, specs: Sequence[FeatureSpec] | None = None
) -> tuple[CompiledEventRules | None, list[Problem]]:
    """The compiled rules (None when anything is wrong) and every problem of the file, located.

    >>> check_event_rules("policies/demo")[1]
    []
    """
    path = Path(path)
    if path.is_dir():
        path = path / EVENTS_FILE
        if not path.exists():  # a catalogue may have no real-time events
            return CompiledEventRules({}), []
    if specs is None:
        specs = _declared_specs(path.with_name(FEATURES_FILE))
    raw, problem = read_yaml(path, str(path))
    if problem is not None:
        return None, [problem]
    checker = _Checker(str(path), {s.name: s for s in specs if is_event_feature(s)})
    events = checker.events(raw)
    return (CompiledEventRules(events) if not checker.problems else None), checker.problems


def _declared_specs(features_path: Path) -> list[FeatureSpec]:
    """The specs of `features.yaml`'s valid entries (its own problems are the catalogue loader's to list)."""
    raw, _ = read_yaml(features_path, str(features_path))
    try:
        outline = FeaturesFile.model_validate(raw)
    except ValidationError:
        return []
    specs = []
    for item in outline.features:
        try:
            specs.append(feature_spec(FeatureEntry.model_validate(item)))
        except ValidationError:
            continue
    return specs


class _Checker:
    """Validates and compiles one `events.yaml`, collecting every problem with its place in the file."""

    def __init__(self, file: str, schema: Mapping[str, FeatureSpec]) -> None:
        self.file = file
        self.schema = schema  # the event features
        self.problems: list[Problem] = []

    def problem(self, location: str, message: str) -> None:
        self.problems.append(Problem(self.file, location, message))

    def events(self, raw: Any) -> dict[str, _Event]:
        outline = self._validate(EventsFile, raw, "")
        if outline is None:
            return {}
        specs = {name: self._validate(EventSpec, item, f"event {name}") for name, item in outline.events.items()}
        events = {name: self._event(f"event {name}", spec) for name, spec in specs.items() if spec is not None}
        self._check_counts(events)
        return events

    def _validate(self, model: type[_Strict], raw: Any, location: str) -> Any:
        try:
            return model.model_validate(raw)
        except ValidationError as err:
            for message in validation_messages(err, EVENT_FIELD_NAMES):
                self.problem(location, message)
            return None

    def _event(self, where: str, spec: EventSpec) -> _Event:
        rules = []
        for i, rule in enumerate(spec.rules):
            when = self._condition(f"{where}: rules.{i}: when", rule.when, spec.attributes)
            updates = (
                self._update(f"{where}: rules.{i}: updates.{j}", u, spec.attributes) for j, u in enumerate(rule.updates)
            )
            rules.append(_Rule(when, tuple(u for u in updates if u is not None)))
        return _Event(dict(spec.attributes), tuple(rules), spec.description)

    def _condition(self, where: str, text: str | None, attributes: Mapping[str, FeatureType]) -> CompiledRule | None:
        if text is None:
            return None
        try:
            compiled = compile_rule(text, kind="bool", features=attributes, where=f"{self.file}: {where}")
        except RuleError as err:
            self.problem(where, rule_message(err))
            return None
        if compiled.history_calls:
            self.problem(where, f"an event condition reads the event, not the history: {text}")
        return compiled

    def _update(self, where: str, spec: UpdateSpec, attributes: Mapping[str, FeatureType]) -> _Update | None:
        feature = self.schema.get(spec.feature)
        problem = _update_problem(spec, feature, attributes)
        if problem is None and feature is not None:
            update = _build_update(spec, coercer_for(feature))
            if update is not None:
                return update
            problem = f"value {spec.value!r} does not fit {spec.feature} ({feature.type})"
        self.problem(where, problem)
        return None

    def _check_counts(self, events: Mapping[str, _Event]) -> None:
        """A counted feature is stored as event times, one window for all: anything else would mix them."""
        seen: dict[str, tuple[str, _Update]] = {}  # feature -> (event, its first update)
        for name, event in events.items():
            for update in (u for r in event.rules for u in r.updates):
                first = seen.setdefault(update.feature, (name, update))
                if (first[1].op == "count" or update.op == "count") and first[1].window != update.window:
                    self.problem(f"event {name}", _count_conflict(update, *first))


def _count_conflict(update: _Update, first_event: str, first: _Update) -> str:
    def said(u: _Update) -> str:
        return f"op: count, window_days: {u.window / DAY:g}" if u.window is not None else f"op: {u.op}"

    return (
        f"{update.feature} is updated with {said(update)} here and with {said(first)} in event "
        f"{first_event}: a counted feature takes counts only, all with the same window_days"
    )


def _update_problem(spec: UpdateSpec, feature: FeatureSpec | None, attributes: Mapping[str, Any]) -> str | None:
    if feature is None:
        return f"'{spec.feature}' is not a feature declared with source: event"
    if spec.op != "set" and feature.type is not FeatureType.NUMBER:
        return f"{spec.op} needs a number feature; {spec.feature} is {feature.type}"
    if spec.op == "max" and spec.value is None:
        return f"max of {spec.feature} needs a value"
    if (spec.op == "count") != (spec.window_days is not None):
        return _window_problem(spec)
    if spec.op == "count" and spec.value is not None:
        # A value would suggest a weight, which the caches do not keep.
        return f"count of {spec.feature} takes no value: each event counts one"
    source = spec.value[1:] if isinstance(spec.value, str) and spec.value.startswith("$") else None
    if source is not None and f"${source}" != EVENT_TIME and source not in attributes:
        return f"{spec.feature} reads attribute '{source}', which the event does not declare"
    return None


def _window_problem(spec: UpdateSpec) -> str:
    if spec.op == "count":
        return f"count of {spec.feature} needs window_days (e.g. window_days: 30)"
    return f"window_days is only for op: count, not for {spec.op} of {spec.feature}"


def _build_update(spec: UpdateSpec, coerce: Coercer) -> _Update | None:
    """The compiled update; None when its literal value does not fit the feature."""
    if spec.op == "count" and spec.window_days is not None:
        return _Update(spec.feature, "count", None, None, coerce, spec.window_days * DAY)
    if isinstance(spec.value, str) and spec.value.startswith("$"):
        source = spec.value if spec.value == EVENT_TIME else spec.value[1:]
        return _Update(spec.feature, spec.op, None, source, coerce)
    value = 1.0 if spec.value is None and spec.op == "incr" else spec.value
    literal = None if value is None else coerce(value)
    return None if literal is INVALID else _Update(spec.feature, spec.op, literal, None, coerce)
