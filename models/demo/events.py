"""The event timeline behind a demo customer's real-time features, and the feature snapshots it implies.

`generate_customers` gives the features as of `now`. For point-in-time training the simulator also needs
them as they were at every earlier moment: this module rebuilds a plausible sequence of events that ends
in exactly those values (k declined card payments, the last at `card_declined_last_at`; monthly salaries;
transfers to a competitor up to `churn_signal_at`...). Before an event, its features hold their earlier
values, so no snapshot ever shows an event before it happened.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from decisioning.types import DAY, FeatureValue
from models.dataset import FeatureSnapshots

Update = tuple[float, dict[str, FeatureValue]]
SALARY_PERIOD = 30.4 * DAY
EVENT_FEATURES = (
    "card_declined_count", "card_declined_last_at", "salary_last_at", "salary_last_amount",
    "transfer_out_competitor_count", "large_withdrawal_last_at", "churn_signal_at",
    "mortgage_calc_visits", "mortgage_calc_last_at", "app_pos_payments", "app_login_last_at",
)  # fmt: skip


class Snapshot(Mapping[str, FeatureValue]):
    """Batch features shared by all of a customer's snapshots, overlaid with the event features of one
    moment: thousands of snapshots without thousands of copies of the batch features."""

    __slots__ = ("batch", "events")

    def __init__(self, batch: Mapping[str, FeatureValue], events: dict[str, FeatureValue]) -> None:
        self.batch, self.events = batch, events

    def get(self, key: str, default: Any = None) -> Any:
        value = self.events.get(key, self)
        return self.batch.get(key, default) if value is self else value

    def __getitem__(self, key: str) -> FeatureValue:
        return self.events[key] if key in self.events else self.batch[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.batch
        yield from (k for k in self.events if k not in self.batch)

    def __len__(self) -> int:
        return len(self.batch) + sum(1 for k in self.events if k not in self.batch)


def add_snapshots(
    snapshots: FeatureSnapshots,
    customer_id: str,
    values: Mapping[str, FeatureValue],
    period: tuple[float, float],
    rng: np.random.Generator,
) -> None:
    """Add a customer's snapshot valid from the period's start and one per later event, so that the
    snapshot valid at the period's end holds exactly `values`."""
    start, end = period
    batch = {k: v for k, v in values.items() if k not in EVENT_FEATURES}
    final = {k: values[k] for k in EVENT_FEATURES if k in values}
    updates = sorted(timeline(final, start, end, rng), key=lambda u: u[0])
    state = _initial_state(final, updates)
    for _, changes in (u for u in updates if u[0] <= start):
        state.update(changes)
    snapshots.add(customer_id, start, Snapshot(batch, dict(state)))
    for at, changes in (u for u in updates if u[0] > start):
        state.update(changes)
        snapshots.add(customer_id, at, Snapshot(batch, dict(state)))


def _initial_state(final: dict[str, FeatureValue], updates: list[Update]) -> dict[str, FeatureValue]:
    """The event features before the first rebuilt event: counts at zero, times missing, except the
    salary, which was paid a month before the first salary rebuilt."""
    state: dict[str, FeatureValue] = {k: (None if k.endswith("_at") else 0.0) for k in final}
    first_salary = next((at for at, c in updates if "salary_last_at" in c), None)
    if "salary_last_at" in final and first_salary is not None:
        state["salary_last_at"] = first_salary - SALARY_PERIOD
        state["salary_last_amount"] = final.get("salary_last_amount", 0.0)
    return state


def timeline(final: Mapping[str, FeatureValue], start: float, end: float, rng: np.random.Generator) -> list[Update]:
    """Events (time, features after it) leading to the `final` event features at `end`."""
    updates = _counted(final, "card_declined_count", "card_declined_last_at", 30, rng)
    updates += _counted(final, "mortgage_calc_visits", "mortgage_calc_last_at", 21, rng)
    updates += _churn(final, rng)
    updates += _periodic(final, "salary_last_at", SALARY_PERIOD, start)
    updates += _periodic(final, "app_login_last_at", 7 * DAY, start)
    updates += _payments(final, start, end, rng)
    return updates


def _counted(
    final: Mapping[str, FeatureValue], count: str, last_at: str, spread_days: float, rng: np.random.Generator
) -> list[Update]:
    k, last = int(final.get(count) or 0), final.get(last_at)
    if k <= 0 or last is None:
        return []
    times = sorted([float(last), *(float(last) - rng.uniform(0, spread_days, k - 1) * DAY)])
    return [(t, {count: float(i + 1), last_at: t}) for i, t in enumerate(times)]


def _churn(final: Mapping[str, FeatureValue], rng: np.random.Generator) -> list[Update]:
    k, signal = int(final.get("transfer_out_competitor_count") or 0), final.get("churn_signal_at")
    withdrawal = final.get("large_withdrawal_last_at")
    updates: list[Update] = []
    if withdrawal is not None:
        at = float(withdrawal)
        updates.append((at, {"large_withdrawal_last_at": at, "churn_signal_at": at}))
    if k > 0 and signal is not None and signal != withdrawal:
        times = sorted([float(signal), *(float(signal) - rng.uniform(0, 30, k - 1) * DAY)])
        updates += [
            (t, {"transfer_out_competitor_count": float(i + 1), "churn_signal_at": t}) for i, t in enumerate(times)
        ]
    return updates


def _periodic(final: Mapping[str, FeatureValue], last_at: str, period: float, start: float) -> list[Update]:
    last = final.get(last_at)
    if last is None:
        return []
    times = np.arange(float(last), start - period, -period)[::-1]
    return [(float(t), {last_at: float(t)}) for t in times]


def _payments(final: Mapping[str, FeatureValue], start: float, end: float, rng: np.random.Generator) -> list[Update]:
    k = int(final.get("app_pos_payments") or 0)
    if k <= 0:
        return []
    # At most 8 steps: the count's growth matters, not each coffee.
    times = np.sort(rng.uniform(start, end, min(k, 8)))
    counts = np.linspace(k / len(times), k, len(times)).round()
    return [(float(t), {"app_pos_payments": float(c)}) for t, c in zip(times, counts, strict=True)]
