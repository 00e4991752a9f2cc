"""Benchmark of POST /v1/decisions on the production stack: `nbo serve` on Redis and PostgreSQL.

Setup, under scratch names that are removed afterwards (`--keep` leaves them):
- a fresh PostgreSQL database `nbo_bench_<pid>`, migrated (`alembic upgrade head`);
- the demo catalogue with its offers cloned up to --offers (the clones of bench_core's `catalogue_of`:
  `card_gold`, ..., `card_gold_2`, ...), written as YAML to a temporary catalogue directory;
- --customers demo customers (`models.demo.generate_customers` over the demo features), written to Parquet
  and bulk loaded into Redis with `features.bulk.load_features` under the prefix `nbobench-<pid>`;
- every customer's history summary seeded with 5-35 contacts and responses of the last 60 days (as after
  months in production; `--cold` seeds none, so that a customer's first decision rebuilds it from SQL);
- a LightGBM model of --trees trees over those offers (bench_core's synthetic training set), compiled once.
Then bench_http's open loop at each of --rates decisions/s, and its saturation run. Client, server workers,
Redis and PostgreSQL share the machine: on 2 cores the client's own CPU is part of what is measured.

    .venv/bin/python -m loadtests.bench_stack                             # 100k customers, 100 offers, 2 workers
    .venv/bin/python -m loadtests.bench_stack --workers 1 --rates 100,200 --duration 20 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import yaml
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import BlockingConnectionPool, Redis

from app.demo import write_features
from decisioning.catalogue import Catalogue
from features.bulk import load_features
from features.redis_cache import RedisCustomerCache
from history.keys import SqlKeyStore
from history.migrate import upgrade
from loadtests import bench_http
from loadtests.bench_core import summaries
from models.demo.customers import generate_customers
from models.registry import ModelRegistry
from models.synthetic import synthetic_training_set
from models.training import TrainingConfig, train_and_register
from policies.loader import load_catalogue

DEMO = Path(__file__).resolve().parents[1] / "policies" / "demo"
PG_SERVER = os.environ.get("NBO_BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("NBO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DISTINCT_HISTORIES = 2_000  # customers share these summaries round robin (as bench_core does)


# --- the catalogue ------------------------------------------------------------------------------------


def write_catalogue(directory: Path, offers: int) -> Catalogue:
    """The demo catalogue with its offers cloned up to `offers`, as a catalogue directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("catalogue.yaml", "features.yaml", "policies.yaml", "events.yaml"):
        shutil.copy(DEMO / name, directory / name)
    demo = [o for path in sorted(DEMO.glob("offers*.yaml")) for o in yaml.safe_load(path.read_text())["offers"]]
    cloned = [clone(demo[i % len(demo)], i // len(demo)) for i in range(offers)]
    (directory / "offers.yaml").write_text(yaml.safe_dump({"offers": cloned}, sort_keys=False))
    catalogue = load_catalogue(directory)
    assert len(catalogue.offers) == offers, len(catalogue.offers)
    return catalogue


def clone(offer: dict[str, Any], copy: int) -> dict[str, Any]:
    # Rules that name another offer (`days_since(offer='card_gold')`) keep naming the original, as in
    # bench_core.catalogue_of, which clones the compiled offers.
    return offer if copy == 0 else {**offer, "id": f"{offer['id']}_{copy + 1}"}


# --- the stores ---------------------------------------------------------------------------------------


async def create_database(name: str) -> str:
    """A fresh, migrated database; its SQLAlchemy URL."""
    await admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin(f"CREATE DATABASE {name}")
    url = f"{PG_SERVER.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    await asyncio.to_thread(upgrade, url)
    return url


async def bench_key(database_url: str) -> str:
    """A key for the load generator (scope decide, every channel)."""
    store = SqlKeyStore(database_url)
    await store.start()
    try:
        return (await store.create(f"bench-{int(time.time())}", {"decide"}, None))[1]
    finally:
        await store.close()


async def admin(sql: str, database: str = "test") -> Any:
    conn = await asyncpg.connect(f"{PG_SERVER}/{database}", timeout=10)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def load_customers(cache: RedisCustomerCache, catalogue: Catalogue, count: int, directory: Path) -> None:
    started = time.perf_counter()
    rows = generate_customers(count, catalogue.features, seed=3)
    path = directory / "customers.parquet"
    write_features(path, rows)
    generated = time.perf_counter()
    report = await load_features(path, cache, catalogue.features)
    loaded = time.perf_counter()
    print(f"customers: {count} generated in {generated - started:.1f}s, {report.loaded} loaded into Redis in "
          f"{loaded - generated:.1f}s ({report.loaded / (loaded - generated):,.0f}/s)")  # fmt: skip


async def seed_summaries(cache: RedisCustomerCache, catalogue: Catalogue, count: int) -> None:
    """Give every customer a history summary, as a cache that has run for a while holds."""
    started = time.perf_counter()
    pool = summaries(catalogue, DISTINCT_HISTORIES, time.time(), np.random.default_rng(1))
    ids = [f"c-{i:06d}" for i in range(1, count + 1)]
    for start in range(0, count, 500):
        chunk = ids[start : start + 500]
        await asyncio.gather(*(cache.store_summary(c, pool[(start + k) % len(pool)]) for k, c in enumerate(chunk)))
    events = sum(len(s.events) for s in pool) / len(pool)
    print(f"summaries: {count} seeded ({events:.0f} events each on average) in {time.perf_counter() - started:.1f}s")


def redis_client() -> Redis:
    # Bounded and blocking, as the service's: a burst of 500 writes queues for 64 connections.
    return Redis(connection_pool=BlockingConnectionPool.from_url(REDIS_URL, max_connections=64, timeout=30))


async def delete_prefix(client: Redis, prefix: str) -> None:
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            await client.delete(*batch)
            batch = []
    if batch:
        await client.delete(*batch)


# --- the model ----------------------------------------------------------------------------------------


def train_model(model_dir: Path, catalogue: Catalogue, trees: int) -> str:
    """Train and register the served model (`nbo`), and compile it once (cached beside the model)."""
    started = time.perf_counter()
    registry = ModelRegistry(model_dir)
    data = synthetic_training_set(catalogue.features, catalogue.offers)
    meta = train_and_register(registry, data, "nbo", TrainingConfig(num_trees=trees))
    scorer = registry.scorer("nbo", compiled=True)
    print(f"model: {meta.version}, {trees} trees, {getattr(scorer, 'engine', '?')}, "
          f"ready in {time.perf_counter() - started:.1f}s")  # fmt: skip
    return meta.version


# --- the run ------------------------------------------------------------------------------------------


async def prepare(args: argparse.Namespace, scratch: Path) -> dict[str, str]:
    """Build every store and file the server needs; the server's environment."""
    catalogue = write_catalogue(scratch / "catalogue", args.offers)
    print(f"catalogue: {len(catalogue.offers)} offers, {len(catalogue.policies)} contact policies")
    database_url = await create_database(args.database)
    os.environ[bench_http.KEY_VARIABLE] = await bench_key(database_url)  # production refuses NBO_AUTH=none
    client = redis_client()
    try:
        cache = RedisCustomerCache(client, feature_names=[f.name for f in catalogue.features], prefix=args.prefix)
        await load_customers(cache, catalogue, args.customers, scratch)
        if not args.cold:
            await seed_summaries(cache, catalogue, args.customers)
    finally:
        await client.aclose()
    train_model(scratch / "models", catalogue, args.trees)
    return {
        "NBO_ENVIRONMENT": "production",
        "NBO_DATABASE_URL": database_url,
        "NBO_REDIS_URL": REDIS_URL,
        "NBO_REDIS_PREFIX": args.prefix,
        "NBO_CATALOGUE_DIR": str(scratch / "catalogue"),
        "NBO_MODEL_DIR": str(scratch / "models"),
    }


async def stored_decisions(database: str) -> int:
    return await admin("SELECT count(*) FROM decisions", database=database)


async def clean_up(args: argparse.Namespace) -> None:
    client = redis_client()
    try:
        await delete_prefix(client, args.prefix)
    finally:
        await client.aclose()
    await admin(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")


def serve_and_measure(args: argparse.Namespace, env: dict[str, str]) -> None:
    os.environ.update(env)  # bench_http.spawned_server starts `nbo serve` with this process's environment
    args.url = f"http://127.0.0.1:{args.port}"
    with bench_http.spawned_server(args.port, args.workers):
        print(f"server: {args.workers} workers on {args.url}; {os.cpu_count()} CPUs shared with the client, "
              "Redis and PostgreSQL")  # fmt: skip
        asyncio.run(measure(args))
    print(f"history: {asyncio.run(stored_decisions(args.database))} decisions stored in PostgreSQL")


async def measure(args: argparse.Namespace) -> None:
    """bench_http's runs; with one worker, each is followed by the mean time of each decision stage during
    it (with several, /metrics answers from whichever worker takes the connection)."""
    url = f"{args.url}/v1/decisions"
    await bench_http.open_loop(url, min(args.rate, 100), 3, args.customers)  # warm-up
    runs = [partial(bench_http.open_loop, url, rate, args.duration, args.customers) for rate in args.rate_list]
    if args.saturate:
        runs.append(partial(bench_http.saturate, url, args.concurrency, args.duration, args.customers))
    for run in runs:
        before = await asyncio.to_thread(stage_totals, args.url)
        bench_http.report(await run())
        if args.workers == 1:
            after = await asyncio.to_thread(stage_totals, args.url)
            print(f"{'':<32} stages, mean ms: {stage_means(before, after)}")


def stage_totals(url: str) -> dict[str, tuple[float, float]]:
    """Seconds spent in each decision stage (load, decide, record) and decisions, from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples if family.name == "nbo_decision_stage_seconds" else ():
            seconds, count = totals.get(sample.labels["stage"], (0.0, 0.0))
            if sample.name.endswith("_sum"):
                totals[sample.labels["stage"]] = (seconds + sample.value, count)
            elif sample.name.endswith("_count"):
                totals[sample.labels["stage"]] = (seconds, count + sample.value)
    return totals


def stage_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> str:
    means = []
    for stage, (seconds, count) in after.items():
        seconds0, count0 = before.get(stage, (0.0, 0.0))
        if count > count0:
            means.append(f"{stage} {1000 * (seconds - seconds0) / (count - count0):.2f}")
    return ", ".join(means)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--offers", type=int, default=100)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--cold", action="store_true", help="no seeded summaries: first decisions rebuild them")
    parser.add_argument("--rates", default="100,200,300", help="comma-separated fixed rates (decisions/s)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--saturate", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--concurrency", type=int, default=32, help="connections of the saturation run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--keep", action="store_true", help="keep the database and the Redis keys")
    args = parser.parse_args()
    args.rate_list = [float(r) for r in args.rates.split(",") if r]
    args.rate = args.rate_list[0] if args.rate_list else 200.0
    args.database, args.prefix = f"nbo_bench_{os.getpid()}", f"nbobench-{os.getpid()}"
    return args


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="nbo-bench-stack-") as tmp:
        try:
            env = asyncio.run(prepare(args, Path(tmp)))
            serve_and_measure(args, env)
        finally:
            if not args.keep:
                asyncio.run(clean_up(args))


if __name__ == "__main__":
    main()
