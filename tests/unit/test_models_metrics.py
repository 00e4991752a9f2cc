"""Offline metrics and probability calibration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.calibration import Calibration, _pool_adjacent_violators, fit_calibration, fit_isotonic, fit_platt
from models.metrics import auc, calibration_error, log_loss, summary


def brute_force_auc(y: np.ndarray, s: np.ndarray) -> float:
    pairs = [(a, b) for a, b in itertools.product(range(len(y)), repeat=2) if y[a] == 1 and y[b] == 0]
    return sum(1.0 if s[a] > s[b] else 0.5 if s[a] == s[b] else 0.0 for a, b in pairs) / len(pairs)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=30))
def test_auc_equals_the_pairwise_definition_with_ties(rows):
    y = np.array([int(a) for a, _ in rows])
    s = np.array([float(b) for _, b in rows])
    if y.min() == y.max():
        assert np.isnan(auc(y, s))
    else:
        assert auc(y, s) == pytest.approx(brute_force_auc(y, s))


def test_auc_of_a_perfect_and_a_reversed_ranking():
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(y, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0


def test_log_loss_matches_the_formula_and_survives_hard_zeros():
    assert log_loss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    assert np.isfinite(log_loss(np.array([1]), np.array([0.0])))


def test_calibration_error_is_zero_when_each_bin_matches_and_grows_with_bias():
    y = np.array([0, 1] * 50)
    assert calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert calibration_error(y, np.full(100, 0.8)) == pytest.approx(0.3)


def test_summary_reports_every_metric():
    s = summary(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.7]))
    assert s["auc"] == 1.0 and s["rows"] == 4 and s["positive_rate"] == 0.5


def distorted_sample(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True probabilities, labels drawn from them, and an over-confident monotone distortion."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.0, 0.4, n)
    labels = (rng.random(n) < truth).astype(float)
    return truth, labels, truth**2 * 2.5


def test_isotonic_calibration_repairs_a_monotone_distortion():
    truth, labels, raw = distorted_sample()
    fitted = fit_isotonic(labels[:10_000], raw[:10_000])
    calibrated = fitted.apply(raw[10_000:])
    assert calibration_error(labels[10_000:], calibrated) < calibration_error(labels[10_000:], raw[10_000:]) / 3
    assert np.mean(np.abs(calibrated - truth[10_000:])) < 0.02
    assert np.all(np.diff(fitted.y) >= 0)


def test_isotonic_calibration_keeps_the_order_and_never_reaches_zero():
    _, labels, raw = distorted_sample(seed=1)
    fitted = fit_isotonic(labels, raw)
    grid = np.linspace(0, 1, 101)
    out = fitted.apply(grid)
    assert np.all(np.diff(out) >= 0) and out.min() > 0 and out.max() < 1


def test_platt_calibration_recovers_a_logistic_distortion():
    rng = np.random.default_rng(2)
    z = rng.normal(-2, 1, 40_000)
    labels = (rng.random(len(z)) < 1 / (1 + np.exp(-(0.5 * z - 1)))).astype(float)
    fitted = fit_platt(labels, 1 / (1 + np.exp(-z)))
    a, b = fitted.x
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-1, abs=0.1)


def test_pool_adjacent_violators_pools_by_weight():
    fitted = _pool_adjacent_violators(np.array([0.1, 0.3, 0.2, 0.5]), np.array([1.0, 1.0, 3.0, 1.0]))
    assert fitted.tolist() == pytest.approx([0.1, 0.225, 0.225, 0.5])


def test_calibration_round_trips_through_its_dict():
    _, labels, raw = distorted_sample(2_000)
    for method in ("isotonic", "platt", "identity"):
        fitted = fit_calibration(labels, raw, method)
        again = Calibration.from_dict(fitted.to_dict())
        assert np.array_equal(again.apply(raw), fitted.apply(raw))


def test_identity_and_empty_fits_change_nothing():
    p = np.array([0.1, 0.7])
    assert np.array_equal(Calibration.identity().apply(p), p)
    assert np.array_equal(fit_isotonic(np.array([]), np.array([])).apply(p), p)


def test_a_small_calibration_set_keeps_the_models_ranking():
    # 90 rows: too few for isotonic bins (one bin would map every prediction to one rate, AUC 0.5).
    labels = np.array([1, 0, 0] * 30)
    raw = np.where(labels == 1, 0.99, 0.01) + np.linspace(0, 0.001, 90)
    fitted = fit_calibration(labels, raw, "isotonic")
    calibrated = fitted.apply(raw)
    assert fitted.kind == "platt"
    assert calibrated[labels == 1].min() > calibrated[labels == 0].max()
    assert fit_calibration(np.tile(labels, 4), np.tile(raw, 4), "isotonic").kind == "isotonic"  # 360 rows
