"""`nbo prescore --features-from redis`: the features a decision would read from the Redis feature cache
(batch and real-time, windowed counts at --as-of), exported once per run, then prescored as any file."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.cli import cli
from batch.redis_source import export_redis_features
from decisioning.ports import FeatureUpdate
from decisioning.types import DAY
from features.redis_cache import RedisCustomerCache
from features.redis_client import redis_client
from models.demo.customers import generate_customers
from policies.loader import load_catalogue
from tests.batch.conftest import AS_OF, DEMO
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.services


@pytest.fixture
async def cache(redis_client) -> RedisCustomerCache:
    prefix = f"nbotest-src-{uuid.uuid4().hex[:8]}"
    names = [s.name for s in load_catalogue(DEMO).features]
    yield RedisCustomerCache(redis_client, feature_names=names, prefix=prefix)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


async def seeded(cache: RedisCustomerCache, n: int = 30) -> list[tuple[str, dict]]:
    people = generate_customers(n, load_catalogue(DEMO).features, seed=5, now=AS_OF)
    await cache.put_features(people, at=AS_OF - DAY)
    # Real-time: two competitor transfers, one older than its 30-day window at AS_OF.
    for at in (AS_OF - 40 * DAY, AS_OF - 2 * DAY):
        transfer = FeatureUpdate("transfer_out_competitor_30d", "count", None, 30 * DAY)
        await cache.apply_updates(people[0][0], [transfer], at)
    await cache.apply_updates(people[1][0], [FeatureUpdate("card_declined_count", "incr", 1)], AS_OF - DAY)
    return people


async def test_the_export_is_every_cached_customer_as_a_decision_reads_them(cache, tmp_path: Path):
    people = await seeded(cache)
    specs = load_catalogue(DEMO).features
    done = await export_redis_features(cache, specs, tmp_path / "input.parquet", AS_OF, chunk=7)
    assert (done.customers, done.unreadable) == (30, 0)
    rows = pq.read_table(done.path).to_pylist()
    assert [r["customer_id"] for r in rows] == sorted(cid for cid, _ in people)
    by_id = {r["customer_id"]: r for r in rows}
    first, second = people[0][0], people[1][0]
    assert by_id[first]["transfer_out_competitor_30d"] == 1.0  # the count at AS_OF, not the events ever
    assert by_id[second]["card_declined_count"] == float(people[1][1].get("card_declined_count") or 0) + 1
    for cid, values in people[2:]:
        for spec in specs:
            expected = values.get(spec.name)
            got = by_id[cid][spec.name]
            assert got == (float(expected) if isinstance(expected, int | float) and not isinstance(expected, bool)
                           else expected), (cid, spec.name)  # fmt: skip


async def test_an_empty_cache_is_refused(cache, tmp_path: Path):
    with pytest.raises(ValueError, match="no customer features in Redis"):
        await export_redis_features(cache, load_catalogue(DEMO).features, tmp_path / "x.parquet", AS_OF)


def test_nbo_prescore_reads_the_cache_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    prefix = f"nbotest-src-{uuid.uuid4().hex[:8]}"
    names = [s.name for s in load_catalogue(DEMO).features]

    async def seed() -> None:
        client = redis_client(REDIS_URL)
        await seeded(RedisCustomerCache(client, feature_names=names, prefix=prefix))
        await client.aclose()

    async def clean() -> None:
        client = redis_client(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    asyncio.run(seed())
    for name, value in {
        "ENVIRONMENT": "test", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'h.db'}", "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": prefix, "MODEL_DIR": str(tmp_path / "models"),
        "BATCH_DIR": str(tmp_path / "runs"),
    }.items():  # fmt: skip
        monkeypatch.setenv(f"NBO_{name}", value)
    out = tmp_path / "list.parquet"
    args = ["prescore", "--channel", "email", "--top", "1", "--out", str(out), "--features-from", "redis", "-",
            "--as-of", "2026-11-23T06:00:00Z", "--workers", "1", "--run-id", "r-redis", "--no-progress"]  # fmt: skip
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        asyncio.run(clean())
    assert result.exit_code == 0, result.output
    assert "customers: 30" in result.output and (tmp_path / "runs" / "r-redis" / "input.parquet").exists()
    assert len({r["customer_id"] for r in pq.read_table(out).to_pylist()}) == 30
