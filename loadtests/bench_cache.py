"""Customer cache figures on Redis: bulk-load throughput, `load()` latency, per-decision validation cost.

1. Bulk load: a generated Parquet (or CSV) file of --rows customers x --features features is validated and
   loaded with `features.bulk.load_features` (pipelines of one EVALSHA per customer); prints rows/s and the
   extrapolated time for 1M customers.
2. load(): one customer with 40 features and a 50-event history summary, read --reads times in a row;
   prints p50/p99/p99.9 in µs as the service sees it (asyncio + redis-py + hiredis + decoding), then the
   throughput of 64 concurrent readers.
3. validate_features() on that snapshot: µs per call (it runs on every decision).

    .venv/bin/python loadtests/bench_cache.py                          # 200k rows, Parquet
    .venv/bin/python loadtests/bench_cache.py --rows 50000 --format csv --reads 5000
    .venv/bin/python loadtests/bench_cache.py --redis-url redis+cluster://127.0.0.1:7000   # a Redis Cluster

Keys are written under a scratch prefix `nbobench-<pid>` and deleted afterwards.
Goal: 1M customers x 50 features in a few minutes; load() p99 well under 1 ms on a local Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.quality import validate_features
from decisioning.summary import HistorySummary
from decisioning.types import ContactEvent, Outcome
from features.bulk import load_features
from features.redis_cache import RedisCustomerCache
from features.redis_client import RedisClient, redis_client

SEGMENTS = ("student", "young_adult", "mass", "affluent", "private", "senior")


def make_specs(count: int) -> list[FeatureSpec]:
    """A schema like the demo bank's: half numbers, a third flags, the rest categories."""
    specs = []
    for i in range(count):
        if i % 6 in (0, 1, 2):
            specs.append(
                FeatureSpec(f"num_{i}", FeatureType.NUMBER, 0, minimum=-1e6, maximum=1e7, max_age_days=30)
            )
        elif i % 6 in (3, 4):
            specs.append(FeatureSpec(f"flag_{i}", FeatureType.BOOL, False, max_age_days=30))
        else:
            specs.append(FeatureSpec(f"cat_{i}", FeatureType.CATEGORY, "mass", categories=SEGMENTS))
    return specs


def make_table(specs: list[FeatureSpec], rows: int, seed: int = 1) -> pa.Table:
    """Random customers; about 1% of the numbers are out of range, to exercise the rejection path."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {"customer_id": [f"c-{i:08d}" for i in range(rows)]}
    for spec in specs:
        if spec.type is FeatureType.NUMBER:
            values = rng.normal(2_000, 5_000, rows).round(2)
            values[rng.random(rows) < 0.01] = 1e9
            columns[spec.name] = values
        elif spec.type is FeatureType.BOOL:
            columns[spec.name] = rng.random(rows) < 0.3
        else:
            columns[spec.name] = pa.array(rng.choice(SEGMENTS, rows)).dictionary_encode().cast(pa.string())
    return pa.table(columns)


def write_file(table: pa.Table, directory: Path, fmt: str) -> Path:
    path = directory / f"customers.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    return path


async def bench_bulk(client: RedisClient, prefix: str, args: argparse.Namespace) -> None:
    specs = make_specs(args.features)
    cache = RedisCustomerCache(client, feature_names=[s.name for s in specs], prefix=prefix)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_file(make_table(specs, args.rows), Path(tmp), args.format)
        started = time.perf_counter()
        report = await load_features(path, cache, specs, batch_size=args.batch_size)
        elapsed = time.perf_counter() - started
    rate = report.loaded / elapsed
    print(
        f"bulk load ({args.format}, {args.features} features, batch {args.batch_size}): "
        f"{report.loaded:,} rows in {elapsed:.1f} s = {rate:,.0f} rows/s; "
        f"1M rows ~ {1e6 / rate:.0f} s; rejected values: {sum(report.rejected.values()):,}"
    )
    assert await cache.count() == report.loaded


def summary_of(size: int, now: float) -> HistorySummary:
    outcomes = (Outcome.PRESENTED, Outcome.CLICKED, Outcome.DECLINED, Outcome.SENT)
    return HistorySummary(
        tuple(
            ContactEvent(
                now - (size - i) * 3_600.0,
                f"offer_{i % 12}",
                f"group_{i % 4}",
                "web",
                outcomes[i % 4],
                f"d{i}",
            )
            for i in range(size)
        )
    )


async def bench_load(client: RedisClient, prefix: str, args: argparse.Namespace) -> None:
    specs = make_specs(40)
    cache = RedisCustomerCache(client, feature_names=[s.name for s in specs], prefix=prefix)
    now = time.time()
    row = {k: v[0] for k, v in make_table(specs, 1).to_pydict().items() if k != "customer_id"}
    await cache.put_features([("c-hot", row)], at=now)
    await cache.store_summary("c-hot", summary_of(50, now))
    for _ in range(500):  # warm up: script cache, connection, allocator
        await cache.load("c-hot")
    latencies = []
    for _ in range(args.reads):
        started = time.perf_counter()
        await cache.load("c-hot")
        latencies.append(time.perf_counter() - started)
    snapshot = await cache.load("c-hot")
    assert len(snapshot.features) == 40 and len(snapshot.summary.events) == 50
    q = statistics.quantiles([x * 1e6 for x in latencies], n=1000)
    print(
        f"load() 40 features + 50-event summary, sequential x{args.reads}: "
        f"p50 {q[499]:.0f} µs, p99 {q[989]:.0f} µs, p99.9 {q[998]:.0f} µs"
    )
    await bench_concurrent_loads(cache)
    bench_validate(specs, snapshot, now)


async def bench_concurrent_loads(cache: RedisCustomerCache, readers: int = 64, each: int = 300) -> None:
    async def reader() -> None:
        for _ in range(each):
            await cache.load("c-hot")

    started = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(readers)))
    elapsed = time.perf_counter() - started
    print(f"load() with {readers} concurrent readers: {readers * each / elapsed:,.0f} loads/s (one process)")


def bench_validate(specs: list[FeatureSpec], snapshot: object, now: float, calls: int = 20_000) -> None:
    validate_features(specs, "c-hot", snapshot, now)  # compile once
    started = time.perf_counter()
    for _ in range(calls):
        validate_features(specs, "c-hot", snapshot, now)
    print(f"validate_features() 40 features: {(time.perf_counter() - started) / calls * 1e6:.1f} µs per call")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", default=os.environ.get("NBO_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--reads", type=int, default=20_000)
    args = parser.parse_args()
    client = redis_client(args.redis_url, max_connections=64)  # redis+cluster:// for a cluster
    prefix = f"nbobench-{os.getpid()}"
    try:
        await bench_load(client, f"{prefix}:load", args)
        await bench_bulk(client, f"{prefix}:bulk", args)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=5_000)]
        for start in range(0, len(keys), 5_000):
            await client.delete(*keys[start : start + 5_000])
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
