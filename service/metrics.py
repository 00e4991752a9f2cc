"""The service's Prometheus metrics: bounded labels only (routes, channels, offers, policies), never customers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGE_BUCKETS = (0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25)


class Metrics:
    """Every metric of one app instance, in its own registry (tests build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
