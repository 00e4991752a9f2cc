"""The PostgreSQL side of group commit: one transaction per batch, one statement per table.

All rows of a table travel as ONE JSON parameter of ONE fixed statement, unpacked by the server with
`json_populate_recordset` (typed by the table's own row type). Why not SQLAlchemy's multi-row insert? Its
"insertmanyvalues" renders a VALUES list sized to the batch, so every batch size is a new SQL text that
PostgreSQL parses and plans afresh, with every parameter built in Python. The fixed text is prepared once
per connection. Measured end to end (loadtests/bench_history.py, 100 writers): 4,600 -> 7,500 decisions/s.

>>> writer = PostgresWriter(engine)           # doctest: +SKIP
>>> results = await writer.transact(jobs)    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from history.batch import Keys, Rows, batch_plan, run_plan
from history.rows import JSON_OPTIONS, json_default
from history.tables import EpochSeconds
from history.writer import Job, is_data_error

# Rows per statement: bounds the JSON document one statement parses (outbound lists can be large).
CHUNK_ROWS = 2_000
# The partitioned tables (migration 0005) and the key table that keeps each row's natural key unique.
KEY_TABLES = {"contacts": ("contact_keys", "contacted_at"), "responses": ("response_keys", "responded_at")}


class PostgresWriter:
    """Runs the group-commit transactions on one long-lived connection of its own.

    A pooled connection per batch costs two extra round trips (the pre-ping on checkout, the reset on
    return) besides BEGIN, the inserts and COMMIT. A connection that failed is thrown away and the next
    batch opens a new one; a row refused for its data (or that could not be encoded) leaves it usable.

    >>> writer = PostgresWriter(engine)       # doctest: +SKIP
    >>> results = await writer.transact(jobs)  # doctest: +SKIP
    >>> await writer.close()                   # doctest: +SKIP
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def transact(self, jobs: Sequence[Job]) -> list[Any]:
        conn = await self._connection()
        try:
            async with conn.begin():
                return await run_plan(batch_plan(jobs), lambda table, rows: insert_new(conn, table, rows))
        except BaseException as error:
            # A row refused for its data, or one that could not be encoded: rolled back, the connection is
            # fine (the writer retries the batch job by job on it). Anything else: the connection may not be.
            if not (isinstance(error, Exception) and is_data_error(error)):
                await self.close()
            raise

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = await self._engine.connect()
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.invalidate()  # do not hand a connection in an unknown state back to the pool
            await conn.close()
        except Exception:  # already gone with the database: nothing left to release
            return


async def insert_new(conn: AsyncConnection, table: sa.Table, rows: Rows) -> Keys:
    """Insert the rows, skipping those whose key exists; returns the keys inserted."""
    inserted: Keys = set()
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        result = await conn.execute(insert_sql(table), {"rows": encode_rows(table, chunk)})
        inserted.update(tuple(r) for r in result)
    return inserted


@cache
def insert_sql(table: sa.Table) -> sa.TextClause:
    """The fixed bulk insert of `table`: rows from the `:rows` JSON array, conflicts skipped."""
    names = ", ".join(c.name for c in table.columns)
    keys = ", ".join(c.name for c in table.primary_key.columns)
    if table.name in KEY_TABLES:
        return _claiming_insert_sql(table, names, keys)
    # The parameter is sent as text and cast on the server: a json-typed parameter would go through the
    # driver's JSON codec and be encoded a second time.
    return sa.text(
        f"INSERT INTO {table.name} ({names}) "
        f"SELECT {names} FROM json_populate_recordset(NULL::{table.name}, CAST(:rows AS text)::json) "
        f"ON CONFLICT DO NOTHING RETURNING {keys}"
    )


def _claiming_insert_sql(table: sa.Table, names: str, keys: str) -> sa.TextClause:
    """The bulk insert of a partitioned table (migration 0005): its primary key includes the partition
    time, so its own ON CONFLICT cannot tell a repeated contact at another time. Each row first claims its
    key in the unpartitioned key table, and only the rows that claimed one are inserted: one statement,
    so a concurrent batch with the same key waits for this one's claim and then skips. The first of
    repeated keys within the batch stands (DISTINCT ON, in the order given), as with a plain ON CONFLICT.
    """
    key_table, at = KEY_TABLES[table.name]
    picked = ", ".join(f"f.{c.name}" for c in table.columns)
    return sa.text(
        f"WITH given AS (SELECT * FROM json_populate_recordset(NULL::{table.name}, CAST(:rows AS text)::json) "
        f"WITH ORDINALITY AS g), "
        f"firsts AS (SELECT DISTINCT ON ({keys}) * FROM given ORDER BY {keys}, ordinality), "
        f"claimed AS (INSERT INTO {key_table} ({keys}, {at}) SELECT {keys}, {at} FROM firsts "
        f"ON CONFLICT DO NOTHING RETURNING {keys}) "
        f"INSERT INTO {table.name} ({names}) SELECT {picked} FROM firsts f JOIN claimed USING ({keys}) "
        f"RETURNING {keys}"
    )


def encode_rows(table: sa.Table, rows: Sequence[dict[str, Any]]) -> str:
    """The rows as the JSON array `insert_sql` reads; epoch seconds become RFC 3339 UTC times."""
    times = _time_columns(table)
    converted = [{**row, **{name: _utc(row[name]) for name in times}} for row in rows]
    return orjson.dumps(converted, default=json_default, option=JSON_OPTIONS).decode()


@cache
def _time_columns(table: sa.Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if isinstance(c.type, EpochSeconds))


def _utc(at: float | None) -> datetime | None:
    return None if at is None else datetime.fromtimestamp(at, UTC)
