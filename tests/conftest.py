"""Fixtures shared by the contract and end-to-end suites, and the `services` marker's bookkeeping.

Redis is expected at 127.0.0.1:6379 (NBO_TEST_REDIS_URL overrides); an unreachable Redis fails the test,
never skips it. `-m "not services"` runs what needs neither Redis nor PostgreSQL: a test whose fixtures
reach `redis_client` or `pg_database` is marked `services` here, whichever fixture brings them in.
Fixtures that choose a store at run time (`request.getfixturevalue`) cannot be seen from here: their
Redis or PostgreSQL params carry the mark themselves (`pytest.param(..., marks=pytest.mark.services)`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("NBO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVICE_FIXTURES = frozenset({"redis_client", "pg_database"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    """A client on the test Redis; a bounded, blocking pool so that 2,000 concurrent calls queue."""
    client = Redis(connection_pool=BlockingConnectionPool.from_url(REDIS_URL, max_connections=32, timeout=30))
    try:
        await client.ping()
    except (OSError, RedisError) as error:
        await client.aclose()
        pytest.fail(f"Redis at {REDIS_URL} is unreachable: {error!r}")
    yield client
    await client.aclose()
