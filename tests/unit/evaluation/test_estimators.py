"""The off-policy estimators on cases computed by hand (in the comments), extreme weights, clipping, the
grouped bootstrap's coverage, and the refusal of bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.estimators import Estimates, Interval, estimate

# w = target / logging = [2, 2, 0.5, 0]; w r = [2, 0, 0.5, 0].
REWARD = [1.0, 0.0, 1.0, 0.0]
LOGGING = [0.5, 0.25, 1.0, 0.5]
TARGET = [1.0, 0.5, 0.5, 0.0]
Q_LOGGED = [0.25, 0.25, 0.25, 0.25]
Q_TARGET = [0.4, 0.4, 0.4, 0.4]


def test_ips_snips_and_diagnostics_by_hand():
    result = estimate(REWARD, LOGGING, TARGET, bootstrap=50)
    assert result.ips.estimate == pytest.approx(2.5 / 4, abs=1e-12)
    assert result.snips.estimate == pytest.approx(2.5 / 4.5, abs=1e-12)
    assert result.dr is None
    assert result.rows == 4
    assert result.effective_sample_size == pytest.approx(4.5**2 / (4 + 4 + 0.25), abs=1e-12)
    assert result.max_weight == 2.0
    assert (result.clipped_at, result.clipped_rows) == (None, 0)


def test_doubly_robust_by_hand():
    # Per row q_target + w (r - q_logged): 0.4 + 2*0.75, 0.4 - 2*0.25, 0.4 + 0.5*0.75, 0.4 + 0.
    result = estimate(REWARD, LOGGING, TARGET, q_logged=Q_LOGGED, q_target=Q_TARGET, bootstrap=50)
    assert result.dr is not None
    assert result.dr.estimate == pytest.approx((1.9 - 0.1 + 0.775 + 0.4) / 4, abs=1e-12)


def test_clipping_applies_to_all_three_and_is_reported():
    # min(w, 1) = [1, 1, 0.5, 0]: w r = [1, 0, 0.5, 0]; DR rows 0.4 + 0.75, 0.4 - 0.25, 0.775, 0.4.
    result = estimate(REWARD, LOGGING, TARGET, q_logged=Q_LOGGED, q_target=Q_TARGET, clip=1.0, bootstrap=50)
    assert result.ips.estimate == pytest.approx(1.5 / 4, abs=1e-12)
    assert result.snips.estimate == pytest.approx(1.5 / 2.5, abs=1e-12)
    assert result.dr is not None and result.dr.estimate == pytest.approx((1.15 + 0.15 + 0.775 + 0.4) / 4, abs=1e-12)
    assert result.effective_sample_size == pytest.approx(2.5**2 / 2.25, abs=1e-12)
    assert result.max_weight == 2.0, "the largest weight is reported before clipping"
    assert (result.clipped_at, result.clipped_rows) == (1.0, 2)


def test_one_huge_weight_dominates_ips_but_not_snips():
    # One row with w = 1e6 and r = 1 among 999 rows with w = 1 and r = 0.
    reward = [1.0] + [0.0] * 999
    logging = [1e-6] + [0.5] * 999
    target = [1.0] + [0.5] * 999
    result = estimate(reward, logging, target, bootstrap=200)
    assert result.ips.estimate == pytest.approx(1e6 / 1000, rel=1e-12)
    assert result.snips.estimate == pytest.approx(1e6 / (1e6 + 999), rel=1e-12)
    assert result.effective_sample_size == pytest.approx((1e6 + 999) ** 2 / (1e12 + 999), rel=1e-12)
    assert result.max_weight == pytest.approx(1e6, rel=1e-12)
    # The resamples without the huge row estimate 0: the interval spans it, it does not hide it.
    assert result.ips.low == 0.0 and result.ips.high >= result.ips.estimate


def test_one_huge_weight_clipped():
    reward = [1.0] + [0.0] * 999
    result = estimate(reward, [1e-6] + [0.5] * 999, [1.0] + [0.5] * 999, clip=10.0, bootstrap=50)
    assert result.ips.estimate == pytest.approx(10 / 1000, rel=1e-12)
    assert result.snips.estimate == pytest.approx(10 / 1009, rel=1e-12)
    assert result.clipped_rows == 1


def test_all_zero_rewards_estimate_zero_with_a_zero_interval():
    result = estimate([0, 0, 0], [0.2, 0.5, 1.0], [1.0, 0.1, 0.3], q_logged=[0, 0, 0], q_target=[0, 0, 0])
    for interval in (result.ips, result.snips, result.dr):
        assert interval == Interval(0.0, 0.0, 0.0)


def test_a_target_that_never_picks_a_logged_offer():
    result = estimate([1, 1, 0], [0.5, 0.5, 0.5], [0, 0, 0], bootstrap=20)
    assert result.ips == Interval(0.0, 0.0, 0.0)
    assert result.snips == Interval(0.0, 0.0, 0.0), "no weight, no evidence: 0 (not NaN)"
    assert result.effective_sample_size == 0.0


def test_on_policy_logs_estimate_the_mean_reward():
    rng = np.random.default_rng(3)
    reward = rng.binomial(1, 0.3, 500).astype(float)
    probability = rng.uniform(0.1, 1.0, 500)
    result = estimate(reward, probability, probability, bootstrap=300)
    assert result.ips.estimate == pytest.approx(reward.mean(), abs=1e-12)
    assert result.snips.estimate == pytest.approx(reward.mean(), abs=1e-12)
    assert result.effective_sample_size == pytest.approx(500, abs=1e-9)
    assert result.ips.low < reward.mean() < result.ips.high


def test_the_bootstrap_is_reproducible_by_seed():
    rng = np.random.default_rng(4)
    reward, logging = rng.binomial(1, 0.4, 200), rng.uniform(0.2, 1.0, 200)
    target = rng.uniform(0.0, 1.0, 200)
    first = estimate(reward, logging, target, seed=7, bootstrap=100)
    assert estimate(reward, logging, target, seed=7, bootstrap=100) == first
    assert estimate(reward, logging, target, seed=8, bootstrap=100).ips != first.ips


def _correlated_decisions(rng: np.random.Generator, decisions: int, per_decision: int) -> dict[str, np.ndarray]:
    """Decisions whose presented offers share one response (the whole decision is accepted or not), logged
    with probability 0.5 and targeted with probability 1 or 0: the true value is the mean acceptance, 0.3."""
    accepted = rng.binomial(1, rng.beta(3, 7, decisions))
    rows = decisions * per_decision
    return {
        "reward": np.repeat(accepted, per_decision).astype(float),
        "logging_probability": np.full(rows, 0.5),
        "target_probability": rng.integers(0, 2, rows).astype(float),
        "groups": np.repeat(np.arange(decisions), per_decision),
    }


def _coverage(grouped: bool, trials: int = 200) -> float:
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(trials):
        data = _correlated_decisions(rng, decisions=60, per_decision=6)
        groups = data.pop("groups") if grouped else data.pop("groups") * 0 + np.arange(360)
        interval = estimate(**data, groups=groups, bootstrap=200, seed=trial).ips
        covered += interval.low <= 0.3 <= interval.high
    return covered / trials


def test_the_grouped_bootstrap_covers_the_true_value_of_correlated_decisions():
    assert 0.88 <= _coverage(grouped=True) <= 0.99


def test_resampling_rows_of_correlated_decisions_would_under_cover():
    # Why `groups` exists: rows of one decision are not independent, so a row bootstrap is too narrow.
    assert _coverage(grouped=False) < 0.85


def test_groups_may_be_strings():
    result = estimate([1, 0, 1], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], groups=["a", "a", "b"], bootstrap=50)
    assert result.ips.estimate == pytest.approx(2 / 3)


def test_to_json_shape():
    result = estimate(REWARD, LOGGING, TARGET, q_logged=Q_LOGGED, q_target=Q_TARGET, clip=1.5, bootstrap=20)
    document = result.to_json()
    assert set(document) >= {"ips", "snips", "dr", "rows", "effective_sample_size", "max_weight", "clipping"}
    assert set(document["ips"]) == {"estimate", "low", "high"}
    assert document["clipping"] == {"clipped_at": 1.5, "clipped_rows": 2}
    assert isinstance(result, Estimates)
    assert estimate(REWARD, LOGGING, TARGET, bootstrap=20).to_json()["dr"] is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"reward": [1, math.nan, 0]}, "reward: row 1 is not a finite number"),
        ({"logging_probability": [0.5, 0.0, 0.5]}, r"logging_probability: row 1 is outside \(0, 1\]"),
        ({"logging_probability": [0.5, 0.5, 1.2]}, r"logging_probability: row 2 is outside \(0, 1\]"),
        ({"target_probability": [-0.1, 0.5, 0.5]}, r"target_probability: row 0 is outside \[0, 1\]"),
        ({"target_probability": [0.5, math.inf, 0.5]}, "target_probability: row 1 is not a finite number"),
        ({"target_probability": [0.5, 0.5]}, "target_probability: has 2 rows but reward has 3"),
        ({"reward": ["1", "yes", "0"]}, "reward: not numeric"),
        ({"q_logged": [0.1, 0.1, 0.1]}, "needs both q_logged and q_target"),
        ({"q_logged": [0.1, 0.1, 0.1], "q_target": [0.1, math.nan, 0.1]}, "q_target: row 1"),
        ({"clip": 0.0}, "clip: must be a positive number"),
        ({"bootstrap": 0}, "bootstrap: must be a positive number"),
        ({"groups": [1, 2]}, "groups: has 2 rows but reward has 3"),
        ({"reward": [], "logging_probability": [], "target_probability": []}, "reward: no rows"),
    ],
)
def test_bad_input_is_refused_naming_the_column_and_row(arguments: dict, message: str):
    columns = {"reward": [1, 0, 1], "logging_probability": [0.5, 0.5, 0.5], "target_probability": [1, 0, 1]}
    columns.update(arguments)
    with pytest.raises(ValueError, match=message):
        estimate(**columns)
