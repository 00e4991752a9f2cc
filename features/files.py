"""Customer feature files (CSV or Parquet, one row per customer, a `customer_id` column), read in batches.

Every batch goes through the schema's batch validator: what comes out is ready for
`CustomerCache.put_features`, and the `LoadReport` says what was rejected or will be defaulted.
CSV columns are read as text and coerced by the schema, not by Arrow's type inference: inference looks at
the first block only, so a column typed by hand ("yes", "1", "Y") would otherwise fail half way through.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from decisioning.catalogue import FeatureSpec
from decisioning.quality import LoadReport, validate_columns
from decisioning.types import FeatureValue

ID_COLUMN = "customer_id"
Rows = list[tuple[str, dict[str, FeatureValue]]]


def read_feature_file(path: str | Path, specs: Sequence[FeatureSpec]) -> tuple[Rows, LoadReport]:
    """All validated rows of a small feature file, and the report.

    >>> rows, report = read_feature_file("customers.csv", specs)   # doctest: +SKIP
    >>> report.summary()["rejected"]                          # doctest: +SKIP
    {'age': 3}
    """
    report = LoadReport()
    rows = [row for batch in iter_feature_batches(path, specs, report) for row in batch]
    return rows, report


def iter_feature_batches(
    path: str | Path, specs: Sequence[FeatureSpec], report: LoadReport, batch_size: int = 5000
) -> Iterator[Rows]:
    """Validated rows, `batch_size` customers at a time; counts go into `report` as batches are read."""
    for columns in _column_batches(Path(path), batch_size):
        if ID_COLUMN not in columns:
            raise ValueError(f"{path}: no '{ID_COLUMN}' column")
        yield validate_columns(specs, columns, report, ID_COLUMN)


def _column_batches(path: Path, batch_size: int) -> Iterator[dict[str, Sequence[Any]]]:
    batches = _parquet_batches(path, batch_size) if _is_parquet(path) else _csv_batches(path, batch_size)
    for batch in batches:
        for start in range(0, batch.num_rows, batch_size):
            yield batch_columns(batch.slice(start, batch_size))


def batch_columns(batch: pa.RecordBatch) -> dict[str, Sequence[Any]]:
    """One Arrow batch as the columns `validate_columns` reads (ids as str lists, numbers as numpy)."""
    columns = zip(batch.schema.names, batch.columns, strict=True)
    return {name: column.to_pylist() if name == ID_COLUMN else _values(column) for name, column in columns}


def _values(column: pa.Array) -> Sequence[Any]:
    # Number columns go to numpy (missing as NaN): the validator checks those a whole column at a time.
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return column.to_numpy(zero_copy_only=False)
    return column.to_pylist()


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


def _parquet_batches(path: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size)


def _csv_batches(path: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True)
    read = pacsv.ReadOptions(block_size=1 << 22)  # ~4 MB blocks: a few thousand rows of 50 features
    with pacsv.open_csv(path, read_options=read, convert_options=convert) as reader:
        yield from reader
