"""`nbo features load`: validate a features file against the schema and load it into the cache."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from app.settings import Settings
from decisioning.quality import LoadReport
from features.bulk import load_features
from features.files import read_feature_file
from features.redis_cache import RedisCustomerCache
from features.redis_client import redis_client
from policies.loader import load_catalogue


async def load_file(settings: Settings, path: Path, *, to: str, batch_size: int) -> str:
    """Load (`to="redis"`) or only check (`to="check"`) a CSV/Parquet features file; return the report."""
    catalogue = load_catalogue(settings.catalogue_dir)
    if to == "check":
        _, report = read_feature_file(path, catalogue.features)
        return _describe(report)
    if to != "redis" or settings.redis_url is None:
        raise typer.BadParameter("--to redis needs NBO_REDIS_URL (the embedded mode reads NBO_FEATURES_FILE at start)")
    client = redis_client(settings.redis_url)
    cache = RedisCustomerCache(client, feature_names=[f.name for f in catalogue.features], prefix=settings.redis_prefix)
    try:
        with typer.progressbar(length=_rows(path), label="customers") as bar:
            done = [0]

            def progress(written: int) -> None:
                bar.update(written - done[0])
                done[0] = written

            report = await load_features(path, cache, catalogue.features, batch_size=batch_size, progress=progress)
    finally:
        await client.aclose()
    return _describe(report)


def _rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as f:
        return max(sum(1 for _ in f) - 1, 0)


def _describe(report: LoadReport) -> str:
    return json.dumps(report.summary(), indent=2)
