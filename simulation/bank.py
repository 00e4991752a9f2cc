"""The simulated bank's customers: hidden needs, and the observable features they drive.

Each customer has five latent needs, independent standard normals: `borrow` (short of money), `wealth`
(saving and investing), `family` (settling down: a home, children), `travel` (spends on travel) and
`digital` (lives online). The features of `simulation/catalogue/features.yaml` are noisy functions of them,
so that a model reading the features can recover most, never all, of each need; `simulation.truth`
turns the needs (not the features) into response probabilities.

>>> bank = generate_bank(3, seed=1)
>>> len(bank.ids), sorted(bank.features[0])[:3]
(3, ['age', 'app_logins_30d', 'balance_current'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decisioning.types import FeatureValue

NEEDS = ("borrow", "wealth", "family", "travel", "digital")


@dataclass(frozen=True)
class Bank:
    """The customers: ids, hidden needs (rows of `NEEDS`) and observable features, in the same order."""

    ids: tuple[str, ...]
    needs: np.ndarray  # (customers, len(NEEDS))
    features: tuple[dict[str, FeatureValue], ...]

    def index(self) -> dict[str, int]:
        """Customer id -> row."""
        return {cid: i for i, cid in enumerate(self.ids)}

    def need(self, name: str) -> np.ndarray:
        return self.needs[:, NEEDS.index(name)]


def generate_bank(customers: int, seed: int) -> Bank:
    """`customers` customers, the same for the same seed."""
    rng = np.random.default_rng([seed, 1])
    needs = rng.standard_normal((customers, len(NEEDS)))
    columns = _feature_columns(rng, needs)
    names = list(columns)
    rows = tuple(
        {name: _plain(columns[name][i]) for name in names} for i in range(customers)
    )
    ids = tuple(f"s-{i:07d}" for i in range(customers))
    return Bank(ids, needs, rows)


def _feature_columns(rng: np.random.Generator, needs: np.ndarray) -> dict[str, np.ndarray]:
    borrow, wealth, family, travel, digital = needs.T
    n = len(needs)

    def noise(sd: float = 1.0) -> np.ndarray:
        return rng.standard_normal(n) * sd

    age = np.clip(42 + 8 * family + 5 * wealth - 4 * digital + noise(5), 18, 95).round()
    columns: dict[str, np.ndarray] = {
        "age": age,
        "income_monthly": np.exp(7.9 + 0.35 * wealth + 0.1 * family + noise(0.15)).round(),
        "balance_current": (1500 * (0.6 * wealth - 0.9 * borrow + noise(0.3))).round(),
        "balance_savings": np.maximum(np.exp(8.3 + 1.1 * wealth - 0.5 * borrow + noise(0.3)) - 2500, 0).round(),
        "overdraft_days_90d": np.clip(90 / (1 + np.exp(-(1.6 * borrow - 1.8 + noise(0.3)))), 0, 90).round(),
        "credit_score": np.clip(680 + 40 * wealth - 45 * borrow + noise(20), 300, 850).round(),
        "card_spend_30d": np.exp(6.2 + 0.5 * travel + 0.25 * wealth + noise(0.25)).round(),
        "travel_spend_90d": np.maximum(np.exp(5.8 + 1.0 * travel + noise(0.25)) - 250, 0).round(),
        "app_logins_30d": rng.poisson(np.exp(1.6 + 0.8 * digital)).astype(float),
        "mortgage_calc_visits_30d": rng.poisson(np.exp(0.2 + 1.0 * family + 0.2 * wealth)).astype(float),
        "tenure_months": np.clip(rng.exponential(70, n) + 2 * (age - 18), 0, 900).round(),
        "has_credit_card": rng.random(n) < _sigmoid(0.6 * travel + 0.3 * wealth - 0.3),
        "homeowner": rng.random(n) < _sigmoid(2.0 * family + 0.5 * wealth),
        "has_children": rng.random(n) < _sigmoid(2.0 * family - 0.3),
        "marketing_consent": rng.random(n) < 0.7,
    }
    columns["has_mortgage"] = columns["homeowner"] & (rng.random(n) < 0.45)
    columns["segment"] = np.where(
        age < 28, "young", np.where(age >= 66, "senior", np.where(wealth + noise(0.4) > 1.0, "affluent", "mass"))
    )
    return columns


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _plain(value: object) -> FeatureValue:
    """A numpy scalar as the plain Python value the feature store keeps."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.floating | np.integer):
        return float(value)
    return str(value)
