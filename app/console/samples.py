"""The live picture from the service's own Prometheus registry: snapshots, rates and latency percentiles.

`Sampler` keeps the snapshots of the last minutes (in process: each worker has its own registry, as each
has its own /metrics); the rate between two snapshots is the difference of their counters over the time
between them, and a latency percentile over that interval comes from the difference of the histogram's
buckets, interpolated within the bucket as Prometheus' `histogram_quantile` does.

>>> quantile([(0.001, 50.0), (0.002, 100.0), (float("inf"), 100.0)], 0.75)
0.0015
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

Buckets = list[tuple[float, float]]  # (upper bound, cumulative count), ascending, +Inf last
KEEP_SECONDS = 600.0
MIN_SPACING_SECONDS = 1.0  # polls closer than this share one snapshot
PERCENTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Snapshot:
    """The counters the live view reads, summed over the labels it does not show."""

    at: float
    decisions: float = 0.0
    latency: Buckets = field(default_factory=list)
    presented: dict[str, float] = field(default_factory=dict)  # offer -> presentations
    suppressions: dict[str, float] = field(default_factory=dict)  # policy -> offers suppressed
    degraded: dict[str, float] = field(default_factory=dict)  # reason -> decisions
    models: dict[str, float] = field(default_factory=dict)  # model version -> decisions
    responses: dict[str, float] = field(default_factory=dict)  # outcome -> responses


def take_snapshot(registry: CollectorRegistry, at: float) -> Snapshot:
    """Read the registry once."""
    snap = Snapshot(at)
    latency: dict[float, float] = {}
    decisions = 0.0
    for family in registry.collect():
        for s in family.samples:
            if s.name == "nbo_decisions_total":
                decisions += s.value
            elif s.name == "nbo_decision_seconds_bucket":
                bound = float(s.labels["le"])
                latency[bound] = latency.get(bound, 0.0) + s.value
            else:
                _tally(snap, s.name, s.labels, s.value)
    return Snapshot(at, decisions, sorted(latency.items()), snap.presented, snap.suppressions, snap.degraded,
                    snap.models, snap.responses)  # fmt: skip


def _tally(snap: Snapshot, name: str, labels: dict[str, str], value: float) -> None:
    """Add a sample of the per-offer, per-policy, per-reason and per-model counters."""
    target, label = {
        "nbo_offers_presented_total": (snap.presented, "offer"),
        "nbo_suppressions_total": (snap.suppressions, "policy"),
        "nbo_degraded_decisions_total": (snap.degraded, "reason"),
        "nbo_responses_total": (snap.responses, "outcome"),
        # Every decision times its "decide" stage once, labelled by the model version that scored it.
        "nbo_decision_stage_seconds_count": (snap.models, "model_version"),
    }.get(name, (None, ""))
    if target is None or (name == "nbo_decision_stage_seconds_count" and labels.get("stage") != "decide"):
        return
    key = labels[label]
    target[key] = target.get(key, 0.0) + value


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of a cumulative histogram (None when it is empty), linear within its bucket."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the last finite bound: the best that can be said
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, count
    return lower


def bucket_delta(new: Buckets, old: Buckets) -> Buckets:
    """The histogram of what was observed between two snapshots (same bounds; a reset counts from zero)."""
    before = dict(old)
    deltas = [(bound, count - before.get(bound, 0.0)) for bound, count in new]
    return deltas if all(d >= 0 for _, d in deltas) else list(new)


@dataclass(frozen=True)
class Point:
    """The interval that ends at `at`: decisions per second and latency percentiles (milliseconds)."""

    at: float
    rate: float
    p50: float | None
    p95: float | None
    p99: float | None


def point_between(old: Snapshot, new: Snapshot) -> Point:
    seconds = max(new.at - old.at, 1e-9)
    delta = bucket_delta(new.latency, old.latency)
    p50, p95, p99 = (_ms(quantile(delta, q)) for q in PERCENTILES)
    return Point(new.at, max(new.decisions - old.decisions, 0.0) / seconds, p50, p95, p99)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


class Sampler:
    """The snapshots of the last KEEP_SECONDS, one per MIN_SPACING_SECONDS at most, taken when asked."""

    def __init__(self, registry: CollectorRegistry, keep_seconds: float = KEEP_SECONDS) -> None:
        self.registry = registry
        self.keep = keep_seconds
        self._snapshots: deque[Snapshot] = deque()
        self._lock = threading.Lock()  # the live endpoint may be read by several requests at once

    def sample(self, now: float) -> Snapshot:
        """The latest snapshot, taken now unless one was taken within MIN_SPACING_SECONDS."""
        with self._lock:
            if self._snapshots and now - self._snapshots[-1].at < MIN_SPACING_SECONDS:
                return self._snapshots[-1]
            self._snapshots.append(take_snapshot(self.registry, now))
            while self._snapshots and self._snapshots[0].at < now - self.keep:
                self._snapshots.popleft()
            return self._snapshots[-1]

    def series(self) -> list[Point]:
        """One point per interval between consecutive snapshots, oldest first."""
        with self._lock:
            kept = list(self._snapshots)
        return list(_pairwise_points(kept))


def _pairwise_points(snapshots: Iterable[Snapshot]) -> Iterable[Point]:
    previous = None
    for snap in snapshots:
        if previous is not None:
            yield point_between(previous, snap)
        previous = snap
