"""The nbo servers of two code trees side by side: before/after figures from one run, on the same stores.

On a shared 2-core machine, figures from two runs minutes apart differ by more than most changes (another
process's load comes and goes), so a change is measured against its base in ONE run: `make bench`'s
stores and mix, one server per (tree, server kind), and fixed-rate open-loop phases interleaved round by
round (the order of the trees flipped every round). The figure to read is the server CPU per request,
which queueing does not inflate; p50/p99 and the stage means are printed beside it.

    git worktree add /tmp/base main   # or: mkdir /tmp/base && git archive main | tar -x -C /tmp/base
    .venv/bin/python -m loadtests.bench_trees base=/tmp/base after=. --rates 150,300 --rounds 4
    .venv/bin/python -m loadtests.bench_trees base=/tmp/base after=. --servers nbo-embedded --only decision,response

`--only` runs phases of one kind of request each (the mix's decisions, then its responses...), so that the
CPU per request is that kind's.

Each server imports the project from its tree (PYTHONPATH), the rest from this virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

from loadtests import bench, bench_stack, openloop, servers, stages
from loadtests.results import EMBEDDED, STACK

Row = tuple[float, float, float, dict[str, float], int]  # CPU ms/request, p50 ms, p99 ms, stage means, errors
MIX = "mix"  # every kind of request of the mix, in its order (not `--only`)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trees", nargs="+", help="LABEL=DIRECTORY, two or more")
    p.add_argument("--servers", default=f"{EMBEDDED},{STACK}")
    p.add_argument("--rates", default="150,300", help="requests/s of the open-loop phases")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--only", default="", help="request kinds (decision,response,event), a phase each; default: the mix")
    args = p.parse_args(argv)
    args.kind_list = [k for k in args.only.split(",") if k] or [MIX]
    args.tree_dirs = {label: str(Path(d).resolve()) for label, d in (t.split("=", 1) for t in args.trees)}
    return args


def start(kind: str, label: str, tree: str, scratch: Path, stores: dict[str, str], redis_port: int) -> servers.Server:
    port = servers.free_port()
    cwd = scratch / f"{kind}-{label}"
    cwd.mkdir(exist_ok=True)
    env: dict[str, str | None] = {**bench.common_env(scratch), "NBO_PORT": str(port), "PYTHONPATH": tree}
    env |= bench.stack_env(stores, redis_port) if kind == STACK else bench.embedded_env(cwd)
    command = [sys.executable, "-m", "app.cli", "serve"]
    return servers.start(f"{kind}-{label}", command, env, port, cwd / "server.log", cwd=cwd)


def phase(run: bench.Run, server: servers.Server, kind: str, rate: float, seconds: float, only: str = MIX) -> Row:
    url = f"http://127.0.0.1:{server.port}"
    requests = [r for r in run.requests[kind] if only in (MIX, r.kind)]
    before, cpu0 = stages.scrape(url), servers.total_cpu(server.pids())
    outcome = asyncio.run(openloop.run("127.0.0.1", server.port, requests, rate, seconds))
    cpu1, means = servers.total_cpu(server.pids()), stages.means_ms(before, stages.scrape(url))
    latency = openloop.latency_summary(outcome.latencies)
    errors = sum(1 for s in outcome.statuses if s >= 300)
    return (cpu1 - cpu0) / len(outcome.latencies) * 1000, latency["p50_ms"], latency["p99_ms"], means, errors


Key = tuple[str, str, float] | tuple[str, str, float, str]  # (server kind, tree, rate[, request kind of --only])


def summary(rows: dict[Key, list[Row]]) -> str:
    lines = ["medians over the rounds:"]
    for (kind, label, rate, *only), found in rows.items():
        cpu, p50, p99 = (statistics.median(r[i] for r in found) for i in range(3))  # type: ignore[misc]
        means = {k: statistics.median(r[3].get(k, 0.0) for r in found) for k in found[0][3]}
        lines.append(f"{rate:g}/s {kind:13} {''.join(f'{o:9}' for o in only)}{label:8} CPU {cpu:.3f} ms/request  "
                     f"p50 {p50:.2f}  p99 {p99:.2f} ms  errors {sum(r[4] for r in found)}")  # fmt: skip
        lines.append("    " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
    return "\n".join(lines)


def rounds(
    args: argparse.Namespace,
    run: bench.Run,
    started: dict[tuple[str, str], servers.Server],
    kinds: list[str],
    rates: list[float],
) -> dict[Key, list[Row]]:
    """Every phase, round by round, the trees' order flipped each round; the rows by (kind, tree, rate,
    request kind)."""
    rows: dict[Key, list[Row]] = {}
    for round_ in range(args.rounds):
        labels = list(args.tree_dirs) if round_ % 2 == 0 else list(args.tree_dirs)[::-1]
        phases = ((r, o, k, t) for r in rates for o in args.kind_list for k in kinds for t in labels)
        for rate, only, kind, label in phases:
            row = phase(run, started[(kind, label)], kind, rate, args.seconds, only)
            rows.setdefault((kind, label, rate) if only == MIX else (kind, label, rate, only), []).append(row)
            print(f"round {round_ + 1} {rate:g}/s {kind:13} {only:8} {label:8} CPU {row[0]:.3f} ms/request  "
                  f"p50 {row[1]:.2f}  p99 {row[2]:.2f} ms  load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    kinds, rates = args.servers.split(","), [float(r) for r in args.rates.split(",")]
    setup = bench.parse_args(["--quick", "--no-core", "--servers", args.servers])
    setup.customers = args.customers
    with tempfile.TemporaryDirectory(prefix="nbo-bench-trees-") as tmp:
        scratch = Path(tmp)
        redis_proc, redis_port = servers.start_redis(scratch)
        started: dict[tuple[str, str], servers.Server] = {}
        try:
            stores = asyncio.run(bench.prepare_stores(setup, scratch, redis_port))
            run = bench.Run(setup, scratch, stores, redis_proc.pid)
            for kind in kinds:
                for label, tree in args.tree_dirs.items():
                    server = started[(kind, label)] = start(kind, label, tree, scratch, stores, redis_port)
                    asyncio.run(openloop.run("127.0.0.1", server.port, run.requests[kind], 100, 2))  # warm up
            print(summary(rounds(args, run, started, kinds, rates)))
        finally:
            for server in started.values():
                server.stop()
            redis_proc.terminate()
            asyncio.run(bench_stack.admin(f"DROP DATABASE IF EXISTS {setup.database} WITH (FORCE)"))


if __name__ == "__main__":
    main()
