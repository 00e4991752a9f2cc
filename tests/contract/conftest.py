"""Fixtures for the real services the contract suites run against.

Naming, so that engineers can add fixtures side by side: PostgreSQL fixtures start with `pg_`, SQLite ones
with `sqlite_`, Redis ones with `redis_`.

The PostgreSQL fixtures (`pg_database`, `pg_url`) are in tests/conftest.py, shared with the API suite.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from coordination.budgets import InMemoryBudgetCounter, RedisBudgetCounter
from decisioning.ports import BudgetCounter, CustomerCache
from features.memory import InMemoryCustomerCache
from features.redis_cache import RedisCustomerCache
from features.redis_client import RedisClient
from history import SqlHistory
from history.migrate import upgrade
from tests.conftest import PG_SERVER as PG_SERVER  # re-exported: suites name them
from tests.conftest import REDIS_URL as REDIS_URL
from tests.conftest import pg_admin as pg_admin
from tests.conftest import pg_async_url as pg_async_url
from tests.conftest import pg_run as pg_run
from tests.conftest import redis_test_client
from tests.redis_cluster import LocalRedisCluster, start_cluster


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database file, fresh for this test (the embedded default's setup)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    upgrade(url)
    return url


# --- Redis: customer cache and budgets (fixtures start with `redis_` or `cache_`) ----------------------
# Every Redis suite runs twice: on the single test Redis (NBO_TEST_REDIS_URL) and on a real 3-master Redis
# Cluster started for the session (tests/redis_cluster.py). `redis_client` is parametrised here, so every
# contract test that asks for it (directly, or through `redis_prefix`, `redis_cache`, `stream`...) runs on
# both; `cache_store` and `cache_budgets` choose memory|redis|cluster themselves. Every test writes under
# its own key prefix inside this session's prefix, and deletes its keys afterwards; an unreachable Redis
# fails the test.
REDIS_SESSION_PREFIX = f"nbotest-{uuid.uuid4().hex[:12]}"
CACHE_FEATURE_NAMES = ("age", "income_monthly", "segment", "has_mortgage", "credit_score")
REDIS_TARGETS = [pytest.param(target, marks=pytest.mark.services) for target in ("redis", "cluster")]


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A 3-master Redis Cluster on loopback for this session, stopped (and its directory removed) after."""
    try:
        cluster = start_cluster()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        pytest.fail(f"could not start a Redis Cluster for the tests: {error}")
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_test_prefix() -> str:
    """A key prefix private to this test (the Redis fixtures delete its keys afterwards)."""
    return f"{REDIS_SESSION_PREFIX}:{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=REDIS_TARGETS)
def redis_url(request: pytest.FixtureRequest) -> str:
    """The URL of the Redis under test: the single server, or any node of the cluster."""
    return REDIS_URL if request.param == "redis" else request.getfixturevalue("redis_cluster").url


@pytest.fixture
async def redis_client(redis_url: str, redis_test_prefix: str) -> AsyncIterator[RedisClient]:
    """The service's client on the Redis under test; this test's prefixed keys are deleted after."""
    async with redis_test_client(redis_url) as client:
        yield client
        await delete_prefixed(client, redis_test_prefix)


@pytest.fixture
def redis_prefix(redis_client: RedisClient, redis_test_prefix: str) -> str:
    """A key prefix private to this test; its keys are deleted afterwards."""
    return redis_test_prefix


async def delete_prefixed(client: RedisClient, prefix: str) -> None:
    # SCAN visits every primary of a cluster; DEL of many keys is split by slot by redis-py. `*` first:
    # hash-tagged keys such as a stream's index (`{<prefix>:history}:...`) start with a brace.
    keys = [key async for key in client.scan_iter(match=f"*{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
def redis_cache(redis_client: RedisClient, redis_prefix: str) -> RedisCustomerCache:
    return RedisCustomerCache(redis_client, feature_names=CACHE_FEATURE_NAMES, prefix=redis_prefix)


@pytest.fixture
async def redis_single_client(redis_test_prefix: str) -> AsyncIterator[RedisClient]:
    async with redis_test_client(REDIS_URL) as client:
        yield client
        await delete_prefixed(client, redis_test_prefix)


@pytest.fixture
async def redis_cluster_client(redis_cluster: LocalRedisCluster, redis_test_prefix: str) -> AsyncIterator[RedisClient]:
    async with redis_test_client(redis_cluster.url) as client:
        yield client
        await delete_prefixed(client, redis_test_prefix)


def _store_client(request: pytest.FixtureRequest) -> RedisClient:
    """The client for a `cache_store`/`cache_budgets` param (which cannot reach the parametrised
    `redis_client`: pytest parametrises only what a test names statically)."""
    return request.getfixturevalue("redis_single_client" if request.param == "redis" else "redis_cluster_client")


@pytest.fixture(params=["memory", *REDIS_TARGETS])
def cache_store(request: pytest.FixtureRequest) -> CustomerCache:
    """The customer cache under contract: in process, on the real Redis, on a real Redis Cluster."""
    if request.param == "memory":
        return InMemoryCustomerCache()
    prefix = request.getfixturevalue("redis_test_prefix")
    return RedisCustomerCache(_store_client(request), feature_names=CACHE_FEATURE_NAMES, prefix=prefix)


@pytest.fixture(params=["memory", *REDIS_TARGETS])
def cache_budgets(request: pytest.FixtureRequest) -> BudgetCounter:
    """The budget counter under contract: in process, on the real Redis, on a real Redis Cluster."""
    if request.param == "memory":
        return InMemoryBudgetCounter()
    return RedisBudgetCounter(_store_client(request), prefix=request.getfixturevalue("redis_test_prefix"))


# --- the SQL history on both of its databases ------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def history_url(request: pytest.FixtureRequest) -> str:
    """The embedded SQLite history, then the real PostgreSQL (a suite may define its own `history`)."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
async def history(history_url: str) -> AsyncIterator[SqlHistory]:
    h = SqlHistory(history_url)
    await h.start()
    yield h
    await h.close()
