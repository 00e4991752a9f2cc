"""Plain log files (CSV or Parquet) for the estimators, so that they can be checked against other tools.

One row per (decision, presented offer). Columns:
- `reward` (0/1 or a number), `logging_probability` in (0, 1], `target_probability` in [0, 1]: required;
- `position`, `decision_id`: optional (`decision_id` makes the bootstrap resample whole decisions);
- `q_logged` and `q_target`: optional, both or neither: DR with the caller's reward model;
- any other column is a *context feature* (`offer_id` excepted: it names the action, not the context):
  without `q_logged`/`q_target`, DR fits its own baseline m(x) of the reward from those features by
  cross-fitting and uses q_logged = q_target = m(x). A file of presented offers says the target's
  probability of the logged offer only, not of the others, so a model of the reward per offer could not
  be averaged over the target's choice; a baseline that does not depend on the offer needs no such
  average, and DR stays unbiased provided the target presents some offer at every logged row's position
  (its probabilities there sum to 1). See docs/evaluation.md.

>>> result = evaluate_log(Path("log.csv"), bootstrap=1000)   # doctest: +SKIP
>>> result.estimates.snips.estimate                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from evaluation.estimators import Estimates, estimate
from evaluation.reward_model import cross_fit

REQUIRED = ("reward", "logging_probability", "target_probability")
OPTIONAL = ("position", "decision_id", "q_logged", "q_target")
NOT_FEATURES = frozenset({*REQUIRED, *OPTIONAL, "offer_id"})


class LogFileError(ValueError):
    """A log file that cannot be evaluated: the message names the column (and row) at fault."""


@dataclass(frozen=True)
class LogEvaluation:
    """The estimates of a log file, and how DR got its reward model."""

    estimates: Estimates
    reward_model: str  # "given" (q_logged, q_target), "cross-fitted baseline on N features", or "none"

    def to_json(self) -> dict[str, object]:
        return {**self.estimates.to_json(), "reward_model": self.reward_model}


def read_log(path: Path) -> pa.Table:
    """The file as an Arrow table: Parquet by its suffix (.parquet, .pq), CSV otherwise."""
    if not path.is_file():
        raise LogFileError(f"log file {path}: not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as csv

        return csv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise LogFileError(f"log file {path}: cannot be read ({str(error).splitlines()[0]})") from None


def evaluate_log(
    path: Path, *, clip: float | None = None, bootstrap: int = 1000, seed: int = 0, folds: int = 5
) -> LogEvaluation:
    """Read, check and evaluate a log file (see the module doc). Raises LogFileError on bad input."""
    table = read_log(path)
    missing = [name for name in REQUIRED if name not in table.column_names]
    if missing:
        raise LogFileError(f"log file {path}: missing column '{missing[0]}' (needs {', '.join(REQUIRED)})")
    columns = {name: numeric(table, name) for name in REQUIRED}
    groups = _labels(table, "decision_id")
    q, described = _reward_model(table, columns["reward"], groups, folds, seed)
    try:
        estimates = estimate(**columns, **q, clip=clip, groups=groups, bootstrap=bootstrap, seed=seed)
    except ValueError as error:
        raise LogFileError(str(error)) from None
    return LogEvaluation(estimates, described)


def numeric(table: pa.Table, name: str) -> NDArray[np.float64]:
    """A column as floats (nulls as NaN, refused later as not finite); a text cell names its row."""
    column = table.column(name)
    try:
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for row, cell in enumerate(column.to_pylist()):
            try:
                float(cell)
            except (TypeError, ValueError):
                raise LogFileError(f"{name}: row {row} is not a number ({cell!r})") from None
        raise LogFileError(f"{name}: not numeric") from None


def _labels(table: pa.Table, name: str) -> NDArray | None:
    if name not in table.column_names:
        return None
    values = table.column(name).to_pylist()
    if any(v is None for v in values):
        row = next(i for i, v in enumerate(values) if v is None)
        raise LogFileError(f"{name}: row {row} is empty")
    return np.asarray([str(v) for v in values])


def _reward_model(
    table: pa.Table, reward: NDArray[np.float64], groups: NDArray | None, folds: int, seed: int
) -> tuple[dict[str, NDArray[np.float64]], str]:
    given = [name for name in ("q_logged", "q_target") if name in table.column_names]
    if len(given) == 1:
        missing = "q_target" if given == ["q_logged"] else "q_logged"
        raise LogFileError(f"missing column '{missing}': DR needs both q_logged and q_target")
    if given:
        return {"q_logged": numeric(table, "q_logged"), "q_target": numeric(table, "q_target")}, "given"
    features = [name for name in table.column_names if name not in NOT_FEATURES]
    if not features or not np.isfinite(reward).all():
        return {}, "none"  # no model (a non-finite reward is refused with its row by the estimator)
    x, categorical = _design(table, features)
    fitted = cross_fit(x, reward, groups=groups, folds=folds, categorical=categorical, seed=seed)
    baseline = fitted.predict(x, fitted.fold)
    return {"q_logged": baseline, "q_target": baseline}, f"cross-fitted baseline on {len(features)} features"


def _design(table: pa.Table, features: list[str]) -> tuple[NDArray[np.float64], list[int]]:
    """Numbers as they are, anything else as category codes (nulls as NaN, which LightGBM handles)."""
    out, categorical = [], []
    for i, name in enumerate(features):
        column = table.column(name)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            out.append(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
            continue
        values = column.to_pylist()
        codes = {v: float(c) for c, v in enumerate(sorted({str(v) for v in values if v is not None}))}
        out.append(np.array([np.nan if v is None else codes[str(v)] for v in values]))
        categorical.append(i)
    return np.column_stack(out), categorical
