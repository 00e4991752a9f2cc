"""`nbo train`'s model: a time split, early stopping, global vs per-offer, calibration, promotion.

Rows are split by time thresholds (rows of one instant stay together, so a later pass over
`[test_from, until)` reads exactly the test rows again): the oldest 70% train, the next 15% calibrate,
the newest 15% are the holdout every figure is measured on. Inside the training part the newest seventh
stops the boosting early (validation log loss, 50 rounds of patience); the trees are fitted on the rest.

The global model (offer, group, channel and intent as features) is compared with one model per offer on
the same holdout, both calibrated on the same rows, by calibrated log loss (AUC reported beside it). The
registry and `LightGBMScorer` serve one LightGBM model, so the global model is what is registered; when
per-offer models win, the metadata and the report say so (`comparison.better`), and serving them is
future work.

Promotion (`--promote-if-better`): the new model and the champion both score the holdout (the champion
through its own encoder and calibration, its unknown offers by their catalogue prior); the new model is
promoted only when its calibrated log loss is strictly lower, compared to 1e-6 (a tie does not promote).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np

from models.calibration import Calibration, fit_calibration
from models.dataset import TrainingSet
from models.metadata import ModelMetadata
from models.metrics import log_loss, summary
from models.training import PER_OFFER_CONFIG, TrainingConfig, per_offer_predictions

EARLY_STOPPING_ROUNDS = 50
TIE = 1e-6


@dataclass(frozen=True, slots=True)
class TimeSplit:
    """Boolean row masks and the times that separate them."""

    fit: np.ndarray
    early_stop: np.ndarray
    calibration: np.ndarray
    test: np.ndarray
    calibration_from: float
    test_from: float

    def describe(self, at: np.ndarray) -> dict[str, Any]:
        def span(mask: np.ndarray) -> dict[str, Any]:
            return {"rows": int(mask.sum()), "from": _min(at[mask]), "until": _max(at[mask])}

        parts = ("fit", "early_stop", "calibration", "test")
        return {name: span(getattr(self, name)) for name in parts}


def split_by_time(at: np.ndarray, calibration_fraction: float = 0.15, test_fraction: float = 0.15) -> TimeSplit:
    """Masks by time thresholds taken at the quantiles of `at` (see the module doc).

    >>> s = split_by_time(np.arange(20.0), 0.15, 0.15)
    >>> int(s.fit.sum()), int(s.early_stop.sum()), int(s.calibration.sum()), int(s.test.sum())
    (12, 2, 3, 3)
    """
    ordered = np.sort(at, kind="mergesort")
    n = len(ordered)
    pick = (lambda q: float(ordered[min(n - 1, round(n * q))])) if n else (lambda q: 0.0)
    test_from = pick(1 - test_fraction)
    cal_from = pick(1 - test_fraction - calibration_fraction)
    train_part = 1 - test_fraction - calibration_fraction
    stop_from = pick(train_part * 6 / 7)
    train = at < cal_from
    return TimeSplit(
        fit=train & (at < stop_from),
        early_stop=train & (at >= stop_from),
        calibration=(at >= cal_from) & (at < test_from),
        test=at >= test_from,
        calibration_from=cal_from,
        test_from=test_from,
    )


@dataclass(frozen=True)
class Candidate:
    """A trained, calibrated global model with everything the report and the registry need."""

    booster: lgb.Booster
    best_iteration: int
    calibration: Calibration
    split: TimeSplit
    test_probabilities: np.ndarray
    test_raw: np.ndarray
    per_offer_probabilities: np.ndarray
    offers_with_own_model: int
    metrics: dict[str, Any] = field(default_factory=dict)

    def model_text(self) -> str:
        return self.booster.model_to_string(num_iteration=self.best_iteration)


def fit_with_early_stopping(data: TrainingSet, split: TimeSplit, config: TrainingConfig) -> tuple[lgb.Booster, int]:
    """Boost up to `config.num_trees` rounds, stopping when the early-stop rows' log loss stops improving."""
    categorical = data.encoder.categorical_indices
    params = {**config.lightgbm_params(int(split.fit.sum())), "metric": "binary_logloss"}
    fit = lgb.Dataset(data.x[split.fit], data.y[split.fit], categorical_feature=categorical, free_raw_data=True)
    callbacks = []
    valid_sets = []
    if split.early_stop.any():
        valid = fit.create_valid(data.x[split.early_stop], data.y[split.early_stop])
        valid_sets = [valid]
        callbacks = [lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)]
    booster = lgb.train(params, fit, num_boost_round=config.num_trees, valid_sets=valid_sets, callbacks=callbacks)
    best = booster.best_iteration or booster.current_iteration()
    return booster, int(best)


