"""The PostgreSQL side of group commit: one transaction per batch, one statement per table.

All rows of a table travel as ONE JSON parameter of ONE fixed statement, unpacked by the server with
`json_populate_recordset` (typed by the table's own row type). Why not SQLAlchemy's multi-row insert? Its
"insertmanyvalues" renders a VALUES list sized to the batch, so every batch size is a new SQL text that
PostgreSQL parses and plans afresh, with every parameter built in Python. The fixed text is prepared once
per connection. Measured end to end (loadtests/bench_history.py, 100 writers): 4,600 -> 7,500 decisions/s.

A batch of decisions only (the decision path's writes, nearly every batch) goes in ONE statement instead:
the decisions and their contacts as data-modifying CTEs, run on the driver's connection without BEGIN and
COMMIT around it. A single statement is its own transaction, atomic and durable when it returns, and one
round trip instead of four (BEGIN, two inserts, COMMIT): on this 2-core machine each round trip costs
~0.1 ms of CPU on the loopback and as much in wall time.

>>> writer = PostgresWriter(engine)           # doctest: +SKIP
>>> results = await writer.transact(jobs)    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from history.batch import DECISION, Keys, Rows, batch_plan, run_plan
from history.rows import JSON_OPTIONS, json_default
from history.tables import EpochSeconds, contacts, decisions
from history.writer import ENCODING_ERRORS, Job, is_data_error

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
        if _decisions_only(jobs):
            try:
                return await _decisions_in_one_statement(conn, jobs)
            except BaseException as error:  # cancelled mid-statement too: the connection's state is unknown
                if not (isinstance(error, Exception) and _refused_for_its_data(error)):
                    await self.close()
                    raise
                # A row refused for its data: nothing was written (one statement). The transaction below
                # meets the same refusal, in SQLAlchemy's form, and the writer then fails only that row.
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


def _decisions_only(jobs: Sequence[Job]) -> bool:
    """Whether the batch is decisions only, each contact row with its decision's id as its contact id (as
    the decision path writes them): the one-statement insert relies on both."""
    if not all(job.kind == DECISION for job in jobs):
        return False
    own = all(c["contact_id"] == job.payload[0]["decision_id"] for job in jobs for c in job.payload[1])
    return own and sum(len(job.payload[1]) for job in jobs) <= CHUNK_ROWS  # the bound of insert_new's chunks


async def _decisions_in_one_statement(conn: AsyncConnection, jobs: Sequence[Job]) -> list[bool]:
    """Insert the decisions (those whose decision or request id is new) and the contacts of the new ones in
    one statement; one result per job: whether its decision was stored (`history.batch` says the same)."""
    decision_rows = encode_rows(decisions, [job.payload[0] for job in jobs])
    contact_rows = encode_rows(contacts, [row for job in jobs for row in job.payload[1]])
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    stored = {row[0] for row in await driver.fetch(_decisions_sql(), decision_rows, contact_rows)}
    return [job.payload[0]["decision_id"] in stored for job in jobs]


@cache
def _decisions_sql() -> str:
    """Decisions, then the contacts of the decisions that were new, each claiming its key first (see
    `_claiming_insert_sql`). Every data-modifying CTE runs to completion whether or not the final SELECT
    reads it."""
    names = ", ".join(c.name for c in decisions.columns)
    key_table, at = KEY_TABLES["contacts"]
    contact_names = ", ".join(c.name for c in contacts.columns)
    picked = ", ".join(f"f.{c.name}" for c in contacts.columns)
    keys = ", ".join(c.name for c in contacts.primary_key.columns)
    return (
        f"WITH stored AS (INSERT INTO decisions ({names}) "
        f"SELECT {names} FROM json_populate_recordset(NULL::decisions, CAST($1 AS text)::json) "
        f"ON CONFLICT DO NOTHING RETURNING decision_id), "
        f"given AS (SELECT * FROM json_populate_recordset(NULL::contacts, CAST($2 AS text)::json) "
        f"WITH ORDINALITY AS g WHERE g.contact_id IN (SELECT decision_id FROM stored)), "
        f"firsts AS (SELECT DISTINCT ON ({keys}) * FROM given ORDER BY {keys}, ordinality), "
        f"claimed AS (INSERT INTO {key_table} ({keys}, {at}) SELECT {keys}, {at} FROM firsts "
        f"ON CONFLICT DO NOTHING RETURNING {keys}), "
        f"added AS (INSERT INTO contacts ({contact_names}) SELECT {picked} FROM firsts f JOIN claimed USING ({keys}) "
        f"RETURNING 1) "
        f"SELECT decision_id FROM stored"
    )


def _refused_for_its_data(error: Exception) -> bool:
    """A value that could not be encoded, or one PostgreSQL refused (SQLSTATE class 22, data exception, or
    23, integrity constraint violation): retrying the rows unchanged fails again, the connection is fine."""
    if isinstance(error, asyncpg.PostgresError):
        return str(getattr(error, "sqlstate", "") or "")[:2] in ("22", "23")
    return isinstance(error, ENCODING_ERRORS)


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
