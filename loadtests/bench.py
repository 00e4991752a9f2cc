"""`make bench`: nbo's full decision side by side with a scoring-only service, in one command.

Servers, each started here on a free port and kept up for the whole run:
- `scoring-only`: loadtests/scoring_only.py, FastAPI + LightGBM of the same model and offers, 2 workers;
- `nbo-stack`: `nbo serve --workers 2` on a private Redis (100k customers with seeded history summaries)
  and a fresh PostgreSQL database, durable sync history;
- `nbo-embedded`: `nbo serve`, the embedded default (one worker, in-process stores, SQLite history).
Phases, interleaved round by round (`--rounds`, medians reported): fixed-rate open loop at 300/s and
500/s (loadtests/openloop.py, latency from each request's due time), and saturation with wrk
(`-t1 -c16`, loadtests/mix.lua). The mix (loadtests/mix.py): web page views, call-centre requests with
explanations, responses and events; the scoring-only service gets its decisions only.
Per phase: req/s, decisions/s, p50/p95/p99/p99.9, CPU per request of the server processes, Redis and
the PostgreSQL backends (/proc/<pid>/stat), and each decision stage's mean from /metrics.

    make bench                         # 3 rounds, ~6 minutes
    .venv/bin/python -m loadtests.bench --quick          # a few seconds per phase, 10k customers
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
from redis.asyncio import BlockingConnectionPool, Redis

from decisioning.catalogue import Catalogue
from features import redis_scripts
from features.redis_cache import SUMMARY_HEADER, RedisCustomerCache
from features.redis_client import evalsha_pipelined
from history.keys import SqlKeyStore
from loadtests import bench_stack, mix, openloop, profiling, results, servers, stages
from loadtests.bench_core import summaries
from loadtests.results import BASELINE, EMBEDDED, SATURATION, STACK, Measurement

ROOT = Path(__file__).resolve().parents[1]
PhaseCounts = tuple[int, int, int, float, dict]  # requests, decisions, errors, seconds, latency summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--offers", type=int, default=100)
    p.add_argument("--trees", type=int, default=200)
    p.add_argument("--rates", default="300,500", help="fixed rates of the open-loop phases (requests/s)")
    p.add_argument("--open-seconds", type=float, default=5.0)
    p.add_argument("--wrk-seconds", type=int, default=20)
    p.add_argument("--wrk-connections", type=int, default=16)
    p.add_argument("--servers", default=f"{BASELINE},{STACK},{EMBEDDED}")
    p.add_argument("--core", action=argparse.BooleanOptionalAction, default=True, help="also run bench-core")
    p.add_argument("--profile", action="store_true", help="py-spy the nbo servers in round 1's saturation")
    p.add_argument("--stage-cpu", action="store_true", help="CPU per stage too (NBO_STAGE_CPU_TIMERS, ~2 µs/stage)")
    p.add_argument("--quick", action="store_true", help="1 round, 10k customers, a few seconds per phase")
    args = p.parse_args(argv)
    if args.stage_cpu:
        os.environ["NBO_STAGE_CPU_TIMERS"] = "true"
    if args.quick:
        args.rounds, args.customers, args.open_seconds, args.wrk_seconds = 1, 10_000, 2.0, 3
    args.rate_list = [float(r) for r in args.rates.split(",") if r]
    args.server_list = [s for s in args.servers.split(",") if s]
    args.database = f"nbo_bench_{os.getpid()}"
    return args


# --- setup --------------------------------------------------------------------------------------------


async def prepare_stores(args: argparse.Namespace, scratch: Path, redis_port: int) -> dict[str, str]:
    """Catalogue, customers (Parquet + Redis, seeded summaries), model and PostgreSQL database."""
    catalogue = bench_stack.write_catalogue(scratch / "catalogue", args.offers)
    # LightGBM trains on a thread of its own (it releases the GIL) while the stores fill.
    train = asyncio.to_thread(bench_stack.train_model, scratch / "models", catalogue, args.trees)
    training = asyncio.create_task(train)
    database_url = await bench_stack.create_database(args.database)
    key = await mix_key(database_url)
    url = f"redis://127.0.0.1:{redis_port}/0"
    client = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=64, timeout=30))
    try:
        cache = RedisCustomerCache(client, feature_names=[f.name for f in catalogue.features])
        await bench_stack.load_customers(cache, catalogue, args.customers, scratch)
        await seed_summaries(cache, catalogue, args.customers)
    finally:
        await client.aclose()
    version = await training
    return {"key": key, "database_url": database_url, "model_version": version,
            "offer_ids": ",".join(o.id for o in catalogue.offers)}  # fmt: skip


async def seed_summaries(cache: RedisCustomerCache, catalogue: Catalogue, count: int) -> None:
    """bench_stack's seeded summaries (5-35 contacts of the last 60 days), each distinct one encoded once and
    stored with pipelined STORE_SUMMARY calls: ~10x faster than one call per customer."""
    started = time.perf_counter()
    pool = summaries(catalogue, bench_stack.DISTINCT_HISTORIES, time.time(), np.random.default_rng(1))
    encoded = [[cache.summary_ttl, SUMMARY_HEADER, *(orjson.dumps(e.to_row()) for e in s.events)] for s in pool]
    sha = cache.client.register_script(redis_scripts.STORE_SUMMARY).sha
    for start in range(0, count, 2000):
        calls = [([cache.summary_key(f"c-{i:06d}")], encoded[i % len(encoded)])
                 for i in range(start + 1, min(start + 2000, count) + 1)]  # fmt: skip
        await evalsha_pipelined(cache.client, redis_scripts.STORE_SUMMARY, sha, calls)
    print(f"summaries: {count} seeded in {time.perf_counter() - started:.1f}s")


async def mix_key(database_url: str) -> str:
    """An API key for the mix: decisions, responses and events, every channel."""
    store = SqlKeyStore(database_url)
    await store.start()
    try:
        return (await store.create(f"bench-{int(time.time())}", {"decide", "respond", "events"}, None))[1]
    finally:
        await store.close()


def common_env(scratch: Path) -> dict[str, str]:
    return {"NBO_CATALOGUE_DIR": str(scratch / "catalogue"), "NBO_MODEL_DIR": str(scratch / "models"),
            "NBO_FEATURES_FILE": str(scratch / "customers.parquet"), "OMP_NUM_THREADS": "1",
            "NBO_LOG_LEVEL": "WARNING",
            "NBO_STAGE_CPU_TIMERS": os.environ.get("NBO_STAGE_CPU_TIMERS", "false")}  # fmt: skip


def start_server(name: str, scratch: Path, stores: dict[str, str], redis_port: int) -> servers.Server:
    port = servers.free_port()
    env: dict[str, str | None] = {**common_env(scratch), "NBO_PORT": str(port)}
    cwd = scratch / name
    cwd.mkdir(exist_ok=True)
    if name == BASELINE:
        command = [sys.executable, "-m", "uvicorn", "loadtests.scoring_only:app", "--port", str(port),
                   "--workers", "2", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                   "--log-level", "warning"]  # fmt: skip
        env["PYTHONPATH"] = str(ROOT)
    else:
        command = [sys.executable, "-m", "app.cli", "serve"]
        env |= stack_env(stores, redis_port) if name == STACK else embedded_env(cwd)
    return servers.start(name, command, env, port, cwd / "server.log", cwd=cwd)


def stack_env(stores: dict[str, str], redis_port: int) -> dict[str, str]:
    return {"NBO_ENVIRONMENT": "production", "NBO_WORKERS": "2", "NBO_DATABASE_URL": stores["database_url"],
            "NBO_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "NBO_HISTORY_MODE": "sync"}  # fmt: skip


def embedded_env(cwd: Path) -> dict[str, str | None]:
    return {"NBO_ENVIRONMENT": "development", "NBO_WORKERS": "1", "NBO_REDIS_URL": None,
            "NBO_DATABASE_URL": f"sqlite+aiosqlite:///{cwd / 'nbo.db'}"}  # fmt: skip


# --- one phase ----------------------------------------------------------------------------------------


class Run:
    """Everything the phases share: servers, their requests, the store processes to charge."""

    def __init__(self, args: argparse.Namespace, scratch: Path, stores: dict[str, str], redis_pid: int) -> None:
        self.args, self.scratch, self.stores, self.redis_pid = args, scratch, stores, redis_pid
        the_mix = mix.bodies(20_000, args.customers, stores["offer_ids"].split(","))
        headers = {"Authorization": f"Bearer {stores['key']}"}
        self.requests = {BASELINE: mix.requests(the_mix, {}, decisions_only=True),
                         STACK: mix.requests(the_mix, headers), EMBEDDED: mix.requests(the_mix, {})}  # fmt: skip
        self.wrk_files = {BASELINE: mix.write_wrk_file(scratch / "baseline.tsv", the_mix, decisions_only=True),
                          STACK: mix.write_wrk_file(scratch / "mix.tsv", the_mix)}  # fmt: skip
        self.wrk_files[EMBEDDED] = self.wrk_files[STACK]
        self.servers: dict[str, servers.Server] = {}
        self.profiles: list[Path] = []

    def profile(self, name: str) -> list[subprocess.Popen]:
        """py-spy on each worker of an nbo server for its saturation phase (files in the scratch dir)."""
        if name == BASELINE:
            return []
        server = self.servers[name]
        workers = servers.children(server.proc.pid) if name == STACK else [server.proc.pid]
        paths = [self.scratch / f"profile-{name}-{pid}.txt" for pid in workers]
        spies = [profiling.record(pid, self.args.wrk_seconds, path) for pid, path in zip(workers, paths, strict=True)]
        self.profiles.extend(paths)
        return [s for s in spies if s is not None]

    def pg_backends(self) -> list[int]:
        sql = f"SELECT coalesce(array_agg(pid), '{{}}') FROM pg_stat_activity WHERE datname = '{self.args.database}'"
        return list(asyncio.run(bench_stack.admin(sql)))

    def cpu(self, name: str, pg: list[int]) -> dict[str, float]:
        out = {"server": servers.total_cpu(self.servers[name].pids())}
        if name == STACK:
            out |= {"redis": servers.cpu_seconds(self.redis_pid), "postgres": servers.total_cpu(pg)}
        return out

    def measure(self, round_: int, name: str, phase: str, work: Callable[[], PhaseCounts]) -> Measurement:
        """Run one phase against one server, with CPU and stage totals taken around it."""
        server = self.servers[name]
        url = f"http://127.0.0.1:{server.port}"
        pg = self.pg_backends() if name == STACK else []
        scraped = stages.scrape(url) if name != BASELINE else {}
        cpu0 = self.cpu(name, pg)
        requests, decisions, errors, elapsed, latency = work()
        statuses = latency.pop("error_statuses", {})
        cpu1 = self.cpu(name, pg)
        stage_ms = stages.means_ms(scraped, stages.scrape(url)) if name != BASELINE else {}
        cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
        return Measurement(round_, name, phase, requests, decisions, errors, elapsed, latency, cpu, stage_ms, statuses)

    def open_loop(self, name: str, rate: float, seconds: float) -> PhaseCounts:
        port = self.servers[name].port
        outcome = asyncio.run(openloop.run("127.0.0.1", port, self.requests[name], rate, seconds))
        errors = sum(1 for s in outcome.statuses if s >= 300)
        decisions = sum(1 for k in outcome.kinds if k == "decision")
        latency: dict = openloop.latency_summary(outcome.latencies)
        pairs = zip(outcome.kinds, outcome.statuses, strict=True)
        latency["error_statuses"] = dict(Counter(f"{kind}:{status}" for kind, status in pairs if status >= 300))
        return len(outcome.latencies), decisions, errors, outcome.elapsed, latency

    def saturate(self, name: str) -> PhaseCounts:
        a, port = self.args, self.servers[name].port
        command = ["wrk", "-t1", f"-c{a.wrk_connections}", f"-d{a.wrk_seconds}s", "-s", str(mix.LUA),
                   f"http://127.0.0.1:{port}", "--", str(self.wrk_files[name])]  # fmt: skip
        env = {**os.environ, "NBO_BENCH_KEY": self.stores["key"] if name == STACK else ""}
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
        summary = parse_wrk(out)
        n = summary["requests"]
        kinds = [r.kind for r in self.requests[name]]
        decisions = sum(1 for i in range(n) if kinds[i % len(kinds)] == "decision")
        errors = sum(summary[k] for k in ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts"))
        latency = {k: summary[k] for k in summary if k.endswith("_ms")}
        return n, decisions, errors, summary["duration_us"] / 1e6, latency


def parse_wrk(output: str) -> dict:
    """The JSON line mix.lua's done() prints."""
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            return orjson.loads(line[9:])
    raise SystemExit(f"wrk printed no summary:\n{output}")