def train_candidate(data: TrainingSet, config: TrainingConfig | None = None) -> Candidate:
    """Train, calibrate and measure the global model, and the per-offer models beside it (module doc)."""
    config = config or TrainingConfig(num_trees=1000)
    split = split_by_time(data.at, config.calibration_fraction, config.test_fraction)
    booster, best = fit_with_early_stopping(data, split, config)
    cal = data.subset(np.flatnonzero(split.calibration))
    test = data.subset(np.flatnonzero(split.test))
    calibration = _calibrate(booster, best, cal, config.calibration)
    raw = _predict(booster, best, test.x)
    calibrated = calibration.apply(raw)
    train = data.subset(np.flatnonzero(split.fit | split.early_stop))
    per_offer, own = per_offer_predictions(train, cal, test, PER_OFFER_CONFIG)
    metrics = {
        "holdout": summary(test.y, calibrated),
        "holdout_raw": summary(test.y, raw),
        "comparison": _comparison(test.y, calibrated, per_offer, own),
        "early_stopping": {"best_iteration": best, "max_trees": config.num_trees},
        "split": split.describe(data.at),
    }
    return Candidate(booster, best, calibration, split, calibrated, raw, per_offer, own, metrics)


def _comparison(y: np.ndarray, global_p: np.ndarray, per_offer_p: np.ndarray, own: int) -> dict[str, Any]:
    g, p = summary(y, global_p), summary(y, per_offer_p)
    better = "per_offer" if p["log_loss"] < g["log_loss"] - TIE else "global"
    return {
        "metric": "holdout log loss (calibrated)",
        "global": g,
        "per_offer": p,
        "offers_with_own_model": own,
        "better": better,
        "served": "global",  # LightGBMScorer serves one model (see the module doc)
    }


def _calibrate(booster: lgb.Booster, best: int, rows: TrainingSet, method: str) -> Calibration:
    if len(rows) == 0:
        return Calibration.identity()
    return fit_calibration(rows.y, _predict(booster, best, rows.x), method)


def _predict(booster: lgb.Booster, best: int, x: np.ndarray) -> np.ndarray:
    return booster.predict(x, num_iteration=best, num_threads=1) if len(x) else np.empty(0)


def candidate_metadata(
    name: str, data: TrainingSet, candidate: Candidate, config: TrainingConfig, extra: dict[str, Any]
) -> ModelMetadata:
    """The metadata registered with the candidate (unversioned: the registry assigns the version)."""
    fitted = candidate.split.fit
    return ModelMetadata(
        name=name,
        encoder=data.encoder,
        calibration=candidate.calibration,
        offer_ids=tuple(sorted(set(data.offer_ids[fitted].tolist()))),
        metrics={**candidate.metrics, **extra},
        training_rows=int(fitted.sum()),
        params={**asdict(replace(config)), "split": "time", "source": "history", "trees": candidate.best_iteration},
    )


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    promote: bool
    reason: str
    new_log_loss: float
    champion_log_loss: float | None
    rows: int


def decide_promotion(
    y: np.ndarray, new_p: np.ndarray, champion_p: np.ndarray | None, champion: str | None
) -> PromotionDecision:
    """Promote only when the new model's calibrated holdout log loss is strictly lower (module doc).

    >>> decide_promotion(np.array([0, 1]), np.array([0.2, 0.8]), np.array([0.2, 0.8]), "v1").promote
    False
    """
    new = log_loss(y, new_p)
    if champion_p is None or champion is None:
        return PromotionDecision(False, "no champion to compare with: not promoted", new, None, len(y))
    if len(y) == 0:
        return PromotionDecision(False, "empty holdout: not promoted", new, None, 0)
    old = log_loss(y, champion_p)
    if new < old - TIE:
        why = f"holdout log loss {new:.6f} < champion {champion}'s {old:.6f} on {len(y)} rows: promoted"
        return PromotionDecision(True, why, new, old, len(y))
    why = f"holdout log loss {new:.6f} is not below champion {champion}'s {old:.6f} on {len(y)} rows: not promoted"
    return PromotionDecision(False, why, new, old, len(y))


def _min(values: np.ndarray) -> float | None:
    return float(values.min()) if len(values) else None


def _max(values: np.ndarray) -> float | None:
    return float(values.max()) if len(values) else None
