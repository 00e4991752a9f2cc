"""The list's other outputs (PostgreSQL COPY, the Redis fallback) and recording a sent list."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import orjson
import pyarrow.parquet as pq

from app.prescoring import record_outbound_list
from app.settings import Settings
from batch.engines import InProcessEngine
from batch.job import PrescoreJob
from batch.outputs import copy_to_postgres, fallback_key, write_fallback
from batch.run import part_files, prescore
from history.sql import SqlHistory
from policies.loader import load_catalogue
from tests.batch.conftest import AS_OF, DEMO, deterministic_copy, write_customers


def _list(tmp_path: Path, catalogue_dir: Path, n: int = 60, run_id: str = "r-out") -> tuple[Path, Path, list[str]]:
    features = tmp_path / "customers.parquet"
    ids = write_customers(load_catalogue(catalogue_dir), features, n)
    job = PrescoreJob(run_id, catalogue_dir, tmp_path / "models", "nbo", "email", 2, AS_OF)
    run_dir = tmp_path / "batch" / run_id
    prescore(job, features, tmp_path / "list.parquet", run_dir=run_dir, engine=InProcessEngine(1), summaries={},
             partition_size=25, progress=False)  # fmt: skip
    return tmp_path / "list.parquet", run_dir, ids


async def test_copy_to_postgres_is_replaced_by_a_rerun(tmp_path: Path, pg_url: str):
    out, run_dir, _ = _list(tmp_path, DEMO)
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    table = f"prescored_{uuid.uuid4().hex[:8]}"
    expected = pq.read_table(out).num_rows
    assert await copy_to_postgres(dsn, table, part_files(run_dir), "r-out") == expected
    assert await copy_to_postgres(dsn, table, part_files(run_dir), "r-out") == expected
    conn = await asyncpg.connect(dsn)
    try:
        count = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE run_id = 'r-out'")
        best = await conn.fetchrow(f"SELECT offer_id, propensity FROM {table} WHERE rank = 1 LIMIT 1")
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    assert count == expected and best["offer_id"]


async def test_the_fallback_holds_each_customers_ranked_offers(tmp_path: Path, redis_client):
    out, run_dir, ids = _list(tmp_path, DEMO)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    try:
        assert await write_fallback(redis_client, prefix, part_files(run_dir), ttl_seconds=600) == len(ids)
        stored = orjson.loads(await redis_client.get(fallback_key(prefix, "email", ids[0])))
        ttl = await redis_client.ttl(fallback_key(prefix, "email", ids[0]))
    finally:
        keys = [k async for k in redis_client.scan_iter(f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)
    rows = [r for r in pq.read_table(out).to_pylist() if r["customer_id"] == ids[0] and r["offer_id"]]
    assert [o["offer_id"] for o in stored["offers"]] == [r["offer_id"] for r in rows]
    assert stored["run_id"] == "r-out" and stored["as_of"] == AS_OF and 0 < ttl <= 600


async def test_recording_a_sent_list_is_idempotent_and_counts_against_the_caps(tmp_path: Path):
    catalogue_dir = deterministic_copy(DEMO, tmp_path / "catalogue")
    out, _, _ = _list(tmp_path, catalogue_dir)
    sent = [r for r in pq.read_table(out).to_pylist() if r["offer_id"]]
    settings = Settings(environment="test", database_url=f"sqlite+aiosqlite:///{tmp_path / 'h.db'}",
                        catalogue_dir=catalogue_dir, features_file=None, model_dir=tmp_path / "models")  # fmt: skip
    first = await record_outbound_list(settings, out, "email", "nov_cards")
    again = await record_outbound_list(settings, out, "email", "nov_cards")
    assert (first.received, first.recorded) == (len(sent), len(sent))
    assert (again.received, again.recorded) == (len(sent), 0)
    history = SqlHistory(settings.database_url)
    await history.start()
    try:
        summaries = await history.summaries(since=0.0)
    finally:
        await history.close()
    customer = sent[0]["customer_id"]
    assert [(e.offer_id, e.outcome.value, e.channel) for e in summaries[customer].events] == [
        (r["offer_id"], "sent", "email") for r in sent if r["customer_id"] == customer
    ]
    # Tomorrow's batch sees the sends: two e-mails this week fill the weekly outbound cap.
    job = PrescoreJob("r-next", catalogue_dir, tmp_path / "models", "nbo", "email", 2, AS_OF + 3600)
    result = prescore(job, tmp_path / "customers.parquet", tmp_path / "next.parquet", run_dir=tmp_path / "next",
                      engine=InProcessEngine(1), summaries=summaries, progress=False)  # fmt: skip
    assert result.stats.policy_suppressions.get("outbound_weekly_cap", 0) > 0


async def test_features_from_a_postgres_table_give_the_same_list(tmp_path: Path, pg_url: str):
    from batch.sources import export_postgres_table

    out, _, _ = _list(tmp_path, DEMO, n=30)
    features = pq.read_table(tmp_path / "customers.parquet")
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    table = f"features_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    try:
        types = {"string": "text", "double": "double precision", "int64": "bigint", "bool": "boolean"}
        columns = ", ".join(f'"{f.name}" {types[str(f.type)]}' for f in features.schema)
        await conn.execute(f"CREATE TABLE {table} ({columns})")
        await conn.copy_records_to_table(table, records=[tuple(r.values()) for r in features.to_pylist()])
        exported = await export_postgres_table(dsn, table, tmp_path / "exported.parquet", batch_size=7)
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    job = PrescoreJob("r-out", DEMO, tmp_path / "models", "nbo", "email", 2, AS_OF)
    prescore(job, exported, tmp_path / "from-table.parquet", run_dir=tmp_path / "table-run", engine=InProcessEngine(1),
             summaries={}, partition_size=25, progress=False)  # fmt: skip
    assert pq.read_table(tmp_path / "from-table.parquet").to_pylist() == pq.read_table(out).to_pylist()
