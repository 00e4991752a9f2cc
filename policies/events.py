"""Real-time event features: which customer events update which features (`events.yaml`), and how.

`load_event_rules` reads and checks the file against the feature schema (`features.yaml` beside it): every
updated feature must be declared with `source: event`, `incr`/`max` only apply to numbers, literal values
must fit the feature's type and range, and each condition compiles in the rule language against the
event's declared attributes (a misspelt attribute is an error at load, not a condition that never holds).
The result turns an incoming event into the `FeatureUpdate`s that `CustomerCache.apply_updates` applies
atomically.

>>> rules = load_event_rules("policies/demo/events.yaml")
>>> rules.updates_for("withdrawal", {"amount": "7500"}, at=1_700_000_000.0)[0]
FeatureUpdate(feature='large_withdrawal_last_at', op='max', value=1700000000.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.ports import EventError, FeatureUpdate
from decisioning.quality import INVALID, Coercer, coerce_bool, coercer_for, number_coercer
from decisioning.rules import CompiledRule, RuleEnv, RuleError, compile_rule
from decisioning.types import Context, FeatureValue
from policies.schema import FeatureEntry, FeaturesFile

EVENT_TIME = "$at"
EVENTS_FILE = "events.yaml"
FEATURES_FILE = "features.yaml"
EVENT_CHANNEL = "event"  # the context channel conditions see; they have no request context of their own


class UnknownEventType(EventError):
    pass


class EventRulesError(ValueError):
    """`events.yaml` does not fit the feature schema or the rule language; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpdateSpec(_Strict):
    feature: str
    op: Literal["incr", "set", "max"]
    value: float | bool | str | None = None


class RuleSpec(_Strict):
    when: str | None = None
    updates: list[UpdateSpec] = Field(min_length=1)


class EventSpec(_Strict):
    description: str = ""
    attributes: dict[str, FeatureType] = {}
    rules: list[RuleSpec] = Field(min_length=1)


class EventsFile(_Strict):
    events: dict[str, EventSpec]


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

    def resolve(self, event_type: str, attributes: Mapping[str, Any], at: float) -> FeatureUpdate:
        if self.source is None:
            return FeatureUpdate(self.feature, self.op, self.literal)
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
                raise EventError(
                    f"{event_type}: attribute '{name}' should be a {kind}, not {raw.get(name)!r}"
                )
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

    Updates are checked against `specs` (default: those of `features.yaml` beside the file); which features
    are event features is read from that `features.yaml` (`source: event`). Raises `EventRulesError`
    listing every problem.
    """
    path = Path(path)
    path = path / EVENTS_FILE if path.is_dir() else path
    schema = _event_specs(path.with_name(FEATURES_FILE), specs)
    try:
        spec = EventsFile.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as err:
        raise EventRulesError([f"{path}: {_loc(e['loc'])}: {e['msg']}" for e in err.errors()]) from err
    problems: list[str] = []
    events = {
        name: _compile_event(f"{path}: {name}", event, schema, problems)
        for name, event in spec.events.items()
    }
    if problems:
        raise EventRulesError(problems)
    return CompiledEventRules(events)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _event_specs(features_path: Path, specs: Sequence[FeatureSpec] | None) -> dict[str, FeatureSpec]:
    """The specs of the features declared with `source: event`."""
    raw = FeaturesFile.model_validate(yaml.safe_load(features_path.read_text()))
    entries = [FeatureEntry.model_validate(f) for f in raw.features]
    if specs is None:
        specs = [FeatureSpec(e.name, e.type, e.default, e.min, e.max, tuple(e.categories)) for e in entries]
    event_names = {e.name for e in entries if e.source == "event"}
    return {s.name: s for s in specs if s.name in event_names}


def _compile_event(
    where: str, spec: EventSpec, schema: Mapping[str, FeatureSpec], problems: list[str]
) -> _Event:
    rules = []
    for i, rule in enumerate(spec.rules):
        at = f"{where}: rules.{i}"
        when = _compile_condition(at, rule.when, spec.attributes, problems)
        updates = (_compile_update(at, u, spec.attributes, schema, problems) for u in rule.updates)
        rules.append(_Rule(when, tuple(u for u in updates if u is not None)))
    return _Event(dict(spec.attributes), tuple(rules), spec.description)


def _compile_condition(
    where: str, text: str | None, attributes: Mapping[str, FeatureType], problems: list[str]
) -> CompiledRule | None:
    if text is None:
        return None
    try:
        compiled = compile_rule(text, kind="bool", features=attributes, where=f"{where}: when")
    except RuleError as err:
        problems.append(str(err))
        return None
    if compiled.history_calls:
        problems.append(f"{where}: when: an event condition reads the event, not the history: {text}")
    return compiled


def _compile_update(
    where: str,
    spec: UpdateSpec,
    attributes: Mapping[str, FeatureType],
    schema: Mapping[str, FeatureSpec],
    problems: list[str],
) -> _Update | None:
    feature = schema.get(spec.feature)
    problem = _update_problem(spec, feature, attributes)
    if problem is None and feature is not None:
        update = _build_update(spec, coercer_for(feature))
        if update is not None:
            return update
        problem = f"value {spec.value!r} does not fit {spec.feature} ({feature.type})"
    problems.append(f"{where}: {problem}")
    return None


def _update_problem(
    spec: UpdateSpec, feature: FeatureSpec | None, attributes: Mapping[str, Any]
) -> str | None:
    if feature is None:
        return f"'{spec.feature}' is not a feature declared with source: event"
    if spec.op != "set" and feature.type is not FeatureType.NUMBER:
        return f"{spec.op} needs a number feature; {spec.feature} is {feature.type}"
    if spec.op == "max" and spec.value is None:
        return f"max of {spec.feature} needs a value"
    source = spec.value[1:] if isinstance(spec.value, str) and spec.value.startswith("$") else None
    if source is not None and f"${source}" != EVENT_TIME and source not in attributes:
        return f"{spec.feature} reads attribute '{source}', which the event does not declare"
    return None


def _build_update(spec: UpdateSpec, coerce: Coercer) -> _Update | None:
    """The compiled update; None when its literal value does not fit the feature."""
    if isinstance(spec.value, str) and spec.value.startswith("$"):
        source = spec.value if spec.value == EVENT_TIME else spec.value[1:]
        return _Update(spec.feature, spec.op, None, source, coerce)
    value = 1.0 if spec.value is None and spec.op == "incr" else spec.value
    literal = None if value is None else coerce(value)
    return None if literal is INVALID else _Update(spec.feature, spec.op, literal, None, coerce)
