"""Features from the Redis feature cache: exported once per run to a Parquet file in the run directory,
which the run then reads like any feature file (resumable: a resumed run reads its first attempt's export).

The export SCANs the cache's feature keys (`{prefix}:v1:c:{<customer>}`; on Redis Cluster every primary is
scanned), sorts the customer ids (so two exports of the same cache cut the same partitions), then reads the
customers partition by partition with the cache's own `load` (its one-round-trip Lua read, `chunk`
customers concurrently) and writes each chunk as a row group. A customer's row is what a decision at
`as_of` reads: the batch features, the real-time event features over them, and each windowed count as
its count at `as_of`. Customers whose features were written under another feature schema (the cache
reads them as unknown) are left out and counted.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.ports import CustomerSnapshot
from features.files import ID_COLUMN
from features.redis_cache import RedisCustomerCache

_ARROW = {FeatureType.NUMBER: pa.float64(), FeatureType.BOOL: pa.bool_(), FeatureType.CATEGORY: pa.string()}


@dataclass(frozen=True)
class RedisExport:
    path: Path
    customers: int  # rows written
    unreadable: int  # keys whose features could not be read (another feature schema)


async def customer_ids(cache: RedisCustomerCache) -> list[str]:
    """Every customer with a features key, sorted."""
    start = len(cache.features_key(""))  - 1  # the id sits between the braces of the hash tag
    ids = []
    async for key in cache.client.scan_iter(match=f"{cache.prefix}:c:*", count=1000):
        text = key.decode() if isinstance(key, bytes) else key
        ids.append(text[start:-1])
    return sorted(ids)


async def export_redis_features(
    cache: RedisCustomerCache, specs: Sequence[FeatureSpec], path: Path, as_of: float, chunk: int = 5_000
) -> RedisExport:
    """Write every cached customer's features (a `customer_id` column and one column per feature) to `path`."""
    schema = pa.schema([(ID_COLUMN, pa.string())] + [(s.name, _ARROW[s.type]) for s in specs])
    ids = await customer_ids(cache)
    if not ids:
        raise ValueError(f"no customer features in Redis under {cache.prefix}:c:*")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written = unreadable = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for i in range(0, len(ids), chunk):
            snapshots = await asyncio.gather(*(cache.load(cid) for cid in ids[i : i + chunk]))
            rows = [_row(s, specs, as_of) for s in snapshots if s.features]
            unreadable += len(snapshots) - len(rows)
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                written += len(rows)
    tmp.replace(path)
    return RedisExport(path, written, unreadable)


def _row(snapshot: CustomerSnapshot, specs: Sequence[FeatureSpec], as_of: float) -> dict[str, object]:
    features = snapshot.features or {}
    row: dict[str, object] = {ID_COLUMN: snapshot.customer_id}
    for spec in specs:
        windowed = snapshot.windowed.get(spec.name)
        value = windowed.count_at(as_of) if windowed is not None else features.get(spec.name)
        row[spec.name] = _typed(spec, value)
    return row


def _typed(spec: FeatureSpec, value: object) -> object:
    """The value in its column's type; one that does not fit is left out (None), as validation would."""
    if value is None:
        return None
    try:
        if spec.type is FeatureType.NUMBER:
            return float(value)  # type: ignore[arg-type]
        if spec.type is FeatureType.BOOL:
            return value if isinstance(value, bool) else None
        return str(value)
    except (TypeError, ValueError):
        return None
