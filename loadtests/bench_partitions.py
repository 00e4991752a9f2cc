"""The PostgreSQL history writer before and after migration 0005, in the same conditions.

Two scratch databases on --pg-server: one at 0002 (plain tables, `ON CONFLICT DO NOTHING` on the natural
keys), one at head (monthly partitions, each contact and response claiming its key in a key table first,
see history.postgres_writer). N concurrent writers record decisions for --seconds on each, alternating
--rounds times so that the machine's noise hits both alike. Both databases are dropped afterwards.

    .venv/bin/python loadtests/bench_partitions.py --writers 100 --seconds 3 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from history import postgres_writer
from history.migrate import upgrade
from loadtests.bench_history import pg_admin, run

PARTITIONED = dict(postgres_writer.KEY_TABLES)


def use_layout(revision: str) -> None:
    """Point the writer's statements at the layout of `revision` (0002: no key tables)."""
    postgres_writer.insert_sql.cache_clear()
    postgres_writer.KEY_TABLES.clear()
    if revision != "0002":
        postgres_writer.KEY_TABLES.update(PARTITIONED)


async def main(args: argparse.Namespace) -> None:
    names = {revision: f"nbo_bench_part_{revision}_{os.getpid()}" for revision in ("0002", "head")}
    base = args.pg_server.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        for revision, name in names.items():
            await pg_admin(args.pg_server, f"CREATE DATABASE {name}")
            await asyncio.to_thread(upgrade, f"{base}/{name}", revision)
        for _ in range(args.rounds):
            for revision, name in names.items():
                use_layout(revision)
                result = await run("postgresql", f"{base}/{name}", args.writers, args.seconds)
                print(f"{revision:>4} {result.line()}", flush=True)
    finally:
        use_layout("head")
        for name in names.values():
            await pg_admin(args.pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
