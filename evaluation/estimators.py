"""Off-policy value estimators: IPS, self-normalised IPS and doubly robust, with bootstrap intervals.

Pure numpy, no I/O. One row per (decision, presented offer); per row the importance weight is
w = target_probability / logging_probability, optionally clipped to min(w, clip). Then

    IPS   = mean(w r)
    SNIPS = sum(w r) / sum(w)                      (pooled over all rows; 0 when sum(w) = 0)
    DR    = mean(q_target + w (r - q_logged))

which are the definitions of Open Bandit Pipeline's InverseProbabilityWeighting,
SelfNormalizedInverseProbabilityWeighting and DoublyRobust (with `lambda_` = clip). The 95% interval of
each is the percentile bootstrap: resample rows (or whole `groups`, e.g. decisions, when given) with
replacement `bootstrap` times and take the 2.5th and 97.5th percentiles of the re-computed estimate.

    >>> result = estimate([1, 0, 1], [0.5, 0.5, 1.0], [1.0, 0.0, 1.0], bootstrap=200)
    >>> round(result.ips.estimate, 6)   # (2*1 + 0 + 1*1) / 3
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Bootstrap replicates are computed in blocks so that a block's index matrix stays around this many cells
# (a few tens of MB) whatever the number of rows.
_BOOTSTRAP_BLOCK_CELLS = 1_000_000
_INTERVAL_PERCENTILES = (2.5, 97.5)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Estimates:
    """The three estimates of a target policy's value per row, and the diagnostics of the weights."""

    ips: Interval
    snips: Interval
    dr: Interval | None
    rows: int
    effective_sample_size: float
    max_weight: float
    clipped_at: float | None
    clipped_rows: int

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict: {"ips": {...}, "snips": {...}, "dr": {...} | None, "rows", ..., "clipping"}."""
        return {
            "ips": self.ips.to_json(),
            "snips": self.snips.to_json(),
            "dr": self.dr.to_json() if self.dr is not None else None,
            "rows": self.rows,
            "effective_sample_size": self.effective_sample_size,
            "max_weight": self.max_weight,
            "clipping": {"clipped_at": self.clipped_at, "clipped_rows": self.clipped_rows},
        }


@dataclass(frozen=True)
class _Columns:
    reward: NDArray[np.float64]
    weight: NDArray[np.float64]
    q_logged: NDArray[np.float64] | None
    q_target: NDArray[np.float64] | None


def estimate(
    reward: ArrayLike,
    logging_probability: ArrayLike,
    target_probability: ArrayLike,
    *,
    q_logged: ArrayLike | None = None,
    q_target: ArrayLike | None = None,
    clip: float | None = None,
    groups: ArrayLike | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> Estimates:
    """Estimate the target policy's value per row from logged rows (see the module docstring).

    `q_logged` (the reward model's prediction for the logged offer) and `q_target` (its expectation under
    the target policy) are both needed for DR; without them `dr` is None. `clip` caps each weight at that
    value (all three estimators use the clipped weights). `groups` labels rows that belong together (a
    decision's presented offers): the bootstrap then resamples whole groups. Raises ValueError naming the
    column and its first bad row when the input is invalid.
    """
    columns = _validated(reward, logging_probability, target_probability, q_logged, q_target)
    _check_options(clip, bootstrap)
    raw_weight = columns.weight
    used = _clipped(raw_weight, clip)
    columns = _Columns(columns.reward, used, columns.q_logged, columns.q_target)
    sums = _row_sums(columns)
    group_sums = _grouped(sums, _group_index(groups, len(used)))
    replicates = _bootstrap(group_sums, bootstrap, np.random.default_rng(seed))
    return Estimates(
        ips=_interval(_ips(sums.sum(axis=0)), _ips(replicates)),
        snips=_interval(_snips(sums.sum(axis=0)), _snips(replicates)),
        dr=None if columns.q_logged is None else _interval(_dr(sums.sum(axis=0)), _dr(replicates)),
        rows=len(used),
        effective_sample_size=_effective_sample_size(used),
        max_weight=float(raw_weight.max()),
        clipped_at=clip,
        clipped_rows=0 if clip is None else int(np.count_nonzero(raw_weight > clip)),
    )


def importance_weights(logging_probability: ArrayLike, target_probability: ArrayLike) -> NDArray[np.float64]:
    """w = target / logging per row, after the same checks as `estimate`."""
    logging = _column("logging_probability", logging_probability)
    target = _column("target_probability", target_probability)
    _same_length({"logging_probability": logging, "target_probability": target})
    _check_probabilities(logging, target)
    return target / logging


# --- validation -------------------------------------------------------------------------------------


def _validated(
    reward: ArrayLike,
    logging_probability: ArrayLike,
    target_probability: ArrayLike,
    q_logged: ArrayLike | None,
    q_target: ArrayLike | None,
) -> _Columns:
    if (q_logged is None) != (q_target is None):
        raise ValueError("doubly robust needs both q_logged and q_target (got only one)")
    named = {
        "reward": _column("reward", reward),
        "logging_probability": _column("logging_probability", logging_probability),
        "target_probability": _column("target_probability", target_probability),
    }
    if q_logged is not None and q_target is not None:
        named["q_logged"] = _column("q_logged", q_logged)
        named["q_target"] = _column("q_target", q_target)
    _same_length(named)
    _check_probabilities(named["logging_probability"], named["target_probability"])
    weight = named["target_probability"] / named["logging_probability"]
    return _Columns(named["reward"], weight, named.get("q_logged"), named.get("q_target"))


def _column(name: str, values: ArrayLike) -> NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: not numeric ({error})") from None
    if array.ndim != 1:
        raise ValueError(f"{name}: expected one value per row, got an array of shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: no rows")
    _refuse_where(name, ~np.isfinite(array), array, "is not a finite number")
    return array


def _same_length(named: dict[str, NDArray[np.float64]]) -> None:
    first_name, first = next(iter(named.items()))
    for name, array in named.items():
        if len(array) != len(first):
            raise ValueError(f"{name}: has {len(array)} rows but {first_name} has {len(first)}")


def _check_probabilities(logging: NDArray[np.float64], target: NDArray[np.float64]) -> None:
    _refuse_where("logging_probability", (logging <= 0) | (logging > 1), logging, "is outside (0, 1]")
    _refuse_where("target_probability", (target < 0) | (target > 1), target, "is outside [0, 1]")


def _refuse_where(name: str, bad: NDArray[np.bool_], values: NDArray[np.float64], reason: str) -> None:
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{name}: row {row} {reason} ({values[row]!r})")


def _check_options(clip: float | None, bootstrap: int) -> None:
    if clip is not None and not (np.isfinite(clip) and clip > 0):
        raise ValueError(f"clip: must be a positive number, got {clip!r}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int | np.integer) or bootstrap < 1:
        raise ValueError(f"bootstrap: must be a positive number of resamples, got {bootstrap!r}")


def _group_index(groups: ArrayLike | Sequence[object] | None, rows: int) -> NDArray[np.intp]:
    if groups is None:
        return np.arange(rows)
    labels = np.asarray(groups)
    if labels.ndim != 1 or len(labels) != rows:
        raise ValueError(f"groups: has {len(labels)} rows but reward has {rows}")
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


# --- the estimators as functions of summed columns --------------------------------------------------
# Every estimator is a ratio of sums over rows, so a bootstrap replicate only needs the sums of the
# resampled groups: columns are [rows, w r, w, q_target + w (r - q_logged)].


def _row_sums(columns: _Columns) -> NDArray[np.float64]:
    weighted_reward = columns.weight * columns.reward
    if columns.q_logged is None or columns.q_target is None:
        doubly_robust = np.zeros_like(weighted_reward)
    else:
        doubly_robust = columns.q_target + columns.weight * (columns.reward - columns.q_logged)
    return np.column_stack([np.ones_like(weighted_reward), weighted_reward, columns.weight, doubly_robust])


def _grouped(sums: NDArray[np.float64], group: NDArray[np.intp]) -> NDArray[np.float64]:
    count = int(group.max()) + 1
    return np.column_stack([np.bincount(group, weights=sums[:, j], minlength=count) for j in range(sums.shape[1])])


def _ips(totals: NDArray[np.float64]) -> NDArray[np.float64] | float:
    return totals[..., 1] / totals[..., 0]


def _snips(totals: NDArray[np.float64]) -> NDArray[np.float64] | float:
    # A target that gives no weight to any logged row has no evidence: 0, as IPS says in that case.
    weight = totals[..., 2]
    return np.divide(totals[..., 1], weight, out=np.zeros_like(weight), where=weight > 0)


def _dr(totals: NDArray[np.float64]) -> NDArray[np.float64] | float:
    return totals[..., 3] / totals[..., 0]


def _effective_sample_size(weight: NDArray[np.float64]) -> float:
    squares = float(np.sum(weight * weight))
    return float(np.sum(weight)) ** 2 / squares if squares > 0 else 0.0


def _clipped(weight: NDArray[np.float64], clip: float | None) -> NDArray[np.float64]:
    return weight if clip is None else np.minimum(weight, clip)


# --- bootstrap ---------------------------------------------------------------------------------------


def _bootstrap(group_sums: NDArray[np.float64], replicates: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """The column totals of `replicates` resamples (with replacement) of the groups: (replicates, 4)."""
    groups = len(group_sums)
    block = max(1, _BOOTSTRAP_BLOCK_CELLS // groups)
    totals = []
    for start in range(0, replicates, block):
        picks = rng.integers(0, groups, size=(min(block, replicates - start), groups))
        totals.append(group_sums[picks].sum(axis=1))
    return np.concatenate(totals)


def _interval(point: float | NDArray[np.float64], replicates: NDArray[np.float64] | float) -> Interval:
    low, high = np.percentile(np.asarray(replicates), _INTERVAL_PERCENTILES)
    return Interval(estimate=float(point), low=float(low), high=float(high))
