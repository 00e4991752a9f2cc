"""CPU per read of the SQLite history: the plain `sqlite3` readers against SQLAlchemy + aiosqlite, one process.

Two `SqlHistory`s on one file (the embedded default, and `sqlite_readers=0`: reads through the engine),
the same reads on each, in rounds that alternate the order. Per read: process CPU (every thread: the loop,
the reader or aiosqlite threads) and wall time, `--concurrency` reads in flight.

    .venv/bin/python -m loadtests.bench_reads --reads 3000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from decisioning.records import ContactRecord, DecisionRecord
from decisioning.types import Direction, Outcome
from history import SqlHistory
from history.migrate import upgrade

T0 = 1_790_000_000.0
Read = Callable[[SqlHistory, int], Awaitable[object]]
READS: dict[str, Read] = {
    "find_contact": lambda h, i: h.find_contact(f"d-{i % 1000}", "offer-1"),
    "latest_contact": lambda h, i: h.latest_contact(f"c-{i % 200}", "offer-1", T0 + i % 1000),
    "decision_for_request": lambda h, i: h.decision_for_request(f"req-{i % 1000}"),
    "summary": lambda h, i: h.summary(f"c-{i % 200}", since=0.0),
}


def decision(i: int) -> DecisionRecord:
    customer, at = f"c-{i % 200}", T0 + i
    offers = tuple(
        ContactRecord(f"d-{i}", customer, at, "web", Direction.INBOUND, f"offer-{k}", "cards", Outcome.PRESENTED,
                      rank=k + 1, propensity=0.1, value=10.0)
        for k in range(3)
    )  # fmt: skip
    return DecisionRecord(f"d-{i}", customer, at, "web", "home_hero", None, False, "m-1", "cat-1", offers,
                          context={"page": "/cards"}, request_id=f"req-{i}")  # fmt: skip


async def per_read(h: SqlHistory, read: Read, count: int, concurrency: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per read."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, count, concurrency):
        await asyncio.gather(*(read(h, i) for i in range(start, min(start + concurrency, count))))
    return (time.process_time() - cpu0) / count * 1e6, (time.perf_counter() - wall0) / count * 1e6


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="nbo-bench-reads-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'history.db'}"
        await asyncio.to_thread(upgrade, url)
        paths = {"sqlite3": SqlHistory(url), "aiosqlite": SqlHistory(url, sqlite_readers=0)}
        for h in paths.values():
            await h.start()
        try:
            await asyncio.gather(*(paths["sqlite3"].record_decision(decision(i)) for i in range(1000)))
            found: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for round_ in range(args.rounds):
                order = list(paths) if round_ % 2 == 0 else list(paths)[::-1]
                for name, read in READS.items():
                    for label in order:
                        found.setdefault((name, label), []).append(
                            await per_read(paths[label], read, args.reads, args.concurrency)
                        )
            for (name, label), rows in found.items():
                cpu, wall = (statistics.median(r[i] for r in rows) for i in range(2))
                every = " ".join(f"{r[0]:.0f}" for r in rows)
                print(f"{name:22} {label:10} CPU {cpu:6.0f} µs/read  wall {wall:6.0f} µs/read  (CPU by round: {every})")
        finally:
            for h in paths.values():
                await h.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reads", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=8)
    asyncio.run(main(p.parse_args()))
