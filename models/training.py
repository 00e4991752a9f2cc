"""Train, calibrate, evaluate and register the global LightGBM propensity model.

The rows are split by time, never at random: the model is trained on the oldest 70%, calibrated on the
next 15% and evaluated on the newest 15%, which is how it will be used (trained on the past, serving the
future). The registered model is the one trained on the oldest 70%, so that its calibration and its
holdout metrics describe exactly the trees that serve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from models.calibration import Calibration, fit_calibration
from models.dataset import TrainingSet
from models.metadata import ModelMetadata
from models.metrics import auc, summary
from models.registry import ModelRegistry

PARALLEL_ROWS = 200_000


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    num_trees: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    # None: one thread below PARALLEL_ROWS rows, two above. Measured on the demo (36k rows, 2 cores
    # shared with other work): 1 thread 1.4-2.7 s, 2 threads 7-11 s; OpenMP threads spin-wait at every
    # tree level and lose badly when the cores are busy, and small data gains nothing from them.
    num_threads: int | None = None
    calibration: str = "isotonic"  # or "platt", or "identity"
    calibration_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 7

    def lightgbm_params(self, rows: int) -> dict[str, Any]:
        threads = self.num_threads or (1 if rows < PARALLEL_ROWS else 2)
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "num_threads": threads,
            "seed": self.seed,
            "deterministic": True,
            "verbose": -1,
        }


@dataclass(frozen=True)
class TrainedModel:
    booster: lgb.Booster
    metadata: ModelMetadata

    def model_text(self) -> str:
        return self.booster.model_to_string()


@dataclass(frozen=True, slots=True)
class Split:
    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray


def time_split(at: np.ndarray, calibration_fraction: float, test_fraction: float) -> Split:
    """Row indices split by time: oldest for training, then calibration, newest for the test.

    >>> s = time_split(np.array([5.0, 1.0, 3.0, 2.0, 4.0]), 0.2, 0.2)
    >>> s.train.tolist(), s.calibration.tolist(), s.test.tolist()
    ([1, 3, 2], [4], [0])
    """
    order = np.argsort(at, kind="mergesort")
    n = len(order)
    n_test, n_cal = round(n * test_fraction), round(n * calibration_fraction)
    return Split(order[: n - n_cal - n_test], order[n - n_cal - n_test : n - n_test], order[n - n_test :])


def fit_booster(x: np.ndarray, y: np.ndarray, categorical: list[int], config: TrainingConfig) -> lgb.Booster:
    """A LightGBM binary model with `config.num_trees` trees."""
    data = lgb.Dataset(x, y, categorical_feature=categorical, free_raw_data=True)
    return lgb.train(config.lightgbm_params(len(y)), data, num_boost_round=config.num_trees)


def train_model(data: TrainingSet, name: str, config: TrainingConfig | None = None) -> TrainedModel:
    """Train on the oldest rows, calibrate on the next, measure on the newest; metadata is unversioned.

    >>> trained = train_model(training_set, "nbo")   # doctest: +SKIP
    >>> trained.metadata.metrics["holdout"]["auc"]    # doctest: +SKIP
    0.78
    """
    config = config or TrainingConfig()
    split = time_split(data.at, config.calibration_fraction, config.test_fraction)
    train = data.subset(split.train)
    booster = fit_booster(train.x, train.y, data.encoder.categorical_indices, config)
    calibration = _calibrate(booster, data.subset(split.calibration), config)
    metrics = _holdout_metrics(booster, calibration, data.subset(split.test))
    metadata = ModelMetadata(
        name=name,
        encoder=data.encoder,
        calibration=calibration,
        offer_ids=tuple(sorted(set(train.offer_ids.tolist()))),
        metrics=metrics,
        training_rows=len(train),
        params={**asdict(config), "split": "time"},
    )
    return TrainedModel(booster, metadata)


def _calibrate(booster: lgb.Booster, rows: TrainingSet, config: TrainingConfig) -> Calibration:
    if len(rows) == 0:
        return Calibration.identity()
    return fit_calibration(rows.y, _predict(booster, rows.x), config.calibration)


def _holdout_metrics(booster: lgb.Booster, calibration: Calibration, test: TrainingSet) -> dict[str, Any]:
    raw = _predict(booster, test.x)
    return {"holdout": summary(test.y, calibration.apply(raw)), "holdout_raw": summary(test.y, raw)}


def _predict(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    return booster.predict(x, num_threads=1) if len(x) else np.empty(0)


def train_and_register(
    registry: ModelRegistry, data: TrainingSet, name: str, config: TrainingConfig | None = None
) -> ModelMetadata:
    """Train a model and store it as a new version (the champion if it is the model's first).

    >>> meta = train_and_register(ModelRegistry("var/models"), training_set, "nbo")  # doctest: +SKIP
    """
    trained = train_model(data, name, config)
    return registry.register(trained.model_text(), trained.metadata)


def holdout_auc(metadata: ModelMetadata) -> float | None:
    """The calibrated holdout AUC stored with a version (None when it could not be measured)."""
    holdout: Mapping[str, Any] = metadata.metrics.get("holdout", {})
    return holdout.get("auc")


@dataclass(frozen=True, slots=True)
class Comparison:
    """Holdout AUC of one global model and of one model per offer, on the same time split.

    `*_auc` pools every test row (what arbitration across offers needs: comparable probabilities);
    `*_within_offer_auc` averages the AUC inside each offer (ranking customers for one offer).
    """

    global_auc: float
    per_offer_auc: float
    global_within_offer_auc: float
    per_offer_within_offer_auc: float
    test_rows: int
    offers_with_own_model: int


# A per-offer model sees ~1/N of the rows: the global model's 200 trees of 31 leaves overfit it
# (demo: pooled AUC 0.66 with them, 0.79 with this smaller configuration).
PER_OFFER_CONFIG = TrainingConfig(num_trees=50, num_leaves=7, min_data_in_leaf=20)


def compare_global_vs_per_offer(
    data: TrainingSet,
    config: TrainingConfig | None = None,
    per_offer_config: TrainingConfig = PER_OFFER_CONFIG,
    min_positives: int = 20,
) -> Comparison:
    """Train both designs on the same split; both are Platt-calibrated on the same calibration rows.

    An offer with fewer than `min_positives` training positives gets its smoothed base rate instead
    of a model of its own (a per-offer model cannot learn from less). Platt, not isotonic: it keeps the
    ranking within small offers.

    >>> compare_global_vs_per_offer(demo_training_set(history, catalogue)).global_auc  # doctest: +SKIP
    0.796
    """
    config = config or TrainingConfig()
    split = time_split(data.at, config.calibration_fraction, config.test_fraction)
    train, cal, test = data.subset(split.train), data.subset(split.calibration), data.subset(split.test)
    booster = fit_booster(train.x, train.y, data.encoder.categorical_indices, config)
    global_p = fit_calibration(cal.y, _predict(booster, cal.x), "platt").apply(_predict(booster, test.x))
    per_offer_p, own = _PerOffer(train, cal, per_offer_config, min_positives).predict(test)
    return Comparison(
        global_auc=auc(test.y, global_p),
        per_offer_auc=auc(test.y, per_offer_p),
        global_within_offer_auc=_within_offer_auc(test, global_p),
        per_offer_within_offer_auc=_within_offer_auc(test, per_offer_p),
        test_rows=len(test),
        offers_with_own_model=own,
    )


class _PerOffer:
    """One model per offer, on the customer, channel and intent columns (the offer columns are constant)."""

    def __init__(self, train: TrainingSet, cal: TrainingSet, config: TrainingConfig, min_positives: int) -> None:
        self.train, self.cal, self.config, self.min_positives = train, cal, config, min_positives
        nf = train.encoder.n_features
        self.columns = [*range(nf), *range(nf + 2, train.x.shape[1])]
        self.categorical = [self.columns.index(i) for i in train.encoder.categorical_indices if i in self.columns]

    def predict(self, test: TrainingSet) -> tuple[np.ndarray, int]:
        out, own = np.empty(len(test)), 0
        for offer in np.unique(test.offer_ids):
            rows = test.offer_ids == offer
            out[rows], has_model = self._offer(offer, test.x[rows][:, self.columns])
            own += has_model
        return out, own

    def _offer(self, offer: str, x: np.ndarray) -> tuple[np.ndarray, bool]:
        t, c = self.train.offer_ids == offer, self.cal.offer_ids == offer
        positives = self.train.y[t].sum()
        if positives < self.min_positives:
            return np.full(len(x), (positives + 1) / (t.sum() + 2)), False  # Laplace-smoothed rate
        booster = fit_booster(self.train.x[t][:, self.columns], self.train.y[t], self.categorical, self.config)
        platt = fit_calibration(self.cal.y[c], _predict(booster, self.cal.x[c][:, self.columns]), "platt")
        return platt.apply(_predict(booster, x)), True


def _within_offer_auc(test: TrainingSet, p: np.ndarray) -> float:
    values = [auc(test.y[m], p[m]) for m in (test.offer_ids == o for o in np.unique(test.offer_ids))]
    values = [v for v in values if v == v]  # offers with one class in the test have no AUC
    return float(np.mean(values)) if values else float("nan")


def per_offer_predictions(
    train: TrainingSet,
    cal: TrainingSet,
    test: TrainingSet,
    config: TrainingConfig = PER_OFFER_CONFIG,
    min_positives: int = 20,
) -> tuple[np.ndarray, int]:
    """Platt-calibrated test probabilities of one model per offer (an offer with fewer than
    `min_positives` training positives gets its smoothed rate), and how many offers had a model."""
    if len(test) == 0:
        return np.empty(0), 0
    return _PerOffer(train, cal, config, min_positives).predict(test)
