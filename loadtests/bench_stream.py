"""Write-behind vs sync history: record_decision latency, and how fast the drainer empties the stream.

1. Latency of record_decision (decisions of 1-3 offers) through `SqlHistory` (sync: returns after the
   group commit in PostgreSQL) and through `StreamHistory` (write-behind: returns after the XADD), in an
   open loop (`--rates`: decisions arrive at a fixed rate, as requests reach a service; "callers" is the
   most calls in flight) and a closed loop (`--writers`: N callers each record in a loop, i.e. the
   saturation throughput, where latency is mostly queueing). With `--drainer-process` a drainer runs in another process
   during the write-behind runs, as in production (it then competes for the same cores).
2. Drain: the stream is filled with `--drain-decisions` decisions, then one `Drainer` empties it into
   PostgreSQL; prints entries/s and rows/s (decision + contact rows) per `--drain-batch`.

    .venv/bin/python loadtests/bench_stream.py
    .venv/bin/python loadtests/bench_stream.py --writers 1,100,300 --seconds 5 --drainer-process
    .venv/bin/python loadtests/bench_stream.py --redis-url redis://127.0.0.1:6390/0   # e.g. appendfsync always
    .venv/bin/python loadtests/bench_stream.py --redis-url redis+cluster://127.0.0.1:7000   # a Redis Cluster

A scratch database `nbo_bench_stream_<pid>` is created on --pg-server and dropped afterwards; the stream
`nbo-bench:<pid>:history` is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from features.redis_client import RedisClient, redis_client
from history import SqlHistory, upgrade
from history.drain import Drainer
from history.stream import StreamHistory, marker_prefix
from loadtests.bench_history import Result, make_decision, pg_admin

Record = Callable[..., Awaitable[None]]


async def caller(record: Record, deadline: float, seed: int, out: Result) -> None:
    rng, n = random.Random(seed), 0
    while time.perf_counter() < deadline:
        decision = make_decision(rng, seed * 10_000_000 + n)
        started = time.perf_counter()
        await record(decision)
        out.latencies.append(time.perf_counter() - started)
        out.decisions += 1
        out.rows += 1 + len(decision.contacts)
        n += 1


async def paced(label: str, record: Record, rate: float, seconds: float) -> Result:
    """Open loop: `rate` decisions a second arrive whatever the latency (as requests reach a service);
    `writers` of the result is the most calls in flight at once."""
    await record(make_decision(random.Random(0), -1))
    result, rng, in_flight = Result(label, 0, seconds, 0, 0, 0, []), random.Random(int(rate)), [0]

    async def one(n: int) -> None:
        decision = make_decision(rng, 50_000_000 + n)
        in_flight[0] += 1
        result.writers = max(result.writers, in_flight[0])
        started = time.perf_counter()
        await record(decision)
        result.latencies.append(time.perf_counter() - started)
        in_flight[0] -= 1
        result.decisions += 1

    tasks, started = [], time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate) - len(tasks)
        tasks += [asyncio.create_task(one(len(tasks) + i)) for i in range(due)]
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    return result


async def latency(label: str, record: Record, writers: int, seconds: float) -> Result:
    await record(make_decision(random.Random(0), -writers))  # warm connections and statements
    result = Result(label, writers, seconds, 0, 0, 0, [])
    started = time.perf_counter()
    await asyncio.gather(*(caller(record, started + seconds, i + 1, result) for i in range(writers)))
    result.seconds = time.perf_counter() - started
    return result


def line(r: Result) -> str:
    lat = sorted(r.latencies)
    p50, p99, worst = (lat[int(len(lat) * q)] * 1e3 for q in (0.5, 0.99, 0.999))
    return (
        f"{r.backend:<14} callers={r.writers:<4} decisions/s={r.decisions / r.seconds:>8.0f} "
        f"p50={p50:.2f}ms p99={p99:.2f}ms p99.9={worst:.2f}ms"
    )


def start_drainer(url: str, redis_url: str, stream: str) -> subprocess.Popen[bytes]:
    code = f"import asyncio; from history.drain import main; asyncio.run(main({url!r}, {redis_url!r}, {stream!r}))"
    return subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1])


async def drain(client: RedisClient, url: str, stream: str, decisions: int, batch: int) -> str:
    sql = SqlHistory(url, batch_max=batch)  # as `history.drain.main` builds it
    await sql.start()
    history = StreamHistory(client, sql, stream=stream)
    await history.start()
    rng, rows = random.Random(batch), 0
    for start in range(0, decisions, 1_000):
        chunk = [make_decision(rng, start + i) for i in range(min(1_000, decisions - start))]
        rows += sum(1 + len(d.contacts) for d in chunk)
        await asyncio.gather(*(history.record_decision(d) for d in chunk))
    drainer = Drainer(client, sql, stream=stream, group=f"bench-{batch}", batch=batch, block_ms=10)
    started = time.perf_counter()
    while await drainer.backlog():
        await drainer.drain_once()
    seconds = time.perf_counter() - started
    await history.close()
    return (
        f"drain batch={batch:<5} entries={drainer.stored} in {seconds:.2f}s: "
        f"{drainer.stored / seconds:,.0f} decisions/s, {rows / seconds:,.0f} rows/s into PostgreSQL"
    )


async def bench(args: argparse.Namespace, url: str) -> None:
    client = redis_client(args.redis_url, max_connections=args.redis_pool, timeout=5)  # or redis+cluster://
    stream = f"nbo-bench:{os.getpid()}:history"
    sql = SqlHistory(url)
    await sql.start()
    history = StreamHistory(client, sql, stream=stream)
    await history.start()
    drainer = start_drainer(url, args.redis_url, stream) if args.drainer_process else None
    try:
        for rate in (float(n) for n in args.rates.split(",") if n):
            print(f"open loop, {rate:,.0f} decisions/s:", flush=True)
            print(line(await paced("  sync", sql.record_decision, rate, args.seconds)), flush=True)
            print(line(await paced("  write_behind", history.record_decision, rate, args.seconds)), flush=True)
        for writers in (int(n) for n in args.writers.split(",") if n):
            print(line(await latency("sync", sql.record_decision, writers, args.seconds)), flush=True)
            print(line(await latency("write_behind", history.record_decision, writers, args.seconds)), flush=True)
        if drainer is not None:
            drainer.terminate()
            drainer.wait(30)
            print(f"backlog left by the drainer process: {await client.xlen(stream)} entries", flush=True)
        await client.delete(stream)
        for batch in (int(n) for n in args.drain_batch.split(",") if n):
            print(await drain(client, url, stream, args.drain_decisions, batch), flush=True)
            await client.delete(stream)
    finally:
        if drainer is not None and drainer.poll() is None:
            drainer.kill()
        await client.delete(stream, f"{stream}:dead")
        async for key in client.scan_iter(match=f"{marker_prefix(stream)}:*", count=1_000):
            await client.delete(key)
        await history.close()
        await client.aclose()


async def main(args: argparse.Namespace) -> None:
    name = f"nbo_bench_stream_{os.getpid()}"
    await pg_admin(args.pg_server, f"CREATE DATABASE {name}")
    url = f"{args.pg_server.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        await bench(args, url)
    finally:
        await pg_admin(args.pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="1000,3000", help="open loop: comma-separated decisions/s")
    parser.add_argument("--writers", default="1,100,300", help="closed loop: comma-separated concurrent callers")
    parser.add_argument("--redis-pool", type=int, default=64, help="Redis connections (the service uses 64)")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each latency run")
    parser.add_argument("--drain-decisions", type=int, default=50_000, help="decisions in the stream to drain")
    parser.add_argument("--drain-batch", default="500,2000", help="comma-separated drain batch sizes")
    parser.add_argument("--drainer-process", action="store_true", help="drain during the write-behind runs")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as `nbo serve` does")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.uvloop:
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
