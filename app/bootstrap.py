"""Build the service from settings: the one place that knows which adapter runs where.

Embedded (no NBO_REDIS_URL): features and summaries in process (loaded from the features file), history in
SQLite (migrated at start), budgets in process. Production: Redis for features, summaries and budgets;
PostgreSQL for the history (migrated by `nbo db upgrade` before the service starts).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.settings import Settings, redact_url
from app.trigger_outlets import observe_webhook, trigger_outlets
from coordination.breaker import OPEN, CircuitBreaker
from coordination.budgets import InMemoryBudgetCounter, RedisBudgetCounter
from coordination.guarded import (
    REDIS_FAILURES,
    GuardedBudgets,
    GuardedCache,
    GuardedLocks,
    GuardedPrescored,
    redis_breaker,
)
from coordination.holds import GuardedHolds, RedisHolds
from coordination.locks import LocalCustomerLock, RedisCustomerLock
from decisioning.catalogue import Catalogue
from decisioning.ports import (
    BudgetCounter,
    ContactHistory,
    CustomerCache,
    CustomerHolds,
    CustomerLock,
    EventRules,
    PrescoredFallback,
    Scorer,
)
from decisioning.summary import RETENTION_SECONDS, HistorySummary
from features.files import read_feature_file
from features.memory import InMemoryCustomerCache
from features.prescored import RedisPrescoredFallback
from features.redis_cache import RedisCustomerCache
from features.redis_client import redis_client
from history.migrate import upgrade
from history.partitions import ensure_partitions
from history.spooled import SpooledHistory
from history.sql import SqlHistory
from history.stream import StreamHistory
from models.posterior import LearningScorer
from models.prior import PriorScorer
from models.registry import ModelNotFound, ModelRegistry
from policies.events import load_event_rules
from policies.loader import load_catalogue, validate_catalogue
from policies.problems import Problem
from service.decisions import random_decision_id
from service.metrics import Metrics
from service.service import DecisionService
from service.triggers import TriggerOutlets

log = logging.getLogger("nbo.bootstrap")


@dataclass(frozen=True)
class Adapters:
    """What the service is built from: the catalogue, the model and an adapter for every port.

    Tests and tools swap one (`dataclasses.replace`) and build the service with `service_from`.
    """

    catalogue: Catalogue
    events: EventRules
    scorer: Scorer
    cache: CustomerCache
    history: ContactHistory
    budgets: BudgetCounter
    locks: CustomerLock
    fallback: PrescoredFallback | None = None  # the batch's prescored offers, for degraded decisions
    breaker: CircuitBreaker | None = None  # Redis's, shared by its ports
    history_reads: ContactHistory | None = None  # a read replica for the listing (NBO_DATABASE_READ_URL)
    triggers: TriggerOutlets | None = None  # trigger claims and delivery outlets (None: triggers do not fire)


async def open_adapters(settings: Settings) -> Adapters:
    """Load the catalogue and the model and open the stores the settings name."""
    catalogue = load_catalogue(settings.catalogue_dir)
    events = load_event_rules(settings.catalogue_dir, catalogue.features)
    scorer = load_scorer(settings)
    sql = await open_history(settings)
    cache, budgets, locks = await open_cache(settings, catalogue, sql)
    history = await write_behind(settings, cache, sql) if settings.history_mode == "write_behind" else sql
    history = await spooled(settings, history)
    fallback, breaker = guard_redis(settings, cache)
    triggers = trigger_outlets(settings, cache)  # before the cache is guarded: it reads its Redis client
    if breaker is not None:
        cache, budgets, locks = (
            GuardedCache(cache, breaker),
            GuardedBudgets(budgets, breaker),
            GuardedLocks(locks, breaker),
        )
    reads = await open_read_history(settings)
    return Adapters(catalogue, events, scorer, cache, history, budgets, locks, fallback, breaker, reads, triggers)


async def open_read_history(settings: Settings) -> SqlHistory | None:
    """The history replica the listing reads, when NBO_DATABASE_READ_URL names one (it is never migrated
    or written here: a replica follows its primary)."""
    if settings.database_read_url is None:
        return None
    history = SqlHistory(settings.database_read_url)
    await history.start()
    return history


async def spooled(settings: Settings, history: ContactHistory) -> ContactHistory:
    """PostgreSQL in sync mode: the writes it cannot commit go to the local spool (NBO_SPOOL_DIR)."""
    if settings.spool_dir is None or not isinstance(history, SqlHistory) or not history.url.startswith("postgresql"):
        return history
    spool = SpooledHistory(history, settings.spool_dir, max_bytes=settings.spool_max_bytes)
    await spool.start()
    return spool


def guard_redis(settings: Settings, cache: CustomerCache) -> tuple[PrescoredFallback | None, CircuitBreaker | None]:
    """The breaker every Redis port shares, and the prescored fallback behind it; none without Redis."""
    if not isinstance(cache, RedisCustomerCache):
        return None, None
    breaker = redis_breaker(
        failure_threshold=settings.redis_breaker_failures, cooldown_seconds=settings.redis_breaker_cooldown_seconds
    )
    return GuardedPrescored(RedisPrescoredFallback(cache.client, prefix=settings.redis_prefix), breaker), breaker


def service_from(
    adapters: Adapters,
    settings: Settings,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
    decision_ids: Callable[[], str] = random_decision_id,
) -> DecisionService:
    """The application layer on these adapters, with the settings' limits (`clock` and `decision_ids`: the
    simulator's simulated time and seeded ids)."""
    service = DecisionService(
        catalogue=adapters.catalogue,
        scorer=adapters.scorer,
        cache=adapters.cache,
        history=adapters.history,
        budgets=adapters.budgets,
        events=adapters.events,
        locks=adapters.locks,
        metrics=metrics,
        max_offers_limit=settings.max_offers_limit,
        max_in_flight=settings.max_in_flight,
        fallback=adapters.fallback,
        history_reads=adapters.history_reads,
        holds=fused_holds(adapters) if settings.redis_fused_holds else None,
        triggers=adapters.triggers,
        clock=clock,
        decision_ids=decision_ids,
    )
    observe_resilience(adapters, metrics)
    observe_webhook(adapters, metrics)
    return service


