"""Offline metrics of a propensity model on a holdout: ranking (AUC), fit (log loss) and calibration.

Implemented with numpy so that evaluation needs nothing beyond the training stack.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted as half); NaN when one class is absent.

    >>> auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y = np.asarray(labels, dtype=bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=float))
    u = ranks[y].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with tied values sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2.0  # mean of the 1-based positions start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy, probabilities clipped away from 0 and 1.

    >>> round(log_loss(np.array([1, 0]), np.array([0.9, 0.1])), 4)
    0.1054
    """
    y = np.asarray(labels, dtype=float)
    p = np.clip(np.asarray(probabilities, dtype=float), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted mean |observed rate - mean prediction| over
    equal-count bins of the prediction (equal-count, because response rates are small and skewed).

    >>> calibration_error(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5]), bins=2)
    0.0
    """
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    if len(p) == 0:
        return float("nan")
    chunks = np.array_split(np.argsort(p, kind="mergesort"), min(bins, len(p)))
    gaps = [abs(y[c].mean() - p[c].mean()) * len(c) for c in chunks if len(c)]
    return float(sum(gaps) / len(p))


def summary(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """The holdout metrics the registry stores with a model version.

    >>> sorted(summary(np.array([0, 1]), np.array([0.2, 0.7])))
    ['auc', 'calibration_error', 'log_loss', 'mean_prediction', 'positive_rate', 'rows']
    """
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    return {
        "auc": auc(y, p),
        "log_loss": log_loss(y, p),
        "calibration_error": calibration_error(y, p),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_prediction": float(p.mean()) if len(p) else float("nan"),
        "rows": float(len(y)),
    }
