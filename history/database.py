"""The async SQLAlchemy engine of the contact history, tuned per dialect.

>>> engine = make_engine("sqlite+aiosqlite:///var/nbo.db")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from history.rows import dumps_json

SQLITE_BUSY_TIMEOUT_MS = 5_000

# Durability: in WAL mode a COMMIT appends the transaction to the -wal file before returning. With
# synchronous=FULL SQLite also fsyncs the WAL on every commit, so a committed decision survives a SIGKILL
# of the process (already true with NORMAL, since the write sits in the OS page cache) *and* a power loss
# or kernel crash (NORMAL could lose the last commits there). Group commit makes that one fsync per batch,
# not per decision, so we pay for the stronger guarantee. WAL also lets readers (summaries, listings) run
# while the writer commits. busy_timeout: another process (a CLI, a second worker) may hold the write
# lock for a moment; wait for it rather than fail.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
)


def make_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for `url` that encodes JSON with orjson and, on SQLite, sets the pragmas below.

    `options` go to `create_async_engine` (pool sizes and the like).
    """
    engine = create_async_engine(url, json_serializer=dumps_json, json_deserializer=orjson.loads, **options)
    if engine.dialect.name == "sqlite":
        ensure_sqlite_directory(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def ensure_sqlite_directory(url: str) -> None:
    """Create the directory of a SQLite database file (the embedded default lives in `var/`)."""
    Path(sqlite_file(url)).parent.mkdir(parents=True, exist_ok=True)


def sqlite_file(url: str) -> str:
    """The file of a SQLite URL. The history must outlive the process: in-memory databases are refused.

    >>> sqlite_file("sqlite+aiosqlite:///var/nbo.db")
    'var/nbo.db'
    """
    database = make_url(url).database
    if not database or database == ":memory:" or "mode=memory" in url:
        raise ValueError(f"the contact history needs a SQLite file, not {url!r}")
    return database


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()