def fused_holds(adapters: Adapters) -> CustomerHolds | None:
    """On Redis, the customer's lock and load in one round trip, append and unlock in another
    (coordination/holds.py); None, to compose the adapters' own lock and cache, for anything else
    (the embedded mode, or a test that replaced one of them)."""
    locks, cache = adapters.locks, adapters.cache
    if not (isinstance(locks, GuardedLocks) and isinstance(cache, GuardedCache) and adapters.breaker):
        return None
    if not (isinstance(locks.inner, RedisCustomerLock) and isinstance(cache.inner, RedisCustomerCache)):
        return None
    return GuardedHolds(RedisHolds(locks.inner, cache.inner), adapters.breaker, REDIS_FAILURES)


def observe_resilience(adapters: Adapters, metrics: Metrics) -> None:
    """Spool depth and the Redis breaker's state as gauges, read when /metrics is scraped."""
    history, breaker = adapters.history, adapters.breaker
    if isinstance(history, SpooledHistory):
        metrics.spool_records.set_function(lambda: history.depth[0])
        metrics.spool_bytes.set_function(lambda: history.depth[1])
        metrics.spool_oldest_seconds.set_function(lambda: history.depth[2])
    if breaker is not None:
        metrics.redis_circuit_open.set_function(lambda: 1.0 if breaker.state == OPEN else 0.0)


async def build_service(settings: Settings, metrics: Metrics) -> DecisionService:
    """Load the catalogue and the model, open the stores, and hand back a ready service."""
    adapters = await open_adapters(settings)
    log.info(
        "service ready",
        extra={
            "catalogue_version": adapters.catalogue.version,
            "offers": len(adapters.catalogue.offers),
            "triggers": [t.name for t in adapters.catalogue.triggers],
            "model_version": adapters.scorer.version,
            "history": redact_url(settings.database_url),
            "cache": "redis" if settings.redis_url else "in-process",
        },
    )
    return service_from(adapters, settings, metrics)


async def write_behind(settings: Settings, cache: CustomerCache, sql: SqlHistory) -> StreamHistory:
    """Acknowledge decisions once they are in a Redis Stream; `nbo history drain` moves them to SQL."""
    if not isinstance(cache, RedisCustomerCache):  # called before the Redis ports are guarded
        raise ValueError("NBO_HISTORY_MODE=write_behind needs NBO_REDIS_URL")
    stream = StreamHistory(cache.client, sql, stream=f"{settings.redis_prefix}:history")
    await stream.start()
    return stream


def load_scorer(settings: Settings) -> Scorer:
    """The champion model (with its challenger, if any) from the registry, behind the per-offer Beta
    posteriors that score the offers it does not know; the posteriors alone without a model."""
    try:
        return LearningScorer(load_model(settings))
    except ModelNotFound:
        log.warning("no trained model: scoring with the catalogue priors (run `nbo demo` to train one)")
        return LearningScorer(None)


