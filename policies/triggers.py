"""Real-time triggers (`triggers.yaml`, optional, beside `events.yaml`): which customer events start an
outbound decision, in which channel, how often at most.

    triggers:
      competitor_transfer:
        description: Money went to a competitor bank: offer a retention deal by SMS the same hour.
        when: transfer_out_competitor_30d >= 1        # the rule language, over the customer's features
        channel: sms                                   # an outbound channel of catalogue.yaml
        period: {days: 7}                              # at most once per customer per 7 days ({hours: N} too)
        max_offers: 1                                  # optional, 1 by default
        intent: wants_to_close                         # optional: the decision's intent

The condition is checked against `features.yaml` like every rule (an unknown feature is an error with its
column) and must read at least one feature an event writes (`source: event`): a condition on batch features
alone could never be made true by an event. History functions are refused: the contact policies are what
read the history, in the decision the trigger starts. Semantics: `decisioning/triggers.py`.

>>> from policies.loader import load_catalogue
>>> [t.name for t in load_catalogue("policies/demo").triggers]
['competitor_transfer', 'two_large_withdrawals', 'card_declined']
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from decisioning.catalogue import Catalogue
from decisioning.quality import is_event_feature
from decisioning.rules import CompiledRule, RuleError, compile_rule
from decisioning.triggers import Trigger
from decisioning.types import DAY
from policies.problems import Problem, closest, rule_message, validation_messages
from policies.yaml_files import read_yaml

TRIGGERS_FILE = "triggers.yaml"
HOUR = 3600.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeriodSpec(_Strict):
    days: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    hours: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> PeriodSpec:
        if (self.days is None) == (self.hours is None):
            raise ValueError("give the period in days or in hours, e.g. {days: 7} or {hours: 12}")
        return self

    @property
    def seconds(self) -> float:
        return self.days * DAY if self.days is not None else (self.hours or 0.0) * HOUR


class TriggerSpec(_Strict):
    description: str = ""
    when: str
    channel: str
    period: PeriodSpec
    max_offers: Annotated[int, Field(ge=1, le=20)] = 1
    intent: str | None = None


class TriggersFile(_Strict):
    """The outline; each trigger is validated on its own, so one bad trigger hides no other."""

    triggers: dict[str, Any] = {}


FIELD_NAMES = frozenset().union(*(m.model_fields for m in (PeriodSpec, TriggerSpec, TriggersFile)))


def check_triggers(directory: str | Path, catalogue: Catalogue) -> tuple[tuple[Trigger, ...], list[Problem]]:
    """The compiled triggers of `directory/triggers.yaml` (none without the file) and every problem of it,
    each naming the file, the trigger and the field (for a condition: the column in the expression).

    >>> check_triggers("policies/demo", catalogue)[1]  # doctest: +SKIP
    []
    """
    path = Path(directory) / TRIGGERS_FILE
    if not path.is_file():
        return (), []
    raw, problem = read_yaml(path, str(path))
    if problem is not None:
        return (), [problem]
    checker = _Checker(str(path), catalogue)
    triggers = checker.triggers(raw)
    return (triggers if not checker.problems else ()), checker.problems


class _Checker:
    """Validates and compiles one `triggers.yaml`, collecting every problem with its place in the file."""

    def __init__(self, file: str, catalogue: Catalogue) -> None:
        self.file = file
        self.catalogue = catalogue
        self.types = {s.name: s.type for s in catalogue.features}
        self.event_features = frozenset(s.name for s in catalogue.features if is_event_feature(s))
        self.problems: list[Problem] = []

    def problem(self, location: str, message: str) -> None:
        self.problems.append(Problem(self.file, location, message))

    def triggers(self, raw: Any) -> tuple[Trigger, ...]:
        outline = self._validate(TriggersFile, {} if raw is None else raw, "")
        if outline is None:
            return ()
        out = []
        for index, (name, item) in enumerate(outline.triggers.items()):
            where = f"trigger {name} (entry {index + 1})"
            spec = self._validate(TriggerSpec, item, where)
            trigger = self._trigger(where, str(name), spec) if spec is not None else None
            if trigger is not None:
                out.append(trigger)
        return tuple(out)

    def _validate(self, model: type[_Strict], raw: Any, location: str) -> Any:
        try:
            return model.model_validate(raw)
        except ValidationError as err:
            for message in validation_messages(err, FIELD_NAMES):
                self.problem(location, message)
            return None

    def _trigger(self, where: str, name: str, spec: TriggerSpec) -> Trigger | None:
        condition = self._condition(f"{where}: when", spec.when)
        channel_ok = self._check_channel(f"{where}: channel", spec.channel)
        if condition is None or not channel_ok:
            return None
        return Trigger(
            name, condition, spec.channel, spec.period.seconds, spec.max_offers, spec.intent, spec.description
        )

    def _condition(self, where: str, text: str) -> CompiledRule | None:
        try:
            compiled = compile_rule(text, kind="bool", features=self.types, where=f"{self.file}: {where}")
        except RuleError as err:
            self.problem(where, rule_message(err))
            return None
        if compiled.history_calls:
            self.problem(where, f"a trigger condition reads the features, not the history: {text}")
            return None
        if not frozenset(compiled.names) & self.event_features:
            self.problem(where, f"reads no feature an event writes (source: event), so no event can fire it: {text}")
            return None
        return compiled

    def _check_channel(self, where: str, channel: str) -> bool:
        if self.catalogue.is_outbound(channel):
            return True
        outbound = sorted(self.catalogue.outbound)
        hint = closest(channel, outbound)
        self.problem(
            where, f"'{channel}' is not an outbound channel of catalogue.yaml{hint} (outbound: {', '.join(outbound)})"
        )
        return False