def run_phases(run: Run) -> list[Measurement]:
    a, rows = run.args, []
    for round_ in range(1, a.rounds + 1):
        for rate in a.rate_list:
            for name in a.server_list:
                rows.append(run.measure(round_, name, f"open-{rate:g}",
                                        lambda n=name, r=rate: run.open_loop(n, r, a.open_seconds)))  # fmt: skip
                print(brief(rows[-1]), flush=True)
        for name in a.server_list:
            spies = run.profile(name) if a.profile and round_ == 1 else []
            rows.append(run.measure(round_, name, SATURATION, lambda n=name: run.saturate(n)))
            for spy in spies:
                spy.wait()
            print(brief(rows[-1]), flush=True)
    return rows


def brief(m: Measurement) -> str:
    d = m.derived()
    return (f"round {m.round} {m.server:<13} {m.phase:<10} {d['rps']:7.0f} req/s  "
            f"p50 {m.latency_ms['p50_ms']:6.2f}  p99 {m.latency_ms['p99_ms']:7.2f} ms  errors {m.errors}  "
            f"CPU {d['cpu_ms_per_request_server']:.2f} ms/req {m.error_statuses or ''}")


def core_decisions_per_s() -> float | None:
    """`make bench-core`'s figure for the compiled model (lleaves), pinned to one core."""
    command = ["taskset", "-c", "0", sys.executable, "-m", "loadtests.bench_core", "--decisions", "5000"]
    out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         cwd=ROOT, check=False).stdout  # fmt: skip
    print(out, end="")
    found = re.search(r"lleaves:\s+(\d+) decisions/s", out)
    return float(found.group(1)) if found else None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="nbo-bench-") as tmp:
        rows, profiles = measure_all(args, Path(tmp), started)
        core = core_decisions_per_s() if args.core else None
        path = report(args, rows, core, started)
        for profile in profiles:
            if profile.exists():
                shutil.move(profile, path.parent / profile.name)
    if profiles:
        for name in {p.name.split("-")[1] + "-" + p.name.split("-")[2] for p in profiles}:
            files = sorted(path.parent.glob(f"profile-{name}-*.txt"))
            print(f"profile of {name} at saturation ({len(files)} worker(s)):\n{profiling.report(files)}")


