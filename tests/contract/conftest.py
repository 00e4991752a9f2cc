"""Fixtures for the real services the contract suites run against.

Naming, so that engineers can add fixtures side by side: PostgreSQL fixtures start with `pg_`, SQLite ones
with `sqlite_`, Redis ones with `redis_`.

The PostgreSQL fixtures (`pg_database`, `pg_url`) are in tests/conftest.py, shared with the API suite.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from coordination.budgets import InMemoryBudgetCounter, RedisBudgetCounter
from decisioning.ports import BudgetCounter, CustomerCache
from features.memory import InMemoryCustomerCache
from features.redis_cache import RedisCustomerCache
from history.migrate import upgrade
from tests.conftest import PG_SERVER as PG_SERVER  # re-exported: suites name them
from tests.conftest import REDIS_URL as REDIS_URL
from tests.conftest import pg_admin as pg_admin
from tests.conftest import pg_async_url as pg_async_url
from tests.conftest import pg_run as pg_run


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
