"""Fixtures for the real services the contract suites run against.

Naming, so that engineers can add fixtures side by side: PostgreSQL fixtures start with `pg_`, SQLite ones
with `sqlite_`, Redis ones with `redis_`.

PostgreSQL is expected at 127.0.0.1:5432 (user postgres, trust auth; NBO_TEST_PG_SERVER overrides the
server URL). A fresh database `nbo_test_<pid>` is created from the `test` database once per session,
migrated with `alembic upgrade head` (so the migrations are tested) and dropped at the end. When the server
is unreachable the tests that need it fail: they are never skipped.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from coordination.budgets import InMemoryBudgetCounter, RedisBudgetCounter
from decisioning.ports import BudgetCounter, CustomerCache
from features.memory import InMemoryCustomerCache
from features.redis_cache import RedisCustomerCache
from history.migrate import upgrade
from tests.conftest import REDIS_URL as REDIS_URL  # re-exported: the stream suite names it

PG_SERVER = os.environ.get("NBO_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
PG_HISTORY_TABLES = ("decisions", "contacts", "responses")


def pg_run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run admin SQL from a sync fixture, on a private loop that leaves pytest-asyncio's alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def pg_admin(sql: str, database: str = "test") -> None:
    try:
        conn = await asyncpg.connect(f"{PG_SERVER}/{database}", timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL at {PG_SERVER}/{database} is unreachable: {error!r}")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_async_url(database: str) -> str:
    return f"{PG_SERVER.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session; yields its SQLAlchemy URL."""
    name = f"nbo_test_{os.getpid()}"
    pg_run(pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    pg_run(pg_admin(f"CREATE DATABASE {name}"))
    try:
        upgrade(pg_async_url(name))
        yield pg_async_url(name)
    finally:
        pg_run(pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database with the history tables emptied for this test."""
    name = pg_database.rsplit("/", 1)[1]
    pg_run(pg_admin(f"TRUNCATE {', '.join(PG_HISTORY_TABLES)}", database=name))
    return pg_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database file, fresh for this test (the embedded default's setup)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    upgrade(url)
    return url


# --- Redis: customer cache and budgets (fixtures start with `redis_` or `cache_`) ----------------------
# `redis_client` (tests/conftest.py) is on NBO_TEST_REDIS_URL. Every test writes under its own key prefix
# inside this session's prefix, and deletes its keys afterwards; an unreachable Redis fails the test.
REDIS_SESSION_PREFIX = f"nbotest-{uuid.uuid4().hex[:12]}"
CACHE_FEATURE_NAMES = ("age", "income_monthly", "segment", "has_mortgage", "credit_score")


@pytest.fixture
async def redis_prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A key prefix private to this test; its keys are deleted afterwards."""
    prefix = f"{REDIS_SESSION_PREFIX}:{uuid.uuid4().hex[:8]}"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
def redis_cache(redis_client: Redis, redis_prefix: str) -> RedisCustomerCache:
    return RedisCustomerCache(redis_client, feature_names=CACHE_FEATURE_NAMES, prefix=redis_prefix)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def cache_store(request: pytest.FixtureRequest) -> CustomerCache:
    """The customer cache under contract: in process, then on the real Redis."""
    if request.param == "memory":
        return InMemoryCustomerCache()
    return request.getfixturevalue("redis_cache")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def cache_budgets(request: pytest.FixtureRequest) -> BudgetCounter:
    """The budget counter under contract: in process, then on the real Redis."""
    if request.param == "memory":
        return InMemoryBudgetCounter()
    client = request.getfixturevalue("redis_client")
    return RedisBudgetCounter(client, prefix=request.getfixturevalue("redis_prefix"))