def measure_all(args: argparse.Namespace, scratch: Path, started: float) -> tuple[list[Measurement], list[Path]]:
    """Set up, start every server, run the rounds, stop and clean up; the rows and profile files."""
    redis_proc, redis_port = servers.start_redis(scratch)
    run: Run | None = None
    try:
        stores = asyncio.run(prepare_stores(args, scratch, redis_port))
        run = Run(args, scratch, stores, redis_proc.pid)
        for name in args.server_list:
            server = run.servers[name] = start_server(name, scratch, stores, redis_port)
            warm_up = 2 if args.quick else 4  # seconds at 100/s: connections open, code paths warm
            asyncio.run(openloop.run("127.0.0.1", server.port, run.requests[name], 100, warm_up))
        print(f"setup done in {time.time() - started:.0f}s; load average {os.getloadavg()[0]:.2f}", flush=True)
        return run_phases(run), run.profiles
    finally:
        for server in run.servers.values() if run else ():
            server.stop()
        redis_proc.terminate()
        asyncio.run(bench_stack.admin(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)"))


def report(args: argparse.Namespace, rows: list[Measurement], core: float | None, started: float) -> Path:
    m = results.medians(rows)
    slow, fast = f"open-{min(args.rate_list):g}", f"open-{max(args.rate_list):g}"
    checks = results.goals(m, core, slow, fast)
    results.print_report(m, checks, args.rounds)
    meta = {"argv": sys.argv[1:], "rounds": args.rounds, "customers": args.customers, "offers": args.offers,
            "trees": args.trees, "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
            "seconds": time.time() - started, "core_decisions_per_s": core}  # fmt: skip
    path = results.write(rows, checks, meta)
    print(f"written: {path} ({time.time() - started:.0f}s in all)")
    return path


if __name__ == "__main__":
    main()
