"""The SQLite side of group commit: a whole batch in ONE hop to one writer thread.

Through aiosqlite every statement is a round trip to a connection thread, and each return needs the GIL
back from an event loop that is busy serving requests: a batch (BEGIN, three inserts, COMMIT) paid that
five times (~24 ms per 100-decision batch under load). Here the batch's transaction runs entirely in
one dedicated thread on a plain `sqlite3` connection, so it pays once. Reads do the same on their own
threads (`history.sqlite_reader`); WAL lets them run beside the writer.

Rows are written exactly as SQLAlchemy's types would write them (its own SQLite DATETIME formatter,
JSON text, booleans as 0/1), so the two paths read back alike.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from history.batch import Keys, Rows, batch_plan, run_plan_sync
from history.database import SQLITE_PRAGMAS
from history.rows import json_text
from history.tables import EpochSeconds
from history.writer import Job

_SQLITE_DATETIME = sqlite.DATETIME().bind_processor(sqlite.dialect())


class SqliteWriter:
    """Runs group-commit transactions on one SQLite file from one thread.

    >>> writer = SqliteWriter("var/nbo.db")     # doctest: +SKIP
    >>> results = await writer.transact(jobs)    # doctest: +SKIP
    >>> await writer.close()                     # doctest: +SKIP
    """

    def __init__(self, path: str, synchronous: str = "full") -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        self._path = path
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbo-sqlite-writer")
        self._conn: sqlite3.Connection | None = None  # opened, used and closed on the writer thread only

    async def transact(self, jobs: Sequence[Job]) -> list[Any]:
        """Write the jobs in one committed transaction; one result per job (see `history.batch`)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transact, jobs)

    async def synchronous(self) -> str:
        """The writer connection's `PRAGMA synchronous`, as SQLite reports it: "full" or "normal"."""
        level = await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: self._connection().execute("PRAGMA synchronous").fetchone()[0]
        )
        return {1: "normal", 2: "full", 3: "extra"}.get(level, str(level))

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _transact(self, jobs: Sequence[Job]) -> list[Any]:
        conn = self._connection()
        # IMMEDIATE takes the write lock now (waiting up to busy_timeout), not at the first insert.
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = run_plan_sync(batch_plan(jobs), lambda table, rows: _insert_new(conn, table, rows))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                conn.execute("ROLLBACK")
            raise
        return results

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # isolation_level=None: we issue BEGIN and COMMIT ourselves.
            self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            for pragma in SQLITE_PRAGMAS:
                self._conn.execute(pragma)
            # NORMAL (opt-in): a commit survives a crash of the process but not of the machine; see engine.py.
            self._conn.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _insert_new(conn: sqlite3.Connection, table: sa.Table, rows: Rows) -> Keys:
    """Insert the rows, a chunk per statement (`INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING
    RETURNING` the keys), keeping the keys of the rows that were new.

    One statement per table and batch, not one per row: each `execute` releases the GIL around SQLite's
    work and must take it back from the event loop, which under load waits its turn.
    """
    encode, width = _encoder(table), len(table.columns)
    inserted: Keys = set()
    step = max(1, _MAX_VARIABLES // width)
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        values = [value for row in chunk for value in encode(row)]
        inserted.update(conn.execute(insert_sql(table, len(chunk)), values).fetchall())
    return inserted


# SQLite's limit on a statement's parameters has been 32,766 since 3.32; the history tables' widest row
# has 20 columns, so a chunk holds hundreds of rows, and a group-commit batch is one chunk.
_MAX_VARIABLES = 32_000


@lru_cache(maxsize=256)  # a statement per batch size: bounded, the common sizes stay
def insert_sql(table: sa.Table, rows: int = 1) -> str:
    names = ", ".join(c.name for c in table.columns)
    marks = "(" + ", ".join("?" for _ in table.columns) + ")"
    keys = ", ".join(c.name for c in table.primary_key.columns)
    values = ", ".join([marks] * rows)
    return f"INSERT INTO {table.name} ({names}) VALUES {values} ON CONFLICT DO NOTHING RETURNING {keys}"


@cache
def _encoder(table: sa.Table) -> Any:
    """A function turning a row dict into the parameter tuple of `insert_sql`."""
    converters = [(c.name, _converter(c.type)) for c in table.columns]
    return lambda row: tuple(convert(row[name]) if convert else row[name] for name, convert in converters)


def _converter(column_type: sa.types.TypeEngine[Any]) -> Any:
    if isinstance(column_type, EpochSeconds):
        return _sqlite_time
    if isinstance(column_type, sa.JSON):
        return json_text
    return None


def _sqlite_time(at: float | None) -> str | None:
    return None if at is None else _SQLITE_DATETIME(datetime.fromtimestamp(at, UTC))