def load_model(settings: Settings) -> Scorer | None:
    """The registry's serving model, None when it has no champion. Raises whatever a broken pointer
    file or model file raises: a reload refuses it and keeps the model it has."""
    model = ModelRegistry(settings.model_dir).scorer(settings.model_name, compiled=settings.model_compiled)
    return None if isinstance(model, PriorScorer) else model


def model_pointer(settings: Settings) -> bytes | None:
    """The champion pointer file's content (None when there is none): what the model watcher compares."""
    path = ModelRegistry(settings.model_dir).pointers_path(settings.model_name)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def load_catalogue_checked(settings: Settings) -> tuple[Catalogue, EventRules] | list[Problem]:
    """The catalogue directory and its events.yaml, or every problem found, as `nbo catalogue validate`
    lists them (file, offer, rule and position)."""
    problems = validate_catalogue(settings.catalogue_dir)
    if problems:
        return problems
    catalogue = load_catalogue(settings.catalogue_dir)
    return catalogue, load_event_rules(settings.catalogue_dir, catalogue.features)


async def open_history(settings: Settings) -> SqlHistory:
    if settings.database_url.startswith("sqlite"):
        # The embedded database is ours to migrate; PostgreSQL is migrated by `nbo db upgrade` (a deploy step).
        await asyncio.to_thread(upgrade, settings.database_url)
    history = SqlHistory(
        settings.database_url,
        batch_max=settings.history_batch_max,
        batch_wait_ms=settings.history_batch_wait_ms,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    await history.start()
    if settings.database_url.startswith("postgresql"):
        await ensure_current_partitions(history)
    return history


async def ensure_current_partitions(history: SqlHistory) -> None:
    """This month's and next month's partitions, in case the daily `nbo history partitions` has not run.

    Best effort: a row without its month's partition still lands in the DEFAULT partition, so a failure
    here (PostgreSQL not reachable yet, a lock held too long) is logged and start-up goes on.
    """
    try:
        created = await ensure_partitions(history.engine, ahead=1)
    except Exception as error:  # the service can still record everything: see the docstring
        log.warning("history partitions not checked at start", extra={"error": repr(error)})
        return
    if created:
        log.info("history partitions created", extra={"partitions": [p.name for p in created]})


async def open_cache(
    settings: Settings, catalogue: Catalogue, history: SqlHistory
) -> tuple[CustomerCache, BudgetCounter, CustomerLock]:
    if settings.redis_url is None:
        cache = InMemoryCustomerCache()
        customers = await load_features_file(settings, catalogue, cache)
        await warm_summaries(cache, history, customers)
        return cache, InMemoryBudgetCounter(), LocalCustomerLock()
    # A bounded pool: under a spike, requests wait for a connection (NBO_REDIS_POOL_TIMEOUT_MS) instead of
    # opening hundreds. Every call is bounded (NBO_REDIS_CONNECT/SOCKET_TIMEOUT_MS): a slow or gone Redis
    # costs milliseconds, then the breaker stops calling it. `redis+cluster://` selects the Redis Cluster
    # client (features/redis_client.py).
    connect, read = settings.redis_connect_timeout_ms / 1000, settings.redis_socket_timeout_ms / 1000
    client = redis_client(
        settings.redis_url, max_connections=64, timeout=settings.redis_pool_timeout_ms / 1000,
        socket_connect_timeout=connect, socket_timeout=read,
    )  # fmt: skip
    names = [f.name for f in catalogue.features]
    cache = RedisCustomerCache(client, feature_names=names, prefix=settings.redis_prefix)
    return (
        cache,
        RedisBudgetCounter(client, prefix=settings.redis_prefix),
        RedisCustomerLock(client, prefix=settings.redis_prefix),
    )


async def load_features_file(settings: Settings, catalogue: Catalogue, cache: CustomerCache) -> list[str]:
    """Load the embedded mode's features file; the ids of the customers loaded."""
    path = settings.features_file
    if path is None or not path.exists():
        log.warning("no features file: every customer is decided on defaults", extra={"path": str(path)})
        return []
    rows, report = read_feature_file(path, catalogue.features)
    await cache.put_features(rows, at=time.time())
    log.info("features loaded", extra={"customers": len(rows), "report": report.summary()})
    return [cid for cid, _ in rows]


async def warm_summaries(cache: CustomerCache, history: SqlHistory, customers: list[str]) -> None:
    """Build every summary in two scans at start-up, so that no decision pays for a rebuild query."""
    summaries = await history.summaries(since=time.time() - RETENTION_SECONDS)
    for customer_id in dict.fromkeys([*customers, *summaries]):
        await cache.store_summary(customer_id, summaries.get(customer_id, HistorySummary()))
    log.info("history summaries built", extra={"customers": len(summaries)})
