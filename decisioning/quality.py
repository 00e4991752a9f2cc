"""Data quality: customer features validated against the declared feature schema.

Two entry points, both pure:
- `validate_features` runs on every decision: each declared feature gets a value (the stored one, coerced to
  its type, when valid; else the schema default) and the result says which were defaulted or stale. A
  windowed count (`op: count` in events.yaml) is counted here, at the decision's time `now`, from the
  event times the snapshot carries: the same snapshot read a week later counts fewer events.
- `validate_columns` runs when a feature file is loaded: it cleans a column batch and counts, per feature,
  the values it rejected and the ones that will fall back to the default.

Coercion is compiled once per schema (`compile_schema`), because `validate_features` sits on the hot path
(~40 features per decision). A rejected value is stored as missing (None), not as its default, so that every
later decision still reports it as defaulted instead of hiding the bad data behind a plausible value.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.ports import CustomerSnapshot
from decisioning.types import DAY, CustomerFeatures, FeatureValue

INVALID: Any = object()  # what a coercer returns for a value it rejects (None means "missing")
Coercer = Callable[[Any], Any]

_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})
SAMPLES_KEPT = 5  # rejected values kept per feature in a load report, to show what went wrong


def is_event_feature(spec: FeatureSpec) -> bool:
    """True for a real-time feature written by customer events (`source: event` in the schema).

    Absence of an event feature is normal (the event never happened), so it is not reported as defaulted.
    """
    return spec.source == "event"


def number_coercer(minimum: float | None, maximum: float | None) -> Coercer:
    """A coercer to float for numbers and numeric strings, within [minimum, maximum].

    >>> number_coercer(0, 10)(" 7 ")
    7.0
    """
    low, high = number_bounds(minimum, maximum)

    def coerce(raw: Any) -> Any:
        if raw is None or raw == "":
            return None
        if raw.__class__ is bool:  # True is an int, but a flag where a number is due is a data error
            return INVALID
        try:
            value = float(raw)
        except (TypeError, ValueError):
            return INVALID
        if value != value:  # NaN is how pandas and Arrow spell "missing"
            return None
        return value if low <= value <= high else INVALID

    return coerce


def number_bounds(minimum: float | None, maximum: float | None) -> tuple[float, float]:
    """The accepted range; an open end is the largest finite float, so that infinities are rejected."""
    return (-sys.float_info.max if minimum is None else minimum, sys.float_info.max if maximum is None else maximum)


def coerce_bool(raw: Any) -> Any:
    """Booleans, 0/1 and the usual spellings ("true", "yes", "1"...) to bool.

    >>> coerce_bool("Yes"), coerce_bool(0), coerce_bool("maybe") is INVALID
    (True, False, True)
    """
    if raw is None or raw == "":
        return None
    if raw.__class__ is bool:
        return raw
    if isinstance(raw, int | float):
        return INVALID if raw not in (0, 1) else bool(raw)
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    return False if text in _FALSE else INVALID


def category_coercer(categories: Sequence[str]) -> Coercer:
    """A coercer to one of `categories`, matched exactly, else ignoring case and surrounding spaces.

    >>> category_coercer(["mass", "affluent"])(" Mass ")
    'mass'
    """
    exact = frozenset(categories)
    folded = {c.strip().lower(): c for c in categories}

    def coerce(raw: Any) -> Any:
        if raw is None or raw == "":
            return None
        if raw.__class__ is str and raw in exact:
            return raw
        return folded.get(str(raw).strip().lower(), INVALID)

    return coerce


def coercer_for(spec: FeatureSpec) -> Coercer:
    """The coercer of one feature spec."""
    if spec.type is FeatureType.NUMBER:
        return number_coercer(spec.minimum, spec.maximum)
    if spec.type is FeatureType.BOOL:
        return coerce_bool
    return category_coercer(spec.categories)


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    coerce: Coercer
    default: FeatureValue
    max_age: float | None  # seconds
    report_missing: bool
    bounds: tuple[float, float] | None  # numbers only: lets a numeric column be checked vectorised


def _compile(spec: FeatureSpec) -> _Compiled:
    coerce = coercer_for(spec)
    default = coerce(spec.default)
    # A default the schema itself got wrong is still what the schema says: keep it rather than guess.
    default = spec.default if default is INVALID else default
    max_age = None if spec.max_age_days is None else spec.max_age_days * DAY
    bounds = number_bounds(spec.minimum, spec.maximum) if spec.type is FeatureType.NUMBER else None
    return _Compiled(spec.name, coerce, default, max_age, not is_event_feature(spec), bounds)


class FeatureValidator:
    """A feature schema compiled for fast validation: one coercer per feature, built once.

    >>> from decisioning.catalogue import FeatureSpec, FeatureType
    >>> v = FeatureValidator([FeatureSpec("age", FeatureType.NUMBER, 40, minimum=16, maximum=110)])
    >>> v.validate("c1", CustomerSnapshot("c1", {"age": "200"}), now=0.0).defaulted
    ('age',)
    """

    def __init__(self, specs: Sequence[FeatureSpec]) -> None:
        self.specs = tuple(specs)
        self.compiled = tuple(_compile(s) for s in self.specs)
        self.defaults: Mapping[str, FeatureValue] = {c.name: c.default for c in self.compiled}
        # What an unknown customer's decision reports as defaulted: the same features a known customer
        # with nothing stored would report (event features are absent for anyone the events skipped).
        self.unknown_defaulted = tuple(c.name for c in self.compiled if c.report_missing)
        # The fields `validate` reads, unpacked by the loop instead of read by attribute (5 reads per feature).
        self._rows = tuple((c.name, c.coerce, c.default, c.report_missing, c.max_age) for c in self.compiled)

    def validate(self, customer_id: str, snapshot: CustomerSnapshot, now: float) -> CustomerFeatures:
        """Every declared feature with a valid value; what was defaulted or stale (see module doc)."""
        # One flat loop on purpose: this runs on every decision, and a helper call per feature would cost
        # a third of it.
        stored = snapshot.features
        if stored is None:
            return CustomerFeatures(customer_id, dict(self.defaults), False, self.unknown_defaulted)
        if snapshot.windowed:  # windowed counts exist only at a moment: the decision's
            stored = {**stored, **{name: w.count_at(now) for name, w in snapshot.windowed.items()}}
        times = snapshot.feature_times
        batch_time = times.get("*")
        values: dict[str, FeatureValue] = {}
        defaulted: list[str] = []
        stale: list[str] = []
        for name, coerce, default, report_missing, max_age in self._rows:
            raw = stored.get(name)
            value = INVALID if raw is None else coerce(raw)
            if value is INVALID or value is None:
                values[name] = default
                if raw is not None or report_missing:
                    defaulted.append(name)
                continue
            values[name] = value
            if max_age is not None:
                at = times.get(name, batch_time)
                if at is not None and now - at > max_age:
                    stale.append(name)
        return CustomerFeatures(customer_id, values, True, tuple(defaulted), tuple(stale))


_VALIDATORS: dict[int, tuple[Sequence[FeatureSpec], FeatureValidator]] = {}
_MAX_CACHED = 32


def compile_schema(specs: Sequence[FeatureSpec]) -> FeatureValidator:
    """The compiled validator of `specs`, cached by identity (a catalogue's schema is one tuple object).

    >>> compile_schema(()) is compile_schema(())
    True
    """
    # Keyed by id() and holding `specs` itself, so the id cannot be reused while the entry lives;
    # hashing 40 frozen dataclasses on every decision would cost more than the validation.
    hit = _VALIDATORS.get(id(specs))
    if hit is not None and hit[0] is specs:
        return hit[1]
    if len(_VALIDATORS) >= _MAX_CACHED:
        _VALIDATORS.clear()
    validator = FeatureValidator(specs)
    _VALIDATORS[id(specs)] = (specs, validator)
    return validator


def validate_features(
    specs: Sequence[FeatureSpec], customer_id: str, snapshot: CustomerSnapshot, now: float
) -> CustomerFeatures:
    """Validate one customer's cached features against the schema, at decision time `now`.

    >>> from decisioning.catalogue import FeatureSpec, FeatureType
    >>> specs = (FeatureSpec("has_mortgage", FeatureType.BOOL, False, max_age_days=7),)
    >>> snap = CustomerSnapshot("c1", {"has_mortgage": "yes"}, {"*": 0.0})
    >>> f = validate_features(specs, "c1", snap, now=8 * DAY)
    >>> f.values["has_mortgage"], f.defaulted, f.stale
    (True, (), ('has_mortgage',))
    """
    return compile_schema(specs).validate(customer_id, snapshot, now)


@dataclass
class LoadReport:
    """What loading feature files did: rows read and loaded, values rejected and defaulted per feature.

    `defaulted` counts, per feature, the rows whose value is missing or rejected (decisions will use the
    default); `rejected` counts only the values that were present but invalid, with a few `samples`.
    """

    rows: int = 0
    loaded: int = 0
    rows_rejected: int = 0  # rows without a usable customer id
    rejected: Counter[str] = field(default_factory=Counter)
    defaulted: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[Any]] = field(default_factory=dict)
    missing_columns: set[str] = field(default_factory=set)
    unknown_columns: set[str] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view, rejected features first by count."""
        return {
            "rows": self.rows,
            "loaded": self.loaded,
            "rows_rejected": self.rows_rejected,
            "rejected": dict(self.rejected.most_common()),
            "defaulted": dict(self.defaulted.most_common()),
            "samples": {k: [repr(v) for v in vs] for k, vs in self.samples.items()},
            "missing_columns": sorted(self.missing_columns),
            "unknown_columns": sorted(self.unknown_columns),
        }


def _clean_column(c: _Compiled, raw: Sequence[Any], report: LoadReport) -> list[Any]:
    cleaned, bad = _coerce_column(c, raw)
    if bad:
        report.rejected[c.name] += len(bad)
        kept = report.samples.setdefault(c.name, [])
        kept.extend(raw[i] for i in bad[: SAMPLES_KEPT - len(kept)])
    missing = cleaned.count(None)
    if missing:
        report.defaulted[c.name] += missing
    return cleaned


def _coerce_column(c: _Compiled, raw: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """Coerced values (rejected ones as None) and the positions of the rejected ones."""
    if c.bounds is not None and isinstance(raw, np.ndarray) and raw.dtype.kind in "fiu":
        return _coerce_number_array(raw, *c.bounds)
    cleaned = [c.coerce(v) for v in raw]
    bad = [i for i, v in enumerate(cleaned) if v is INVALID]
    for i in bad:
        cleaned[i] = None
    return cleaned, bad


def _coerce_number_array(raw: np.ndarray, low: float, high: float) -> tuple[list[Any], list[int]]:
    # The same rule as number_coercer, on a whole column at once (a Parquet number column: ~20x faster).
    values = raw.astype(np.float64, copy=False)
    ok = (values >= low) & (values <= high)  # NaN, Arrow's missing, compares False
    bad = np.flatnonzero(~ok & ~np.isnan(values))
    cleaned = values.astype(object)
    cleaned[~ok] = None
    return cleaned.tolist(), bad.tolist()


def validate_columns(
    specs: Sequence[FeatureSpec],
    columns: Mapping[str, Sequence[Any]],
    report: LoadReport,
    id_column: str = "customer_id",
) -> list[tuple[str, dict[str, FeatureValue]]]:
    """Clean one batch of a feature file given as columns; count what was rejected into `report`.

    Returns (customer id, values) rows with every spec'd feature: invalid and missing values are None.
    Rows without a customer id are dropped and counted.

    >>> from decisioning.catalogue import FeatureSpec, FeatureType
    >>> report = LoadReport()
    >>> specs = [FeatureSpec("age", FeatureType.NUMBER, 40, minimum=16, maximum=110)]
    >>> validate_columns(specs, {"customer_id": ["c1", "c2"], "age": ["33", "-1"]}, report)
    [('c1', {'age': 33.0}), ('c2', {'age': None})]
    >>> report.rejected["age"], report.samples["age"]
    (1, ['-1'])
    """
    ids = columns[id_column]
    report.rows += len(ids)
    report.unknown_columns.update(set(columns) - {id_column} - {s.name for s in specs})
    cleaned = _clean_columns(compile_schema(specs), columns, len(ids), report)
    names = list(cleaned)
    rows = []
    for raw_id, *values in zip(ids, *cleaned.values(), strict=True):
        customer_id = "" if raw_id is None else str(raw_id).strip()
        if customer_id:
            rows.append((customer_id, dict(zip(names, values, strict=True))))
    report.rows_rejected += len(ids) - len(rows)
    report.loaded += len(rows)
    return rows


def _clean_columns(
    validator: FeatureValidator, columns: Mapping[str, Sequence[Any]], size: int, report: LoadReport
) -> dict[str, list[Any]]:
    cleaned: dict[str, list[Any]] = {}
    for c in validator.compiled:
        name = c.name
        if name in columns:
            cleaned[name] = _clean_column(c, columns[name], report)
        elif c.report_missing:  # an event feature is not expected in a batch file: left out, not missing
            report.missing_columns.add(name)
            report.defaulted[name] += size
            cleaned[name] = [None] * size
    return cleaned
