"""Probability calibration: a monotone map from the model's raw probability to an observed rate.

Fitted on a holdout the trees never saw (boosted trees are confident on their own training rows), and
applied after every prediction. Two kinds:
- `isotonic`: the reliability curve on equal-count bins, made monotone by pool-adjacent-violators and
  applied with `np.interp` (piecewise linear between bin centres, flat beyond the ends);
- `platt`: a logistic fit on the raw log-odds, `sigmoid(a * logit(p) + b)`, smoother with few positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Calibration:
    """A fitted monotone map. `identity()` changes nothing.

    >>> Calibration("isotonic", (0.1, 0.5), (0.05, 0.4)).apply(np.array([0.3]))
    array([0.225])
    """

    kind: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    @classmethod
    def identity(cls) -> Calibration:
        return cls("identity")

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape as the input, kept inside (0, 1)."""
        p = np.asarray(probabilities, dtype=float)
        if self.kind == "isotonic":
            return np.interp(p, self.x, self.y)
        if self.kind == "platt":
            a, b = self.x
            return _sigmoid(a * _logit(p) + b)
        return p

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(data["kind"], tuple(data.get("x", ())), tuple(data.get("y", ())))


def fit_isotonic(labels: np.ndarray, probabilities: np.ndarray, bins: int = 20) -> Calibration:
    """Fit the binned isotonic map; at least ~50 rows per bin so that each rate means something.

    >>> cal = fit_isotonic(np.array([0, 0, 1, 1] * 50), np.array([0.1, 0.2, 0.3, 0.4] * 50), bins=4)
    >>> bool(np.all(np.diff(cal.y) >= 0))
    True
    """
    y, p = np.asarray(labels, dtype=float), np.asarray(probabilities, dtype=float)
    if len(p) == 0:
        return Calibration.identity()
    n_bins = max(1, min(bins, len(p) // 50))
    chunks = [c for c in np.array_split(np.argsort(p, kind="mergesort"), n_bins) if len(c)]
    centres = np.array([p[c].mean() for c in chunks])
    weights = np.array([len(c) for c in chunks], dtype=float)
    rates = _pool_adjacent_violators(np.array([y[c].mean() for c in chunks]), weights)
    rates = np.clip(rates, _EPS, 1 - _EPS)  # never a hard 0: an offer always keeps some chance
    return Calibration("isotonic", tuple(centres.tolist()), tuple(rates.tolist()))


def _pool_adjacent_violators(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted non-decreasing fit of `values` (one value per input position)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.repeat([b[0] for b in blocks], [b[2] for b in blocks])


def fit_platt(labels: np.ndarray, probabilities: np.ndarray, iterations: int = 50) -> Calibration:
    """Fit `sigmoid(a * logit(p) + b)` by Newton's method on the log loss (a tiny ridge keeps it stable).

    >>> cal = fit_platt(np.array([0, 1] * 100), np.full(200, 0.2))
    >>> round(float(cal.apply(np.array([0.2]))[0]), 3)
    0.5
    """
    y = np.asarray(labels, dtype=float)
    z = _logit(np.asarray(probabilities, dtype=float))
    design = np.column_stack([z, np.ones_like(z)])
    theta = np.array([1.0, 0.0])
    for _ in range(iterations):
        q = _sigmoid(design @ theta)
        hessian = design.T @ (design * (q * (1 - q))[:, None]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, design.T @ (q - y) + 1e-6 * theta)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return Calibration("platt", (float(theta[0]), float(theta[1])))


MIN_ISOTONIC_BINS = 5  # fewer bins than this flattens the ranking into a few steps (one bin: a constant)


def fit_calibration(labels: np.ndarray, probabilities: np.ndarray, method: str = "isotonic") -> Calibration:
    """Fit the named calibration kind ("isotonic", "platt" or "identity").

    Isotonic needs ~50 rows per bin; on fewer than `MIN_ISOTONIC_BINS` bins' worth of rows it would map
    every prediction to a handful of rates (or one), throwing away what the model ranks. Platt scaling is
    monotone with two parameters, so it keeps the ranking on small calibration sets: it is used there.
    """
    if method == "isotonic" and len(probabilities) >= 50 * MIN_ISOTONIC_BINS:
        return fit_isotonic(labels, probabilities)
    if method in ("isotonic", "platt"):
        return fit_platt(labels, probabilities)
    return Calibration.identity()


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))  # no overflow warning at the extremes
