"""The event timeline behind a demo customer's real-time features, and the feature snapshots it implies.

`generate_customers` gives the features as of `now`. For point-in-time training the simulator also needs
them as they were at every earlier moment: this module rebuilds a plausible sequence of events that ends
in exactly those values (k declined card payments, the last at `card_declined_last_at`; monthly salaries;
transfers to a competitor up to `churn_signal_at`...). Before an event, its features hold their earlier
values, so no snapshot ever shows an event before it happened. A windowed count (events.yaml `op: count`)
also changes when an event leaves its window: those moments get a snapshot of their own.
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
    "transfer_out_competitor_30d", "large_withdrawal_last_at", "large_withdrawals_7d", "churn_signal_at",
    "mortgage_calc_visits_30d", "mortgage_calc_last_at", "app_pos_payments_30d", "app_login_last_at",
)  # fmt: skip
# A windowed count's events: (time, how many events at that time, the other features the event sets).
Counted = list[tuple[float, float, dict[str, FeatureValue]]]


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
    updates += _mortgage_visits(final, end, rng)
    updates += _churn(final, end, rng)
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


def windowed(events: Counted, count: str, window: float, end: float) -> list[Update]:
    """The updates of a windowed count: at each event, and when an event leaves the window (until `end`).

    >>> windowed([(0.0, 1, {}), (5.0, 2, {})], "n", 10.0, 12.0)
    [(0.0, {'n': 1.0}), (5.0, {'n': 3.0}), (10.0, {'n': 2.0})]
    """
    changes = {t: c for t, _, c in events}
    moments = sorted({*changes, *(t + window for t in changes if t + window <= end)})
    # The count the cache gives a decision at x: events less than `window` old, none from after x.
    return [
        (x, {count: float(sum(n for t, n, _ in events if x - window < t <= x)), **changes.get(x, {})})
        for x in moments
    ]


def _in_window(last: float, k: int, end: float, window: float, rng: np.random.Generator) -> list[float]:
    """The times of `k` events in the window before `end`, the last of them at `last` (just `last` when
    k is 0: an event that has left the window)."""
    if k <= 0:
        return [last]
    return sorted([last, *(last - rng.uniform(0, last - (end - window), k - 1))])


def _mortgage_visits(final: Mapping[str, FeatureValue], end: float, rng: np.random.Generator) -> list[Update]:
    last = final.get("mortgage_calc_last_at")
    if last is None:
        return []
    k, window = int(final.get("mortgage_calc_visits_30d") or 0), 30 * DAY
    times = _in_window(float(last), k, end, window, rng)
    return windowed([(t, 1, {"mortgage_calc_last_at": t}) for t in times], "mortgage_calc_visits_30d", window, end)


def _churn(final: Mapping[str, FeatureValue], end: float, rng: np.random.Generator) -> list[Update]:
    signal, withdrawal = final.get("churn_signal_at"), final.get("large_withdrawal_last_at")
    if withdrawal is not None:
        k, window = int(final.get("large_withdrawals_7d") or 0), 7 * DAY
        times = _in_window(float(withdrawal), k, end, window, rng)
        events = [(t, 1, {"large_withdrawal_last_at": t, "churn_signal_at": t}) for t in times]
        return windowed(events, "large_withdrawals_7d", window, end)
    if signal is not None:  # a transfer to a competitor bank (the demo's customers do one or the other)
        k, window = int(final.get("transfer_out_competitor_30d") or 0), 30 * DAY
        times = _in_window(float(signal), k, end, window, rng)
        events = [(t, 1, {"churn_signal_at": t}) for t in times]
        return windowed(events, "transfer_out_competitor_30d", window, end)
    return []


def _periodic(final: Mapping[str, FeatureValue], last_at: str, period: float, start: float) -> list[Update]:
    last = final.get(last_at)
    if last is None:
        return []
    times = np.arange(float(last), start - period, -period)[::-1]
    return [(float(t), {last_at: float(t)}) for t in times]


def _payments(final: Mapping[str, FeatureValue], start: float, end: float, rng: np.random.Generator) -> list[Update]:
    """A steady app payer: `k` payments in each 30 days back to the period's start, so the count at `end`
    is `k`. At most 8 moments per window: the count's level matters, not each coffee."""
    k, window = int(final.get("app_pos_payments_30d") or 0), 30 * DAY
    if k <= 0:
        return []
    events: Counted = []
    for window_end in np.arange(end, start, -window):
        times = np.sort(window_end - rng.uniform(0, window, min(k, 8)))
        sizes = np.diff(np.linspace(0, k, len(times) + 1).round())
        events += [(float(t), float(n), {}) for t, n in zip(times, sizes, strict=True) if n > 0]
    return windowed(events, "app_pos_payments_30d", window, end)
