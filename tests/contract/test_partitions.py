"""The partitioned history (migration 0005, history.partitions, history.retention) on a real PostgreSQL,
and the same retention on SQLite.

Each PostgreSQL test gets a database of its own: these tests create and drop partitions.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from decisioning.records import DecisionRecord
from decisioning.types import DAY, Outcome
from history import SqlHistory
from history.database import make_engine
from history.migrate import upgrade
from history.partitions import add_months, ensure_partitions, month_start, monthly_partitions, partition_name
from history.retention import RetentionRefused, plan_retention, retain
from history.rows import contact_row, decision_row, response_row
from history.sql import _newest
from history.tables import contacts, decisions, responses
from policies.loader import load_catalogue

from .conftest import pg_admin, pg_async_url, pg_run
from .test_history_contract import count, decision, response

CATALOGUE = Path(__file__).parents[1] / "fixtures" / "stack_catalogue"  # reads 67 days
KEEP = 2  # the least --months that keeps 67 days on NOW: the cutoff 2026-09-01 is before 2026-09-15
NOW = month_start(1_796_000_000.0).timestamp() + 20 * DAY  # 2026-11-21, the tests' fixed "now"
MONTHS = 14  # of generated history: the current month and the 13 before it
CUSTOMERS = ("c-1", "c-2", "c-3")
OFFERS = ("card_cashback", "savings_plus")
TABLES = ("contacts", "responses")


@pytest.fixture
def pg_fresh() -> Iterator[str]:
    """An empty PostgreSQL database for this test (not migrated); dropped after."""
    name = f"nbo_part_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    pg_run(pg_admin(f"CREATE DATABASE {name}"))
    try:
        yield pg_async_url(name)
    finally:
        pg_run(pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def generated() -> list[DecisionRecord]:
    """One decision per customer per month (two offers each) for MONTHS months, mid-month."""
    first = add_months(month_start(NOW), -(MONTHS - 1))
    return [
        decision(f"d-{m}-{c}", OFFERS, customer=c, at=add_months(first, m).timestamp() + 9 * DAY)
        for m in range(MONTHS)
        for c in CUSTOMERS
    ]


async def record_all(history: SqlHistory, made: list[DecisionRecord]) -> None:
    for d in made:
        assert await history.record_decision(d)
        # Declines: the catalogue's decline_cool_off counts them, so the summaries compared below carry
        # what the policy suppresses on.
        answer = response(
            f"r-{d.decision_id}", "card_cashback", d.decision_id, d.at + 3600, customer=d.customer_id,
            outcome=Outcome.DECLINED,
        )  # fmt: skip
        assert await history.record_response(answer)


async def everything(url: str) -> dict[str, list[str]]:
    """Every stored row of the three tables, comparable (JSON columns are dicts: compared by repr)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            tables = (decisions, contacts, responses)
            return {t.name: sorted(repr(tuple(r)) for r in await conn.execute(sa.select(t))) for t in tables}
    finally:
        await engine.dispose()


# --- the migration -----------------------------------------------------------------------------------


async def test_the_migration_keeps_every_row_and_recording_goes_on(pg_fresh: str):
    upgrade(pg_fresh, "0004")  # the revision before the partitioning
    made = generated()
    engine = make_engine(pg_fresh)
    async with engine.begin() as conn:  # rows as the unpartitioned schema stores them
        await conn.execute(decisions.insert(), [decision_row(d) for d in made])
        await conn.execute(contacts.insert(), [contact_row(c) for d in made for c in d.contacts])
        answers = [response(f"r-{d.decision_id}", "card_cashback", d.decision_id, d.at + 60) for d in made]
        await conn.execute(responses.insert(), [response_row(r, r.at) for r in answers])
    await engine.dispose()
    before = await everything(pg_fresh)

    upgrade(pg_fresh)

    assert await everything(pg_fresh) == before  # no row lost, none changed
    history = SqlHistory(pg_fresh)
    await history.start()
    try:
        async with history.engine.connect() as conn:
            months = {p.month for p in await monthly_partitions(conn)}
            in_default = (await conn.execute(sa.text("SELECT count(*) FROM contacts_default"))).scalar()
        assert {month_start(d.at) for d in made} <= months and in_default == 0  # each row in its month
        old = made[0]
        assert await history.record_contacts([old.contacts[0]]) == []  # the keys came along: still a duplicate
        assert not await history.record_response(answers[0])
        new = decision("d-after", ("card_cashback",), customer="c-1", at=NOW)
        assert await history.record_decision(new)
        assert await history.find_contact("d-after", "card_cashback") == new.contacts[0]
        assert await history.find_contact(old.decision_id, "savings_plus") == old.contacts[1]
        summary = await history.summary("c-1", since=NOW - 400 * DAY)
        assert any(e.at == NOW and e.outcome is Outcome.PRESENTED for e in summary.events)
    finally:
        await history.close()


# --- partitions ahead, the DEFAULT partition, pruning -----------------------------------------------------


