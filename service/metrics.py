"""The service's Prometheus metrics: bounded labels only (routes, channels, offers, policies), never customers.

Besides the histograms, a breakdown of each decision request into its fine stages (HTTP parse and
validation, lock, load, rules, policies, scoring, arbitration, budget reservation, summary append,
history commit, unlock, serialisation, metrics): `lap("stage")` anywhere on the request's path adds the
time since the previous lap to that stage. Laps go to plain floats summed per process and exported at
scrape time (`nbo_decision_stage_detail_seconds`), so they cost ~0.2 µs each and stay on; CPU per stage
(`thread_time`, a system call of ~2 µs here) only with `NBO_STAGE_CPU_TIMERS=true`. A lap of a stage
that awaits (lock, load, commit) also counts what other requests ran meanwhile, in wall and in CPU.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric, SummaryMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGE_BUCKETS = (0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25)


class Metrics:
    """Every metric of one app instance, in its own registry (tests build many apps)."""

    def __init__(self, stage_cpu: bool = False) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage_times = StageTimes(cpu=stage_cpu)
        r.register(self.stage_times)
        self.requests = Histogram(
            "nbo_http_request_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decision_seconds = Histogram(
            "nbo_decision_seconds",
            "Decision latency by channel",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "nbo_decision_stage_seconds",
            "Time per decision stage",
            ["stage", "channel", "model_version"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.decisions = Counter("nbo_decisions_total", "Decisions made", ["channel", "outcome"], registry=r)
        self.presented = Counter("nbo_offers_presented_total", "Offers presented", ["offer", "channel"], registry=r)
        self.suppressions = Counter(
            "nbo_suppressions_total", "Offers suppressed by a contact policy", ["policy"], registry=r
        )
        self.responses = Counter("nbo_responses_total", "Responses recorded", ["outcome", "channel"], registry=r)
        self.events = Counter("nbo_events_total", "Customer events applied", ["type"], registry=r)
        self.triggers_fired = Counter(
            "nbo_triggers_fired_total", "Trigger decisions made (condition true, period free)",
            ["trigger", "channel"], registry=r,
        )  # fmt: skip
        self.triggers_suppressed = Counter(
            "nbo_triggers_suppressed_total", "Triggers that held but delivered nothing, by reason",
            ["trigger", "reason"], registry=r,
        )  # fmt: skip
        self.triggers_published = Counter(
            "nbo_triggers_published_total", "Triggered decisions published for delivery, by sink",
            ["trigger", "sink"], registry=r,
        )  # fmt: skip
        self.webhook_deliveries = Counter(
            "nbo_trigger_webhook_total", "Webhook delivery attempts by outcome (delivered, retried, failed)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.errors = Counter("nbo_errors_total", "Errors by kind", ["kind"], registry=r)
        self.defaulted = Counter(
            "nbo_features_defaulted_total", "Features replaced by their default", ["channel"], registry=r
        )
        self.stale = Counter(
            "nbo_features_stale_total", "Features older than their maximum age", ["channel"], registry=r
        )
        self.unknown_customers = Counter(
            "nbo_unknown_customers_total", "Decisions for customers without features", ["channel"], registry=r
        )
        self.budget_rejections = Counter(
            "nbo_budget_rejections_total", "Offers dropped: volume budget used up", ["offer"], registry=r
        )
        self.degraded = Counter(
            "nbo_degraded_decisions_total",
            "Decisions made without features, history summary or budgets (a store down)",
            ["channel", "reason"],
            registry=r,
        )
        # Set from the adapters by app/bootstrap.py (set_function): the history's local spool and Redis's breaker.
        self.spool_records = Gauge("nbo_spool_records", "History writes held in the local spool", registry=r)
        self.spool_bytes = Gauge("nbo_spool_bytes", "Size of the local history spool", registry=r)
        self.spool_oldest_seconds = Gauge(
            "nbo_spool_oldest_age_seconds", "Age of the oldest write held in the spool (0 when empty)", registry=r
        )
        self.redis_circuit_open = Gauge(
            "nbo_redis_circuit_open", "1 while the Redis circuit breaker is open", registry=r
        )
        self.reloads = Counter(
            "nbo_reloads_total", "Catalogue and model reloads: what, and whether it was applied or refused",
            ["what", "outcome"], registry=r,
        )  # fmt: skip
        self.ready = Gauge("nbo_ready", "1 when stores, catalogue and model are ready", registry=r)
        # Tells the workers behind one socket apart, so that a scraper can take each worker's counters apart
        # (loadtests/bench.py sums the per-stage times of every worker); one series per process.
        self.worker = Gauge("nbo_worker_pid", "Process id of the worker that answered this scrape", registry=r)
        self.worker.set(os.getpid())
        # The hot path's metrics, memoised by label values (see Children).
        self.hot = HotMetrics(self)


class Children:
    """A metric's children by label values, memoised: `labels()` validates and locks on every call (~2 µs
    here), a dict hit costs ~50 ns. Only for bounded label values (channels, offers, policies, stages).

    >>> decisions = Children(metrics.decisions)   # doctest: +SKIP
    >>> decisions("web", "offers").inc()          # doctest: +SKIP
    """

    __slots__ = ("children", "metric")

    def __init__(self, metric: Counter | Histogram | Gauge) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


class StageTimes:
    """Seconds per fine stage of the decision requests, summed in process; a Prometheus collector."""

    def __init__(self, cpu: bool = False) -> None:
        self.cpu_enabled = cpu
        self.wall: defaultdict[str, float] = defaultdict(float)
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.count: defaultdict[str, int] = defaultdict(int)

    def collect(self) -> Iterator[Metric]:
        wall = SummaryMetricFamily("nbo_decision_stage_detail_seconds", "Wall time per fine stage", labels=["stage"])
        for stage, seconds in list(self.wall.items()):
            wall.add_metric([stage], self.count[stage], seconds)
        yield wall
        if self.cpu_enabled:
            cpu = SummaryMetricFamily("nbo_decision_stage_detail_cpu_seconds", "CPU per fine stage", labels=["stage"])
            for stage, seconds in list(self.cpu.items()):
                cpu.add_metric([stage], self.count[stage], seconds)
            yield cpu


class StageClock:
    """The laps of one request; see the module docstring."""

    __slots__ = ("last", "last_cpu", "times")

    def __init__(self, times: StageTimes) -> None:
        self.times = times
        self.last = time.perf_counter()
        self.last_cpu = time.thread_time() if times.cpu_enabled else 0.0

    def lap(self, stage: str) -> None:
        now, times = time.perf_counter(), self.times
        times.wall[stage] += now - self.last
        times.count[stage] += 1
        self.last = now
        if times.cpu_enabled:
            cpu = time.thread_time()
            times.cpu[stage] += cpu - self.last_cpu
            self.last_cpu = cpu


# The clock of the request the running task serves (each request is a task with its own context).
current_clock: ContextVar[StageClock | None] = ContextVar("nbo_stage_clock", default=None)


def lap(stage: str) -> None:
    """Close the current request's stage `stage` (nothing when no clock runs: batch, tests, other routes)."""
    clock = current_clock.get()
    if clock is not None:
        clock.lap(stage)


class HotMetrics:
    """The children the decision path touches on every request."""

    def __init__(self, m: Metrics) -> None:
        self.requests = Children(m.requests)
        self.decision_seconds = Children(m.decision_seconds)
        self.stage_seconds = Children(m.stage_seconds)
        self.decisions = Children(m.decisions)
        self.presented = Children(m.presented)
        self.suppressions = Children(m.suppressions)
