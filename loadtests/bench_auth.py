"""What an API key costs a request: a verification from the in-process cache, and one from the store.

    python -m loadtests.bench_auth                     # embedded SQLite in a temporary directory
    python -m loadtests.bench_auth --url postgresql+asyncpg://postgres@127.0.0.1/test   # migrated database

Expected: the cached path (every request but one per key per NBO_AUTH_CACHE_SECONDS) in microseconds, the
store path around a millisecond.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from app.auth import KeyVerifier
from history.keys import SCOPES, SqlKeyStore
from history.migrate import upgrade


async def measure(url: str, cached_calls: int, store_calls: int) -> None:
    store = SqlKeyStore(url)
    await store.start()
    try:
        key_row, key = await store.create(f"bench-{time.time_ns()}", set(SCOPES), None)
        verifier = KeyVerifier(store, ttl=60.0)
        started = time.perf_counter()
        for _ in range(cached_calls):
            await verifier.verify(key)
        cached = (time.perf_counter() - started) / cached_calls
        started = time.perf_counter()
        for _ in range(store_calls):
            await store.verify(key)
        uncached = (time.perf_counter() - started) / store_calls
        await store.revoke(key_row.key_id)
    finally:
        await store.close()
    print(f"cached verification: {cached * 1e6:.1f} us; from the store: {uncached * 1e3:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a migrated history database (default: a fresh SQLite file)")
    parser.add_argument("--cached-calls", type=int, default=20_000)
    parser.add_argument("--store-calls", type=int, default=500)
    args = parser.parse_args()
    url = args.url
    if url is None:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'history.db'}"
        upgrade(url)
    asyncio.run(measure(url, args.cached_calls, args.store_calls))


if __name__ == "__main__":
    main()
