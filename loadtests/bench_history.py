"""Throughput of the contact history's group-commit writer, on SQLite and PostgreSQL.

N concurrent writers each record decisions of 1-3 presented offers in a loop for a few seconds; every call
returns only once its rows are committed. Prints decisions/s, rows/s (decision + contact rows), commits,
mean batch and call latency percentiles.

    .venv/bin/python loadtests/bench_history.py                      # both backends, 1/10/100 writers
    .venv/bin/python loadtests/bench_history.py --backend sqlite --writers 50 --seconds 5

PostgreSQL: a scratch database `nbo_bench_<pid>` is created on --pg-server (from its `test` database),
migrated, and dropped afterwards. SQLite: a file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from decisioning.records import ContactRecord, DecisionRecord
from decisioning.types import Direction, Outcome
from history import SqlHistory, upgrade

# --features N: each decision also keeps a feature snapshot of N values (what migration 0004 stores),
# a demo-like mix of numbers, flags, categories and missing values; 0 (the default) keeps none.
FEATURES: tuple | None = None
OFFERS = ("card_gold", "card_classic", "loan_car", "loan_personal", "mortgage", "savings_plus", "pension")


@dataclass
class Result:
    backend: str
    writers: int
    seconds: float
    decisions: int
    rows: int
    commits: int
    latencies: list[float]

    def line(self) -> str:
        lat = sorted(self.latencies)
        p50, p99 = lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3
        return (
            f"{self.backend:<10} writers={self.writers:<4} decisions/s={self.decisions / self.seconds:>8.0f} "
            f"rows/s={self.rows / self.seconds:>8.0f} commits={self.commits:<6} "
            f"batch={self.decisions / max(self.commits, 1):>6.1f} p50={p50:.2f}ms p99={p99:.2f}ms"
        )


def make_decision(rng: random.Random, n: int) -> DecisionRecord:
    """A decision of 1-3 presented offers for one of 100,000 customers."""
    decision_id, customer, at = (
        f"bench-{n}-{rng.getrandbits(48):x}",
        f"c-{rng.randrange(100_000):06d}",
        time.time(),
    )
    offers = rng.sample(OFFERS, rng.randint(1, 3))
    contacts = tuple(
        ContactRecord(
            decision_id,
            customer,
            at,
            "web",
            Direction.INBOUND,
            o,
            o.split("_")[0],
            Outcome.PRESENTED,
            treatment=f"{o} hero",
            placement="home_hero",
            rank=i,
            propensity=rng.random(),
            value=100.0,
            priority=rng.random(),
            selection_probability=1.0,
            model_version="m-1",
            catalogue_version="cat-1",
        )
        for i, o in enumerate(offers)
    )
    context = {"page": "/home", "device": "ios"}
    candidates = tuple({"offer": o, "kept": True} for o in offers)
    return DecisionRecord(
        decision_id,
        customer,
        at,
        "web",
        "home_hero",
        None,
        False,
        "m-1",
        "cat-1",
        contacts,
        context,
        candidates,
        request_id=decision_id,
        features=FEATURES,
        feature_schema=None if FEATURES is None else "0123456789abcdef",
    )


async def writer(history: SqlHistory, deadline: float, seed: int, out: Result) -> None:
    rng, n = random.Random(seed), 0
    while time.perf_counter() < deadline:
        record = make_decision(rng, seed * 10_000_000 + n)
        started = time.perf_counter()
        await history.record_decision(record)
        out.latencies.append(time.perf_counter() - started)
        out.decisions += 1
        out.rows += 1 + len(record.contacts)
        n += 1


async def run(backend: str, url: str, writers: int, seconds: float) -> Result:
    history = SqlHistory(url)
    await history.start()
    await history.record_decision(make_decision(random.Random(0), -1))  # warm the pool and statements
    result = Result(backend, writers, seconds, 0, 0, 0, [])
    commits, started = history.commits, time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(writer(history, deadline, i + 1, result) for i in range(writers)))
    result.seconds = time.perf_counter() - started
    result.commits = history.commits - commits
    await history.close()
    return result


async def pg_admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(f"{server}/test")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def bench_postgresql(server: str, writer_counts: list[int], seconds: float) -> list[Result]:
    name = f"nbo_bench_{os.getpid()}"
    await pg_admin(server, f"CREATE DATABASE {name}")
    url = f"{server.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        return [await run("postgresql", url, n, seconds) for n in writer_counts]
    finally:
        await pg_admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def bench_sqlite(writer_counts: list[int], seconds: float) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        return [await run("sqlite", url, n, seconds) for n in writer_counts]


async def main(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.writers.split(",")]
    if args.backend in ("sqlite", "both"):
        for r in await bench_sqlite(counts, args.seconds):
            print(r.line(), flush=True)
    if args.backend in ("postgresql", "both"):
        for r in await bench_postgresql(args.pg_server, counts, args.seconds):
            print(r.line(), flush=True)


def feature_snapshot(n: int) -> tuple:
    """A demo-like snapshot of `n` values: amounts with decimals, flags, a category, missing values."""
    kinds = (lambda i: round(1234.5678 * (i + 1), 2), lambda i: i % 2 == 0, lambda i: "gold", lambda i: None,
             lambda i: 1_790_000_000.25 + i)  # fmt: skip
    return tuple(kinds[i % len(kinds)](i) for i in range(n))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--writers", default="1,10,100", help="comma-separated numbers of concurrent writers")
    parser.add_argument("--features", type=int, default=0, help="feature values kept per decision (0: none)")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    if args.features:
        FEATURES = feature_snapshot(args.features)
        print(f"each decision keeps {args.features} feature values: {len(orjson.dumps(FEATURES))} bytes of JSON")
    asyncio.run(main(args))
