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
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from history.migrate import upgrade

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
