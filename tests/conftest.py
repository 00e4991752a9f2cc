"""Fixtures shared by the contract, API and end-to-end suites, and the `services` marker's bookkeeping.

Redis is expected at 127.0.0.1:6379 (NBO_TEST_REDIS_URL overrides); an unreachable Redis fails the test,
never skips it. PostgreSQL is expected at 127.0.0.1:5432 (user postgres, trust auth; NBO_TEST_PG_SERVER
overrides the server URL): a fresh database `nbo_test_<pid>` is created from the `test` database once per
session, migrated with `alembic upgrade head` (so the migrations are tested) and dropped at the end; when
the server is unreachable the tests that need it fail.

`-m "not services"` runs what needs neither Redis nor PostgreSQL: a test whose fixtures reach
`redis_client` or `pg_database` is marked `services` here, whichever fixture brings them in.
Fixtures that choose a store at run time (`request.getfixturevalue`) cannot be seen from here: their
Redis or PostgreSQL params carry the mark themselves (`pytest.param(..., marks=pytest.mark.services)`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from redis.exceptions import RedisError

from features import redis_client as redis_clients
from features.redis_client import RedisClient
from history.migrate import upgrade

REDIS_URL = os.environ.get("NBO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVICE_FIXTURES = frozenset({"redis_client", "pg_database"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture
async def redis_client() -> AsyncIterator[RedisClient]:
    """A client on the test Redis; a bounded, blocking pool so that 2,000 concurrent calls queue."""
    async with redis_test_client(REDIS_URL) as client:
        yield client


@asynccontextmanager
async def redis_test_client(url: str) -> AsyncIterator[RedisClient]:
    """The service's client for `url` (single server or `redis+cluster://`), 32 connections, callers
    queue beyond; an unreachable Redis fails the test."""
    client = redis_clients.redis_client(url, max_connections=32, timeout=30)
    try:
        await client.ping()
    except (OSError, RedisError) as error:
        await client.aclose()
        pytest.fail(f"Redis at {url} is unreachable: {error!r}")
    try:
        yield client
    finally:
        await client.aclose()


PG_SERVER = os.environ.get("NBO_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
PG_HISTORY_TABLES = ("decisions", "contacts", "responses", "contact_keys", "response_keys", "api_keys")  # 0005, 0003


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
