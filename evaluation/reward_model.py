"""The doubly robust estimator's reward model, fitted by cross-fitting.

The rows are split into K folds (whole decisions stay in one fold when `groups` is given); the model used
for a row is the one fitted on the other K-1 folds, so no row is predicted by a model that saw its reward
(the bias that an in-sample reward model would bring into DR). The model is LightGBM (binary log loss for
0/1 rewards, L2 otherwise), small and regularised: it only has to lower the variance of DR, which stays
unbiased whatever the model when the logging probabilities are right.

>>> fitted = cross_fit(x, reward, groups=decision_ids, folds=5)   # doctest: +SKIP
>>> q_logged = fitted.predict(x, fitted.fold)                      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

DEFAULT_FOLDS = 5
_PARAMS = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "lambda_l2": 1.0,
    "verbose": -1,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
}
_ROUNDS = 100


@dataclass(frozen=True)
class _Constant:
    """A fold whose training rewards are all equal (no model to fit): it predicts that value."""

    value: float

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.full(len(x), self.value)


@dataclass(frozen=True)
class CrossFitted:
    """The K fold models, and the fold of every row they were fitted from."""

    fold: NDArray[np.intp]
    models: tuple[lgb.Booster | _Constant, ...]

    def predict(self, x: NDArray[np.float64], fold: NDArray[np.intp]) -> NDArray[np.float64]:
        """Predict each row of `x` with the model that did not see fold `fold[i]` (rows of other offers
        for a logged row take that row's fold)."""
        out = np.empty(len(x))
        for k, model in enumerate(self.models):
            rows = fold == k
            if rows.any():
                out[rows] = model.predict(x[rows])
        return out


def cross_fit(
    x: NDArray[np.float64],
    reward: NDArray[np.float64],
    *,
    groups: Sequence[object] | NDArray | None = None,
    folds: int = DEFAULT_FOLDS,
    categorical: Sequence[int] = (),
    seed: int = 0,
) -> CrossFitted:
    """Fit one model per fold on the other folds. Raises ValueError when there are fewer than two groups."""
    fold = _folds(len(x), groups, folds, seed)
    binary = bool(np.isin(reward, (0.0, 1.0)).all())
    models = tuple(_fit(x[fold != k], reward[fold != k], binary, categorical, seed) for k in range(int(fold.max()) + 1))
    return CrossFitted(fold, models)


def _folds(rows: int, groups: Sequence[object] | NDArray | None, folds: int, seed: int) -> NDArray[np.intp]:
    labels = np.arange(rows) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    labels = labels.reshape(-1)
    count = int(labels.max()) + 1
    if count < 2:
        raise ValueError("the reward model needs at least two decisions to cross-fit")
    k = min(folds, count)
    # Groups are dealt to folds in a random order, evenly: every fold has a share of each period.
    order = np.random.default_rng(seed).permutation(count)
    fold_of_group = np.empty(count, dtype=np.intp)
    fold_of_group[order] = np.arange(count) % k
    return fold_of_group[labels]


def _fit(
    x: NDArray[np.float64], reward: NDArray[np.float64], binary: bool, categorical: Sequence[int], seed: int
) -> lgb.Booster | _Constant:
    if np.all(reward == reward[0]):
        return _Constant(float(reward[0]))
    params = {**_PARAMS, "objective": "binary" if binary else "regression", "seed": seed}
    data = lgb.Dataset(x, reward, categorical_feature=list(categorical) or "auto", free_raw_data=True)
    return lgb.train(params, data, num_boost_round=_ROUNDS)
