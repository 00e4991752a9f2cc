"""The input, streamed: a feature Parquet file cut into partitions of a fixed number of customers.

Partition i is always rows [i * size, (i + 1) * size) of the file, whatever the file's row groups, so a
resumed run cuts the same partitions and can skip the finished ones. Only a few partitions are in memory
at a time (the engines bound how many are in flight).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batch.partition import Partition
from decisioning.summary import HistorySummary
from features.files import ID_COLUMN


def count_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def partitions(
    path: Path, size: int, summaries: Mapping[str, HistorySummary], skip: frozenset[int] = frozenset()
) -> Iterator[Partition]:
    """The file's partitions in order, each with the history summaries of its customers; partitions in
    `skip` (already done) are read past but not built."""
    for index, batch in enumerate(_exact_batches(path, size)):
        if index in skip:
            continue
        ids = batch.column(batch.schema.get_field_index(ID_COLUMN)).to_pylist()
        mine = {cid: summaries[cid].to_json() for cid in ids if cid in summaries}
        yield Partition(index, batch, mine)


def _exact_batches(path: Path, size: int) -> Iterator[pa.RecordBatch]:
    """Record batches of exactly `size` rows (the last one shorter), re-cut across row groups."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
        pending.append(batch)
        held += batch.num_rows
        while held >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size).combine_chunks().to_batches()[0]
            rest = table.slice(size)
            pending, held = ([rest.combine_chunks().to_batches()[0]] if rest.num_rows else []), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
