"""Feature sources other than a Parquet file, exported once per run to a Parquet file in the run directory.

The run then reads that file like any other: partitions are cut the same way on a resume, and a resumed
run reads the features its first attempt exported (not the table as it is now).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_ARROW_TYPES = {
    "float8": pa.float64(), "float4": pa.float64(), "numeric": pa.float64(), "int2": pa.int64(),
    "int4": pa.int64(), "int8": pa.int64(), "bool": pa.bool_(), "text": pa.string(), "varchar": pa.string(),
}  # fmt: skip
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


async def export_postgres_table(dsn: str, table: str, path: Path, batch_size: int = 50_000) -> Path:
    """Write `table` (a `customer_id` column and one column per feature) to `path` (the caller skips this
    when the run has it already). `dsn` is a libpq URL (postgresql://...)."""
    import asyncpg

    if not _IDENTIFIER.match(table):
        raise ValueError(f"not a table name: {table!r}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    conn = await asyncpg.connect(dsn)
    writer = None
    try:
        async with conn.transaction():  # a cursor needs one; also a consistent snapshot of the table
            statement = await conn.prepare(f"SELECT * FROM {table} ORDER BY customer_id")
            # The schema from the table's column types: a first batch of nulls must not decide it.
            attributes = statement.get_attributes()
            schema = pa.schema([(a.name, _ARROW_TYPES.get(a.type.name, pa.string())) for a in attributes])
            cursor = await statement.cursor()
            while records := await cursor.fetch(batch_size):
                columns = {name: [r[i] for r in records] for i, name in enumerate(schema.names)}
                writer = writer or pq.ParquetWriter(tmp, schema)
                writer.write_table(pa.table(columns, schema=schema))
    finally:
        await conn.close()
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError(f"table {table} has no rows")
    tmp.replace(path)
    return path
