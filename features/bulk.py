"""Bulk load of the nightly feature file into a customer cache, batch by batch, with progress.

For Redis each batch is one pipeline (transaction=False) of one EVALSHA (HSET + EXPIRE) per customer.
While Redis works through one batch, the next batch is read and validated: the write of batch n is started
before batch n+1 is validated, and awaited after, so the network and Redis overlap the Python work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from decisioning.catalogue import FeatureSpec
from decisioning.ports import CustomerCache
from decisioning.quality import LoadReport
from features.files import iter_feature_batches


async def load_features(
    path: str | Path,
    cache: CustomerCache,
    specs: Sequence[FeatureSpec],
    *,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    at: float | None = None,
) -> LoadReport:
    """Validate and load every customer of `path` into `cache`; return what was rejected or defaulted.

    `at` is the load time stamped on the features (default: now); `progress` is called after each batch
    is written, with the number of customers written so far.

    >>> report = await load_features("customers.parquet", cache, catalogue.features)  # doctest: +SKIP
    >>> report.loaded                                                                # doctest: +SKIP
    1000000
    """
    at = time.time() if at is None else at
    report = LoadReport()
    written = 0
    pending: asyncio.Task[int] | None = None
    try:
        for rows in iter_feature_batches(path, specs, report, batch_size):
            if pending is not None:
                written += await _finish(pending, written, progress)
            pending = asyncio.create_task(cache.put_features(rows, at))
            await asyncio.sleep(0)  # let the write send its commands before the next batch is validated
        if pending is not None:
            await _finish(pending, written, progress)
            pending = None
    finally:
        if pending is not None and not pending.done():
            # Reading failed half way: let the batch already sent complete rather than cut the connection.
            await asyncio.wait([pending])
    return report


async def _finish(pending: asyncio.Task[int], written: int, progress: Callable[[int], None] | None) -> int:
    done = await pending
    if progress is not None:
        progress(written + done)
    return done