async def test_partitions_ahead_take_over_rows_waiting_in_default(pg_fresh: str):
    upgrade(pg_fresh)
    later = add_months(month_start(NOW), 24).timestamp() + DAY  # two years on: no partition yet
    history = SqlHistory(pg_fresh)
    await history.start()
    try:
        assert await history.record_decision(decision("d-late", customer="c-1", at=later))
        created = await ensure_partitions(history.engine, ahead=1, now=later)
        months = (month_start(later), add_months(month_start(later), 1))
        assert {p.name for p in created} == {partition_name(t, m) for t in TABLES for m in months}
        assert await ensure_partitions(history.engine, ahead=1, now=later) == []  # idempotent
        async with history.engine.connect() as conn:
            month = partition_name("contacts", month_start(later))
            moved = await conn.execute(sa.text(f"SELECT contact_id FROM {month}"))
            assert [r[0] for r in moved] == ["d-late"]
            assert (await conn.execute(sa.text("SELECT count(*) FROM contacts_default"))).scalar() == 0
        assert await history.find_contact("d-late", "card_gold") is not None
    finally:
        await history.close()


async def test_a_customers_recent_history_reads_only_recent_partitions(pg_fresh: str):
    upgrade(pg_fresh)
    engine = make_engine(pg_fresh)
    await ensure_partitions(engine, ahead=MONTHS, now=add_months(month_start(NOW), -MONTHS).timestamp())
    since = NOW - 60 * DAY
    query = _newest(contacts, "contacted_at", "c-1", 50, since)
    sql = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    async with engine.connect() as conn:
        plan = "\n".join(r[0] for r in await conn.execute(sa.text(f"EXPLAIN {sql}")))
    await engine.dispose()
    recent = {partition_name("contacts", add_months(month_start(since), n)) for n in range(3)}
    scanned = {name for name in (partition_name("contacts", add_months(month_start(NOW), -n)) for n in range(MONTHS))}
    assert all(name in plan for name in recent & scanned)
    assert not any(name in plan for name in scanned - recent)  # older months pruned at plan time
    assert "ix_contacts_customer_time" in plan or "customer_id_contacted_at_idx" in plan


# --- retention ---------------------------------------------------------------------------------------------


async def test_retain_drops_exactly_the_old_partitions_and_keeps_what_policies_read(pg_fresh: str, tmp_path: Path):
    upgrade(pg_fresh)
    history = SqlHistory(pg_fresh)
    await history.start()
    await ensure_partitions(history.engine, ahead=MONTHS, now=add_months(month_start(NOW), -(MONTHS - 1)).timestamp())
    made = generated()
    await record_all(history, made)
    catalogue = load_catalogue(CATALOGUE)
    summaries = {c: await history.summary(c, since=NOW - 67 * DAY) for c in CUSTOMERS}
    assert all(any(e.outcome is Outcome.DECLINED for e in s.events) for s in summaries.values())

    with pytest.raises(RetentionRefused, match=rf"decline_cool_off.*--months {KEEP}"):
        plan_retention(catalogue, months=KEEP - 1, now=NOW)
    plan = plan_retention(catalogue, months=KEEP, now=NOW)
    report = await retain(history.engine, plan, archive=tmp_path / "archive")

    cutoff = add_months(month_start(NOW), -KEEP)
    old_months = [add_months(month_start(NOW), -n) for n in range(KEEP + 1, MONTHS)]
    assert sorted(report.dropped) == sorted(partition_name(t, m) for t in TABLES for m in old_months)
    async with history.engine.connect() as conn:
        left = {p.month for p in await monthly_partitions(conn)}
    assert min(left) == cutoff
    kept = [d for d in made if d.at >= cutoff.timestamp()]
    assert await count(history, contacts) == 2 * len(kept) and await count(history, responses) == len(kept)
    assert {c: await history.summary(c, since=NOW - 67 * DAY) for c in CUSTOMERS} == summaries
    archived = sum(pq.ParquetFile(p).metadata.num_rows for p in report.archived if p.name.startswith("contacts"))
    assert archived == 2 * (len(made) - len(kept))
    await history.close()


async def test_sqlite_retention_deletes_the_same_rows(sqlite_url: str, tmp_path: Path):
    history = SqlHistory(sqlite_url)
    await history.start()
    made = generated()
    await record_all(history, made)
    summaries = {c: await history.summary(c, since=NOW - 67 * DAY) for c in CUSTOMERS}

    plan = plan_retention(load_catalogue(CATALOGUE), months=KEEP, now=NOW)
    report = await retain(history.engine, plan, archive=tmp_path / "archive")

    kept = [d for d in made if d.at >= plan.cutoff.timestamp()]
    assert report.dropped == [] and report.deleted_rows == {
        "contacts": 2 * (len(made) - len(kept)),
        "responses": len(made) - len(kept),
    }
    assert await count(history, contacts) == 2 * len(kept)
    assert {c: await history.summary(c, since=NOW - 67 * DAY) for c in CUSTOMERS} == summaries
    assert len([p for p in report.archived if p.name.startswith("responses")]) == MONTHS - KEEP - 1
    await history.close()
