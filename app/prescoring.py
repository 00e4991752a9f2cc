"""`nbo prescore` and `nbo outbound record`: the overnight batch wired to the settings' stores.

The batch itself (batch/) knows no settings: this module reads the history summaries from the settings'
database, picks the engine and the outputs, and builds the application layer for recording a list.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.bootstrap import open_adapters, service_from
from app.settings import Settings
from batch.engines import engine_named
from batch.job import PrescoreJob
from batch.outbound import RecordedList, record_list
from batch.outputs import copy_to_postgres, write_fallback
from batch.run import RunResult, part_files, prescore, read_manifest
from batch.sources import export_postgres_table
from decisioning.summary import RETENTION_SECONDS, HistorySummary
from history.migrate import upgrade
from history.sql import SqlHistory
from service.metrics import Metrics

log = logging.getLogger("nbo.batch")


@dataclass(frozen=True)
class PrescoreOptions:
    channel: str
    top: int
    features: Path
    out: Path
    as_of: str | None = None  # ISO 8601; None: the resumed run's, else now
    run_id: str | None = None
    engine: str = "inprocess"
    scheduler: str | None = None
    workers: int = 2
    partition_size: int = 50_000
    to_postgres: str | None = None
    to_redis: bool = False
    progress: bool = True
    features_table: str | None = None  # a PostgreSQL table at NBO_DATABASE_URL instead of `features`
    features_redis: str | None = None  # the Redis feature cache at this URL ("-": NBO_REDIS_URL) instead


def new_run_id() -> str:
    return f"r-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def parse_as_of(text: str) -> float:
    """ISO 8601 to epoch seconds; a time without a zone is UTC."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def run_prescore(settings: Settings, options: PrescoreOptions) -> RunResult:
    """Run (or resume) a prescoring run and write its outputs."""
    run_id = options.run_id or new_run_id()
    run_dir = settings.batch_dir / run_id
    job = PrescoreJob(
        run_id, settings.catalogue_dir, settings.model_dir, settings.model_name, options.channel, options.top,
        _as_of(options.as_of, run_dir), settings.model_compiled,
    )  # fmt: skip
    features = options.features
    if options.features_table:
        features = run_dir / "input.parquet"
        if not features.exists():  # a resumed run reads what its first attempt exported
            run_dir.mkdir(parents=True, exist_ok=True)
            asyncio.run(export_postgres_table(_libpq(settings), options.features_table, features))
    if options.features_redis:
        features = run_dir / "input.parquet"
        if not features.exists():  # a resumed run reads what its first attempt exported
            run_dir.mkdir(parents=True, exist_ok=True)
            asyncio.run(export_from_redis(settings, options.features_redis, features, job.as_of))
    summaries = asyncio.run(history_summaries(settings.history_read_url, job.as_of))
    engine = engine_named(options.engine, workers=options.workers, scheduler=options.scheduler)
    try:
        result = prescore(job, features, options.out, run_dir=run_dir, engine=engine,
                          summaries=summaries, partition_size=options.partition_size,
                          progress=options.progress)  # fmt: skip
    finally:
        engine.close()
    asyncio.run(_outputs(settings, options, job, run_dir))
    return result


async def export_from_redis(settings: Settings, url: str, path: Path, as_of: float) -> None:
    """The Redis feature cache (`url`, or NBO_REDIS_URL for "-") exported to `path` (batch/redis_source.py)."""
    from batch.redis_source import export_redis_features
    from features.redis_cache import RedisCustomerCache
    from features.redis_client import redis_client
    from policies.loader import load_catalogue

    target = settings.redis_url if url == "-" else url
    if not target:
        raise ValueError("--features-from redis - needs NBO_REDIS_URL")
    specs = load_catalogue(settings.catalogue_dir).features
    names = [s.name for s in specs]
    client = redis_client(target, max_connections=32)
    cache = RedisCustomerCache(client, feature_names=names, prefix=settings.redis_prefix)
    try:
        done = await export_redis_features(cache, specs, path, as_of)
    finally:
        await cache.close()
    log.info("features exported from Redis", extra={"customers": done.customers, "unreadable": done.unreadable})


def _as_of(text: str | None, run_dir: Path) -> float:
    if text is not None:
        return parse_as_of(text)
    manifest = read_manifest(run_dir)
    return float(manifest["job"]["as_of"]) if manifest else time.time()


def _libpq(settings: Settings) -> str:
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    if not dsn.startswith("postgresql://"):
        raise ValueError("PostgreSQL input or output needs a PostgreSQL NBO_DATABASE_URL")
    return dsn


async def history_summaries(database_url: str, as_of: float) -> dict[str, HistorySummary]:
    """Every customer's history summary, rebuilt from the contact history in two scans (as the embedded
    service warms its cache at start-up)."""
    if database_url.startswith("sqlite"):  # the embedded database is ours to migrate, as at service start
        await asyncio.to_thread(upgrade, database_url)
    history = SqlHistory(database_url)
    await history.start()
    try:
        return await history.summaries(since=as_of - RETENTION_SECONDS)
    finally:
        await history.close()


async def _outputs(settings: Settings, options: PrescoreOptions, job: PrescoreJob, run_dir: Path) -> None:
    files = part_files(run_dir)
    if options.to_postgres:
        copied = await copy_to_postgres(_libpq(settings), options.to_postgres, files, job.run_id)
        log.info("prescored list copied to PostgreSQL", extra={"table": options.to_postgres, "rows": copied})
    if options.to_redis:
        if settings.redis_url is None:
            raise ValueError("--to-redis needs NBO_REDIS_URL")
        from redis.asyncio import Redis

        client = Redis.from_url(settings.redis_url)
        try:
            written = await write_fallback(client, settings.redis_prefix, files)
        finally:
            await client.aclose()
        log.info("prescored fallback written to Redis", extra={"customers": written})


async def record_outbound_list(settings: Settings, path: Path, channel: str, campaign: str | None) -> RecordedList:
    """Record a prescored list's chosen offers as sent, through the application layer."""
    import pyarrow.parquet as pq
    from rich.progress import Progress

    adapters = await open_adapters(settings)
    service = service_from(adapters, settings, Metrics())
    total = pq.ParquetFile(path).metadata.num_rows
    try:
        with Progress() as bar:
            task = bar.add_task("recording sends", total=total)
            return await record_list(service, path, channel, campaign, progress=lambda n: bar.advance(task, n))
    finally:
        await service.close()
