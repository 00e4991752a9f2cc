"""Where a finished run's list goes besides Parquet: a PostgreSQL table (COPY) and the Redis fallback.

Redis layout (docs/batch.md; read by the online service's prescored fallback):
    {prefix}:fallback:{channel}:{customer_id} -> JSON
    {"run_id": "...", "as_of": 1790000000.0, "channel": "email", "catalogue_version": "...",
     "model_version": "...", "offers": [{"offer_id": "...", "rank": 1, "treatment": "...", "propensity": 0.1,
     "value": 120.0, "priority": 12.0, "selection_probability": 1.0}, ...], "reason": null}
with a TTL (default 3 days): a fallback older than that is no answer at all. A customer with no offer gets
`"offers": []` and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from batch.rows import OUTPUT_SCHEMA

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_PG_TYPES = {"string": "text", "double": "double precision", "int16": "smallint", "bool": "boolean"}
FALLBACK_TTL_SECONDS = 3 * 86_400
_OFFER_KEYS = ("offer_id", "rank", "treatment", "propensity", "value", "priority", "selection_probability")


def fallback_key(prefix: str, channel: str, customer_id: str) -> str:
    """>>> fallback_key("nbo", "email", "c-000042")
    'nbo:fallback:email:c-000042'
    """
    return f"{prefix}:fallback:{channel}:{customer_id}"


def _table_sql(table: str) -> str:
    columns = ", ".join(f'"{f.name}" {_PG_TYPES[str(f.type)]}' for f in OUTPUT_SCHEMA)
    return f"CREATE TABLE IF NOT EXISTS {table} ({columns})"


async def copy_to_postgres(dsn: str, table: str, files: Sequence[Path], run_id: str) -> int:
    """COPY the run's rows into `table` (created if missing); a rerun replaces the run's earlier rows.

    `dsn` is a libpq URL (postgresql://...). Returns the rows copied.
    """
    import asyncpg

    if not _IDENTIFIER.match(table):
        raise ValueError(f"not a table name: {table!r}")
    schema, _, name = table.rpartition(".")
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(_table_sql(table))
            await conn.execute(f"DELETE FROM {table} WHERE run_id = $1", run_id)
            copied = 0
            for records in _records(files):
                await conn.copy_records_to_table(name, records=records, columns=OUTPUT_SCHEMA.names,
                                                 schema_name=schema or None)  # fmt: skip
                copied += len(records)
        return copied
    finally:
        await conn.close()


def _records(files: Sequence[Path], batch_size: int = 50_000) -> Iterator[list[tuple]]:
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            columns = [batch.column(name).to_pylist() for name in OUTPUT_SCHEMA.names]
            yield list(zip(*columns, strict=True))


async def write_fallback(
    client: Any, prefix: str, files: Sequence[Path], ttl_seconds: int = FALLBACK_TTL_SECONDS
) -> int:
    """Store each customer's ranked offers under its fallback key; returns the customers written.

    Each part file holds whole customers, in rank order, so a customer's rows are read together.
    """
    written = 0
    for path in files:
        table = pq.read_table(path).to_pylist()
        async with client.pipeline(transaction=False) as pipe:
            for customer_rows in _by_customer(table):
                first = customer_rows[0]
                key = fallback_key(prefix, first["channel"], first["customer_id"])
                pipe.set(key, orjson.dumps(_fallback_value(customer_rows)), ex=ttl_seconds)
                written += 1
            await pipe.execute()
    return written


def _by_customer(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i]["customer_id"] != rows[start]["customer_id"]:
            yield rows[start:i]
            start = i


def _fallback_value(rows: list[dict[str, Any]]) -> dict[str, Any]:
    first = rows[0]
    offers = [{k: r[k] for k in _OFFER_KEYS} for r in rows if r["offer_id"] is not None]
    return {
        "run_id": first["run_id"], "as_of": first["as_of"], "channel": first["channel"],
        "catalogue_version": first["catalogue_version"], "model_version": first["model_version"],
        "offers": offers, "reason": first["reason"],
    }  # fmt: skip
