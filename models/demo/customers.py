"""Synthetic customers of the demo bank, with correlated features.

Age drives the rest: it sets the segment (students are young, seniors old), the income (low for
students, peaking in mid-life, a pension after 65) and the products held; balances follow income;
a low credit score goes with arrears. About 80% gave marketing consent and 3% asked not to be contacted.
Real-time event features are mostly missing, with some recent values (a churn signal, mortgage
calculator visits, a declined card, the last salary...), consistent with `models.demo.events`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from decisioning.types import DAY, FeatureValue
from models.encoding import SpecLike

Columns = dict[str, np.ndarray]
CHUNK = 1_000
REGIONS = ("north", "south", "east", "west", "capital")
REGION_SHARES = (0.18, 0.2, 0.17, 0.15, 0.3)
PRODUCTS = (
    "has_credit_card", "has_gold_card", "has_mortgage", "has_personal_loan", "has_overdraft",
    "has_savings_account", "has_investment_account", "has_pension_plan", "has_home_insurance",
    "has_travel_insurance", "has_life_insurance",
)  # fmt: skip


def generate_customers(
    n: int, specs: Sequence[SpecLike], seed: int = 0, now: float | None = None
) -> list[tuple[str, dict[str, FeatureValue]]]:
    """`n` customers with ids "c-000001"... and a value for every feature in `specs`, as of `now`.

    A feature the generator does not know gets its spec's default; numbers are kept inside the spec's
    range, so every row passes the feature loader's validation.

    >>> from models.encoding import ColumnSpec
    >>> generate_customers(2, [ColumnSpec("age", "number")], seed=1)[0][0]
    'c-000001'
    """
    now = time.time() if now is None else now
    rows: list[dict[str, FeatureValue]] = []
    for chunk in range(-(-n // CHUNK)):
        rows += _chunk(specs, np.random.default_rng([seed, chunk]), now)
    return [(f"c-{i + 1:06d}", row) for i, row in enumerate(rows[:n])]


def _chunk(specs: Sequence[SpecLike], rng: np.random.Generator, now: float) -> list[dict[str, FeatureValue]]:
    """One block of customers. Blocks have a fixed size and their own random stream, so customer
    c-000042 is the same person in a demo of 100 customers and in one of 100,000."""
    columns = _batch_columns(rng, CHUNK)
    columns.update(_event_columns(rng, columns, now))
    rows: list[dict[str, FeatureValue]] = [{} for _ in range(CHUNK)]
    for spec in specs:
        for row, value in zip(rows, _spec_values(spec, columns, CHUNK), strict=True):
            row[spec.name] = value
    return rows


def _spec_values(spec: SpecLike, columns: Columns, n: int) -> list[FeatureValue]:
    column = columns.get(spec.name)
    default = getattr(spec, "default", None)
    if column is None:
        return [default] * n
    if str(spec.type) == "number" and column.dtype != object:
        low, high = getattr(spec, "minimum", None), getattr(spec, "maximum", None)
        column = np.clip(column, -np.inf if low is None else low, np.inf if high is None else high)
    return [_python(v) for v in column.tolist()]


def _python(value: Any) -> FeatureValue:
    if isinstance(value, float) and value != value:
        return None  # NaN marks a missing event feature
    return value


def _batch_columns(rng: np.random.Generator, n: int) -> Columns:
    c: Columns = {"age": np.clip(np.round(rng.normal(44, 17, n)), 16, 95)}
    c["segment"] = _segments(rng, c["age"])
    c["income_monthly"] = _incomes(rng, c["age"], c["segment"])
    c["segment"] = _income_segments(c["segment"], c["income_monthly"])
    c.update(_money(rng, c["age"], c["income_monthly"]))
    c.update(_products(rng, c))
    c.update(_standing(rng, c["income_monthly"], n))
    c.update(_digital(rng, c["age"], n))
    c["tenure_months"] = np.floor(rng.uniform(0, 1, n) * np.minimum((c["age"] - 15) * 12, 480))
    c["region"] = rng.choice(np.array(REGIONS, dtype=object), n, p=REGION_SHARES)
    c["num_products"] = 1 + sum(c[k].astype(float) for k in PRODUCTS)  # 1: the current account
    return c


def _segments(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    segment = np.full(len(age), "mass", dtype=object)
    segment[age < 30] = "young_adult"
    segment[(age < 25) & (rng.random(len(age)) < 0.7)] = "student"
    segment[age >= 65] = "senior"
    return segment


def _incomes(rng: np.random.Generator, age: np.ndarray, segment: np.ndarray) -> np.ndarray:
    # Median income peaks in the fifties; students live on a small allowance, seniors on a pension.
    median = 1400 + 3200 * np.exp(-(((age - 52) / 18) ** 2))
    median = np.where(segment == "student", 550, np.where(segment == "senior", 2000, median))
    return np.round(median * rng.lognormal(0, 0.45, len(age)), -1)


def _income_segments(segment: np.ndarray, income: np.ndarray) -> np.ndarray:
    out = segment.copy()
    working = segment == "mass"
    out[working & (income > 4500)] = "affluent"
    out[working & (income > 8000)] = "private"
    return out


def _money(rng: np.random.Generator, age: np.ndarray, income: np.ndarray) -> Columns:
    n = len(age)
    current = np.round(income * rng.lognormal(-0.3, 0.8, n) - (rng.random(n) < 0.08) * income * 0.5, 2)
    saver = rng.random(n) < np.clip(0.35 + (age - 30) / 100 + income / 20_000, 0.1, 0.95)
    savings = np.where(saver, np.round(income * (age - 14) * 0.2 * rng.lognormal(0, 1.0, n), 2), 0.0)
    spend = np.round(income * rng.uniform(0.05, 0.5, n) * (rng.random(n) < 0.85), 2)
    return {"balance_current": current, "balance_savings": savings, "card_spend_30d": spend}


def _products(rng: np.random.Generator, c: Columns) -> Columns:
    age, income, n = c["age"], c["income_monthly"], len(c["age"])
    draws = iter(rng.random((12, n)))  # one fresh uniform draw per product
    u = draws.__next__
    card = u() < np.clip(0.15 + income / 8000 + (age > 25) * 0.15, 0.05, 0.85)
    mortgage = (age >= 27) & (age <= 67) & (u() < np.clip(income / 9000, 0.05, 0.6))
    homeowner = mortgage | ((age > 50) & (u() < 0.5))
    children = (age >= 28) & (age <= 58) & (u() < 0.55)
    return {
        "has_credit_card": card,
        "has_gold_card": card & (income > 4000) & (u() < 0.35),
        "has_mortgage": mortgage,
        "homeowner": homeowner,
        "has_children": children,
        "has_personal_loan": u() < np.where(income < 2500, 0.16, 0.08),
        "has_overdraft": u() < np.where(income < 2000, 0.3, 0.12),
        "has_savings_account": c["balance_savings"] > 0,
        "has_investment_account": u() < np.where(income > 4500, 0.35, 0.05),
        "has_pension_plan": (age >= 28) & (age < 67) & (u() < 0.3),
        "has_home_insurance": homeowner & (u() < 0.6),
        "has_travel_insurance": u() < 0.18,
        "has_life_insurance": children & (u() < 0.45),
    }


def _standing(rng: np.random.Generator, income: np.ndarray, n: int) -> Columns:
    arrears = rng.random(n) < np.where(income < 1500, 0.1, 0.03)
    score = np.where(arrears, rng.normal(520, 45, n), rng.normal(660, 55, n) + np.minimum(income, 10_000) / 200)
    return {
        "in_arrears": arrears,
        "in_collections": arrears & (rng.random(n) < 0.3),
        "credit_score": np.clip(np.round(score), 300, 850),
        "marketing_consent": rng.random(n) < 0.8,
        "do_not_contact": rng.random(n) < 0.03,
        "is_resident": rng.random(n) < 0.97,
    }


def _digital(rng: np.random.Generator, age: np.ndarray, n: int) -> Columns:
    active = rng.random(n) < np.clip(1.05 - age / 100, 0.3, 0.95)
    logins = np.where(active & (rng.random(n) < 0.8), rng.poisson(14, n), 0)
    return {"digital_active": active, "app_logins_30d": logins.astype(float)}


def _event_columns(rng: np.random.Generator, c: Columns, now: float) -> Columns:
    """Recent real-time features; NaN is "never happened". Times are within the last ~60 days."""
    n = len(c["age"])

    def ago(days: float) -> np.ndarray:
        return now - rng.uniform(0, days, n) * DAY

    declined = rng.random(n) < 0.08 + 0.1 * c["in_arrears"]
    mortgage_age = (c["age"] >= 28) & (c["age"] <= 45)
    calc = rng.random(n) < np.where(mortgage_age & ~c["has_mortgage"], 0.12, 0.02)
    transfer = rng.random(n) < 0.06
    withdrawal = ~transfer & (rng.random(n) < 0.02)
    salary = (c["segment"] != "student") & (rng.random(n) < 0.75)
    pos = c["digital_active"] & (rng.random(n) < 0.25)
    out = _counted(rng, declined, ago(60), "card_declined_count", "card_declined_last_at", 3)
    visited = ago(45)
    out["mortgage_calc_last_at"] = np.where(calc, visited, np.nan)
    out["mortgage_calc_visits_30d"] = _in_window(rng, calc, visited, now, 30, 4)
    out.update(_churn(rng, transfer, withdrawal, ago(60), now))
    out["salary_last_at"] = np.where(salary, ago(30.4), np.nan)
    out["salary_last_amount"] = np.where(salary, c["income_monthly"], 0.0)
    out["app_pos_payments_30d"] = np.where(pos, rng.integers(1, 40, n), 0).astype(float)
    out["app_login_last_at"] = np.where(c["app_logins_30d"] > 0, ago(3), np.nan)
    return out


def _counted(
    rng: np.random.Generator, happened: np.ndarray, last: np.ndarray, count: str, last_at: str, mean: float
) -> Columns:
    counts = np.where(happened, 1 + rng.poisson(mean - 1, len(happened)), 0)
    return {count: counts.astype(float), last_at: np.where(happened, last, np.nan)}


def _in_window(
    rng: np.random.Generator, happened: np.ndarray, last: np.ndarray, now: float, days: float, mean: float
) -> np.ndarray:
    """A windowed count at `now`: the last event and a few before it when the last is in the window, else 0
    (every event in the window is at or before the last one)."""
    recent = happened & (now - last < days * DAY)
    return np.where(recent, 1 + rng.poisson(mean - 1, len(last)), 0).astype(float)


def _churn(
    rng: np.random.Generator, transfer: np.ndarray, withdrawal: np.ndarray, at: np.ndarray, now: float
) -> Columns:
    return {
        "transfer_out_competitor_30d": _in_window(rng, transfer, at, now, 30, 2.0),
        "large_withdrawal_last_at": np.where(withdrawal, at, np.nan),
        "large_withdrawals_7d": _in_window(rng, withdrawal, at, now, 7, 1.3),
        "churn_signal_at": np.where(transfer | withdrawal, at, np.nan),
    }
