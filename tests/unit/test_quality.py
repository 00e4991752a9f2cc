"""Feature validation against the schema: per decision and per loaded batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.ports import CustomerSnapshot, WindowedCount
from decisioning.quality import (
    INVALID,
    LoadReport,
    coerce_bool,
    compile_schema,
    number_coercer,
    validate_columns,
    validate_features,
)
from decisioning.types import DAY

NOW = 1_763_000_000.0
SPECS = (
    FeatureSpec("age", FeatureType.NUMBER, 40, minimum=16, maximum=110, max_age_days=400),
    FeatureSpec("balance", FeatureType.NUMBER, 0, minimum=-100_000, maximum=10_000_000, max_age_days=3),
    FeatureSpec("has_mortgage", FeatureType.BOOL, False, max_age_days=7),
    FeatureSpec("segment", FeatureType.CATEGORY, "mass", categories=("student", "mass", "affluent")),
    FeatureSpec("churn_signal_at", FeatureType.NUMBER, None, minimum=0, maximum=1e11),
)


def snapshot(features: dict | None, times: dict | None = None) -> CustomerSnapshot:
    return CustomerSnapshot("c1", features, times if times is not None else {"*": NOW})


def test_valid_values_are_coerced_to_their_type() -> None:
    stored = {
        "age": "41",
        "balance": -12.5,
        "has_mortgage": "yes",
        "segment": " Affluent ",
        "churn_signal_at": 5,
    }
    result = validate_features(SPECS, "c1", snapshot(stored), NOW)
    assert result.values == {
        "age": 41.0,
        "balance": -12.5,
        "has_mortgage": True,
        "segment": "affluent",
        "churn_signal_at": 5.0,
    }
    assert result.known and result.defaulted == () and result.stale == ()


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("age", 200),
        ("age", "forty"),
        ("age", True),
        ("has_mortgage", "maybe"),
        ("has_mortgage", 2),
        ("segment", "premium"),
        ("balance", float("inf")),
        ("age", [41]),
    ],
)
def test_invalid_values_fall_back_to_the_default_and_are_listed(name: str, bad: object) -> None:
    result = validate_features(SPECS, "c1", snapshot({"age": 30, name: bad}), NOW)
    default = next(s.default for s in SPECS if s.name == name)
    assert result.values[name] == default
    assert name in result.defaulted


@dataclass(frozen=True, slots=True)
class EventFeatureSpec(FeatureSpec):
    """A spec with the `source` the feature schema declares (`source: event`)."""

    source: str = "event"


def test_missing_batch_features_are_defaulted_but_missing_event_features_are_normal() -> None:
    specs = (*SPECS, EventFeatureSpec("card_declined_count", FeatureType.NUMBER, 0, minimum=0))
    result = validate_features(specs, "c1", snapshot({"age": 30, "segment": "", "balance": float("nan")}), NOW)
    assert result.values["has_mortgage"] is False
    assert result.values["card_declined_count"] == 0
    assert set(result.defaulted) == {"balance", "has_mortgage", "segment", "churn_signal_at"}


def test_an_invalid_event_feature_is_defaulted() -> None:
    specs = (EventFeatureSpec("card_declined_count", FeatureType.NUMBER, 0, minimum=0),)
    result = validate_features(specs, "c1", snapshot({"card_declined_count": -3}), NOW)
    assert result.values["card_declined_count"] == 0
    assert result.defaulted == ("card_declined_count",)


def test_unknown_customer_gets_all_defaults_and_lists_them_as_defaulted() -> None:
    specs = (*SPECS, EventFeatureSpec("card_declined_count", FeatureType.NUMBER, 0, minimum=0))
    result = validate_features(specs, "new", CustomerSnapshot("new", None), NOW)
    assert not result.known
    assert result.customer_id == "new"
    assert result.values == {
        "age": 40.0,
        "balance": 0.0,
        "has_mortgage": False,
        "segment": "mass",
        "churn_signal_at": None,
        "card_declined_count": 0.0,
    }
    # Every batch feature came from its default, as for a known customer with nothing stored; an event
    # feature's absence is normal (no event happened), so it is not listed.
    assert result.defaulted == ("age", "balance", "has_mortgage", "segment", "churn_signal_at")
    assert result.stale == ()


def test_windowed_counts_are_counted_at_the_decision_time_and_win_over_a_stored_value() -> None:
    specs = (*SPECS, EventFeatureSpec("transfers_30d", FeatureType.NUMBER, 0, minimum=0))
    counted = WindowedCount(30 * DAY, (NOW - 30 * DAY, NOW - 29 * DAY, NOW - DAY, NOW + 1))
    stored = CustomerSnapshot("c1", {"age": 30, "transfers_30d": 9}, {"*": NOW}, windowed={"transfers_30d": counted})
    now = validate_features(specs, "c1", stored, NOW)
    # 30 days old is out of the window; a time just after `now` is clock skew between replicas and counts.
    assert now.values["transfers_30d"] == 3 and "transfers_30d" not in now.defaulted
    assert validate_features(specs, "c1", stored, NOW + 28 * DAY).values["transfers_30d"] == 2
    assert validate_features(specs, "c1", stored, NOW + 60 * DAY).values["transfers_30d"] == 0


def test_a_windowed_count_over_the_features_maximum_is_defaulted_as_any_bad_value() -> None:
    specs = (EventFeatureSpec("logins_7d", FeatureType.NUMBER, 0, minimum=0, maximum=2),)
    counted = {"logins_7d": WindowedCount(7 * DAY, (NOW - 3, NOW - 2, NOW - 1))}
    result = validate_features(specs, "c1", CustomerSnapshot("c1", {}, windowed=counted), NOW)
    assert result.values["logins_7d"] == 0 and result.defaulted == ("logins_7d",)


def test_stale_uses_the_feature_time_else_the_batch_time() -> None:
    stored = {"age": 41, "balance": 10, "has_mortgage": True, "segment": "mass"}
    batch_5_days_ago = validate_features(SPECS, "c1", snapshot(stored, {"*": NOW - 5 * DAY}), NOW)
    assert batch_5_days_ago.stale == ("balance",)
    own_time = validate_features(SPECS, "c1", snapshot(stored, {"*": NOW - 8 * DAY, "balance": NOW - DAY}), NOW)
    assert own_time.stale == ("has_mortgage",)


def test_a_value_exactly_at_its_maximum_age_is_not_stale() -> None:
    result = validate_features(SPECS, "c1", snapshot({"balance": 1}, {"*": NOW - 3 * DAY}), NOW)
    assert "balance" not in result.stale


def test_without_any_time_nothing_is_stale() -> None:
    result = validate_features(SPECS, "c1", snapshot({"age": 41}, {}), NOW)
    assert result.stale == ()


def test_defaulted_features_are_not_also_stale() -> None:
    result = validate_features(SPECS, "c1", snapshot({"balance": "oops"}, {"*": NOW - 30 * DAY}), NOW)
    assert "balance" in result.defaulted and "balance" not in result.stale


def test_the_compiled_schema_is_reused_for_the_same_specs() -> None:
    assert compile_schema(SPECS) is compile_schema(SPECS)
    assert compile_schema(SPECS) is not compile_schema(list(SPECS))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_are_kept_exactly_when_within_range(x: float) -> None:
    coerce = number_coercer(-1e6, 1e6)
    expected = x if -1e6 <= x <= 1e6 else INVALID
    assert coerce(x) == expected or coerce(x) is expected
    assert coerce(repr(x)) == coerce(x) or coerce(repr(x)) is coerce(x)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        ("TRUE", True),
        ("y", True),
        (1, True),
        ("1", True),
        (1.0, True),
        (False, False),
        ("No", False),
        ("0", False),
        (0, False),
        (None, None),
        ("", None),
    ],
)
def test_bool_spellings(raw: object, expected: bool | None) -> None:
    assert coerce_bool(raw) is expected


def test_batch_validation_cleans_columns_and_reports() -> None:
    report = LoadReport()
    columns = {
        "customer_id": ["c1", "c2", None, " c4 "],
        "age": ["41", "300", "50", None],
        "has_mortgage": ["Y", "n", "x", "1"],
        "segment": ["mass", "gold", "mass", "student"],
        "favourite_colour": ["red", "blue", "green", "red"],
    }
    rows = validate_columns(SPECS, columns, report)
    assert [cid for cid, _ in rows] == ["c1", "c2", "c4"]
    assert rows[0][1] == {
        "age": 41.0,
        "balance": None,
        "has_mortgage": True,
        "segment": "mass",
        "churn_signal_at": None,
    }
    assert rows[1][1]["age"] is None and rows[1][1]["segment"] is None  # rejected: stored as missing
    assert report.rows == 4 and report.loaded == 3 and report.rows_rejected == 1
    assert report.rejected == {"age": 1, "has_mortgage": 1, "segment": 1}
    assert report.defaulted["age"] == 2  # one rejected, one missing
    assert report.defaulted["balance"] == 4
    assert report.samples == {"age": ["300"], "has_mortgage": ["x"], "segment": ["gold"]}
    assert report.missing_columns == {"balance", "churn_signal_at"}
    assert report.unknown_columns == {"favourite_colour"}


def test_a_batch_file_without_event_feature_columns_does_not_report_them() -> None:
    report = LoadReport()
    specs = (*SPECS[:1], EventFeatureSpec("card_declined_count", FeatureType.NUMBER, 0, minimum=0))
    rows = validate_columns(specs, {"customer_id": ["c1"], "age": [30]}, report)
    assert rows == [("c1", {"age": 30.0})]
    assert report.missing_columns == set() and not report.defaulted


def test_batch_reports_accumulate_and_keep_a_few_samples() -> None:
    report = LoadReport()
    for batch in range(3):
        ids = [f"c{batch}-{i}" for i in range(4)]
        validate_columns(SPECS, {"customer_id": ids, "age": ["-1", "-2", "-3", "20"]}, report)
    assert report.rows == 12 and report.loaded == 12
    assert report.rejected["age"] == 9
    assert report.samples["age"] == ["-1", "-2", "-3", "-1", "-2"]
    summary = report.summary()
    assert summary["rejected"] == {"age": 9}
    assert summary["samples"]["age"][0] == "'-1'"


@given(
    st.lists(
        st.one_of(st.floats(), st.integers(-(10**6), 10**6), st.sampled_from([16.0, 110.0, 15.999, 110.001])),
        max_size=40,
    )
)
def test_a_numeric_array_column_is_cleaned_as_the_same_values_one_by_one(values: list[float]) -> None:
    one_by_one, at_once = LoadReport(), LoadReport()
    ids = [f"c{i}" for i in range(len(values))]
    expected = validate_columns(SPECS[:1], {"customer_id": ids, "age": values}, one_by_one)
    array = np.array(values, dtype=np.float64)
    assert validate_columns(SPECS[:1], {"customer_id": ids, "age": array}, at_once) == expected
    assert (at_once.rejected, at_once.defaulted) == (one_by_one.rejected, one_by_one.defaulted)


def test_a_numeric_array_column_reports_samples_and_rejects_infinity() -> None:
    report = LoadReport()
    ages = np.array([41, 200, np.nan, np.inf, 16], dtype=np.float64)
    rows = validate_columns(SPECS[:1], {"customer_id": list("abcde"), "age": ages}, report)
    assert [values["age"] for _, values in rows] == [41.0, None, None, None, 16.0]
    assert report.rejected["age"] == 2 and report.defaulted["age"] == 3
    assert report.samples["age"] == [200.0, np.inf]


def test_rejected_values_loaded_then_read_are_still_reported_as_defaulted() -> None:
    report = LoadReport()
    [(customer_id, values)] = validate_columns(SPECS, {"customer_id": ["c1"], "age": ["999"]}, report)
    result = validate_features(SPECS, customer_id, snapshot(values), NOW)
    assert "age" in result.defaulted
    assert not math.isnan(result.values["age"])
