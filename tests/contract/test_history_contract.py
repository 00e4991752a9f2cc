"""The contact history contract: one suite, run on SQLite (the embedded default) and real PostgreSQL.

Each test gets a migrated database (`alembic upgrade head`), emptied, and a started `SqlHistory`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import history as history_package
from decisioning.records import ContactRecord, DecisionRecord, ResponseRecord
from decisioning.summary import MAX_EVENTS, HistorySummary
from decisioning.types import ContactEvent, Direction, Outcome
from history import HistoryClosedError, HistoryRecordError, HistoryWriteError, SqlHistory
from history.migrate import alembic_config, upgrade
from history.partitions import is_partitioning_table
from history.tables import contacts, decisions, metadata, responses

from .conftest import pg_admin, pg_async_url

T0 = 1_790_000_000.0  # 2026-09-21, in epoch seconds
REPO = Path(history_package.__file__).resolve().parents[1]  # the checkout the subprocess imports from
# A hang guard for tests of failure paths, not a timing assertion: a broken writer would wait forever.
NO_HANG = 60.0




def contact(contact_id: str, offer_id: str, *, customer: str = "c-1", at: float = T0, **kw) -> ContactRecord:
    return ContactRecord(
        contact_id=contact_id,
        customer_id=customer,
        at=at,
        channel=kw.pop("channel", "web"),
        direction=kw.pop("direction", Direction.INBOUND),
        offer_id=offer_id,
        group=kw.pop("group", "cards"),
        outcome=kw.pop("outcome", Outcome.PRESENTED),
        **kw,
    )


def decision(decision_id: str, offers: tuple[str, ...] = ("card_gold",), **kw) -> DecisionRecord:
    customer, at = kw.pop("customer", "c-1"), kw.pop("at", T0)
    return DecisionRecord(
        decision_id=decision_id,
        customer_id=customer,
        at=at,
        channel="web",
        placement="home_hero",
        intent=kw.pop("intent", None),
        control_group=False,
        model_version="m-7",
        catalogue_version="cat-3",
        contacts=tuple(
            contact(decision_id, o, customer=customer, at=at, rank=i, propensity=0.1 + i / 10)
            for i, o in enumerate(offers)
        ),
        **kw,
    )


def send(send_id: str, offer_id: str, **kw) -> ContactRecord:
    return contact(
        send_id, offer_id, channel="email", direction=Direction.OUTBOUND, outcome=Outcome.SENT, **kw
    )


def selection(contact_id: str, offer_id: str, **kw) -> ContactRecord:
    """An outbound decision's pick, before the campaign tool confirms the send."""
    return contact(
        contact_id, offer_id, channel="email", direction=Direction.OUTBOUND, outcome=Outcome.SELECTED, **kw
    )


def response(response_id: str, offer_id: str, decision_id: str | None, at: float, **kw) -> ResponseRecord:
    outcome = kw.pop("outcome", Outcome.CLICKED)
    return ResponseRecord(
        response_id, kw.pop("customer", "c-1"), offer_id, "web", outcome, at, decision_id, **kw
    )


async def count(h: SqlHistory, table: sa.Table) -> int:
    async with h.engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()


# --- decisions -----------------------------------------------------------------------------------------


async def test_decision_round_trip(history: SqlHistory):
    record = decision(
        "d-1",
        ("card_gold", "loan_car"),
        request_id="req-1",
        intent="browse",
        context={"page": "/cards", "device": "ios"},
        candidates=({"offer": "card_gold", "kept": True}, {"offer": "mortgage", "dropped": "age >= 18"}),
    )
    await history.record_decision(record)

    assert await history.decision_for_request("req-1") == record
    assert await history.decision_for_request("req-unknown") is None
    for c in record.contacts:
        assert await history.find_contact("d-1", c.offer_id) == c
        assert await history.latest_contact("c-1", c.offer_id) == c
    async with history.engine.connect() as conn:
        row = (await conn.execute(sa.select(decisions))).one()._mapping
    assert row["context"] == {"page": "/cards", "device": "ios"}
    assert row["candidates"] == [
        {"offer": "card_gold", "kept": True},
        {"offer": "mortgage", "dropped": "age >= 18"},
    ]
    assert (row["decided_at"], row["intent"], row["model_version"]) == (T0, "browse", "m-7")


async def test_a_request_id_is_stored_once(history: SqlHistory):
    await history.record_decision(decision("d-1", request_id="req-1"))
    await history.record_decision(decision("d-2", ("loan_car",), request_id="req-1"))

    found = await history.decision_for_request("req-1")
    assert found is not None and found.decision_id == "d-1"
    assert await history.find_contact("d-2", "loan_car") is None
    assert await count(history, decisions) == 1


async def test_latest_contact_is_the_newest_of_any_channel(history: SqlHistory):
    await history.record_decision(decision("d-1", at=T0))
    await history.record_contacts([send("s-1", "card_gold", at=T0 + 60)])
    await history.record_decision(decision("d-2", at=T0 + 30))

    latest = await history.latest_contact("c-1", "card_gold")
    assert latest is not None and (latest.contact_id, latest.channel) == ("s-1", "email")
    assert await history.latest_contact("c-2", "card_gold") is None


async def test_latest_contact_at_or_before_a_time(history: SqlHistory):
    await history.record_decision(decision("d-1", at=T0))
    await history.record_contacts([selection("d-2", "card_gold", at=T0 + 30)])
    await history.record_contacts([send("s-1", "card_gold", at=T0 + 60, decision_id="d-2")])

    found = [await history.latest_contact("c-1", "card_gold", at) for at in (T0 - 1, T0, T0 + 45, T0 + 60)]
    assert [c.contact_id if c else None for c in found] == [None, "d-1", "d-2", "s-1"]
    assert [c.outcome if c else None for c in found] == [None, Outcome.PRESENTED, Outcome.SELECTED, Outcome.SENT]
    assert await history.latest_contact("c-1", "card_gold") == found[-1]


async def test_an_outbound_selection_and_its_confirming_send(history: SqlHistory):
    selected = selection("d-out", "card_gold", at=T0)
    confirmed = send("s-1", "card_gold", at=T0 + 3600, decision_id="d-out", campaign="autumn")
    assert await history.record_contacts([selected]) == [selected]
    assert await history.record_contacts([confirmed]) == [confirmed]

    assert await history.find_contact("d-out", "card_gold") == selected  # by its own id: the selection
    assert await history.find_contact("s-1", "card_gold") == confirmed
    events = (await history.summary("c-1", 0.0)).events
    assert [(e.outcome, e.decision_id) for e in events] == [(Outcome.SELECTED, "d-out"), (Outcome.SENT, "d-out")]
    entries = await history.entries("c-1")
    listed = [(e.id, e.outcome, e.decision_id) for e in entries]
    assert listed == [("s-1", "sent", "d-out"), ("d-out", "selected", "d-out")]
    assert entries[0].details["campaign"] == "autumn" and "decision_id" not in entries[0].details


async def test_a_decision_comes_back_with_its_contacts_in_rank_order(history: SqlHistory):
    offers = ("mortgage", "card_gold", "loan_car", "savings")
    record = decision("d-1", offers, request_id="req-1", context={"n": {"deep": [1, 2.5, None]}})
    await history.record_decision(record)
    await history.record_contacts([send("d-1-send", "card_gold")])  # another contact id: not part of it

    found = await history.decision_for_request("req-1")
    assert found == record
    assert found is not None and [c.offer_id for c in found.contacts] == list(offers)


async def test_times_round_trip_to_the_microsecond(history: SqlHistory):
    rng = random.Random(7)
    times = [round(T0 + rng.uniform(-3e8, 3e8), 6) for _ in range(50)]
    await history.record_contacts([send(f"s-{i}", "card_gold", at=t) for i, t in enumerate(times)])

    for i, t in enumerate(times):
        found = await history.find_contact(f"s-{i}", "card_gold")
        assert found is not None and found.at == t


# --- group commit --------------------------------------------------------------------------------------


async def test_concurrent_decisions_are_durable_and_share_transactions(history: SqlHistory, history_url: str):
    before = history.commits
    await asyncio.gather(
        *(history.record_decision(decision(f"d-{i}", request_id=f"r-{i}")) for i in range(200))
    )
    commits = history.commits - before
    await history.close()

    assert 1 <= commits <= 20  # group commit: 200 durable writes, a handful of transactions
    reopened = SqlHistory(history_url)
    await reopened.start()
    try:
        assert await count(reopened, decisions) == 200
        assert await count(reopened, contacts) == 200
        assert await reopened.decision_for_request("r-123") == decision("d-123", request_id="r-123")
    finally:
        await reopened.close()


async def test_one_batch_stores_a_decision_once_however_often_it_is_in_it(history: SqlHistory):
    # One group-commit batch (the writes are queued together): the same decision id twice (a retried
    # write: both callers learn it is stored), and two decisions with one request id (the first stands,
    # with its contacts; the second is refused with its contacts).
    results = await asyncio.gather(
        history.record_decision(decision("d-twice")),
        history.record_decision(decision("d-twice")),
        history.record_decision(decision("d-first", request_id="r-same", offers=("a", "b"))),
        history.record_decision(decision("d-second", request_id="r-same", offers=("c",))),
    )

    assert results == [True, True, True, False]
    assert await count(history, decisions) == 2
    assert await count(history, contacts) == 3  # d-twice's one, d-first's two
    assert await history.find_contact("d-second", "c") is None


async def test_close_writes_what_is_queued(history_url: str):
    h = SqlHistory(history_url)
    await h.start()
    tasks = [asyncio.create_task(h.record_decision(decision(f"d-{i}"))) for i in range(100)]
    await asyncio.sleep(0)  # let every task queue its write
    await h.close()

    await asyncio.gather(*tasks)  # all acknowledged, none failed
    with pytest.raises(HistoryClosedError):
        await h.record_decision(decision("d-late"))
    reopened = SqlHistory(history_url)
    await reopened.start()
    assert await count(reopened, decisions) == 100
    await reopened.close()


async def test_a_bad_record_fails_alone(history: SqlHistory):
    bad = dataclasses.replace(send("s-bad", "card_gold"), outcome=Outcome.CLICKED)
    good = [history.record_decision(decision(f"d-{i}")) for i in range(20)]

    results = await asyncio.gather(*good, history.record_contacts([bad]), return_exceptions=True)

    assert results[:20] == [True] * 20
    assert isinstance(results[20], HistoryWriteError)  # the CHECK on outcome refused it
    assert await count(history, decisions) == 20


async def test_a_failing_write_reaches_every_waiting_caller(history: SqlHistory):
    async with history.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE contacts RENAME TO contacts_away"))
    try:
        writes = [history.record_decision(decision(f"d-{i}")) for i in range(50)]
        results = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), NO_HANG)
    finally:
        async with history.engine.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE contacts_away RENAME TO contacts"))

    assert all(isinstance(r, HistoryWriteError) for r in results)
    assert await count(history, decisions) == 0  # the transaction rolled back as a whole
    await history.record_decision(decision("d-after"))  # and the writer carries on
    assert await history.find_contact("d-after", "card_gold") is not None


@pytest.mark.services
async def test_a_dropped_postgresql_database_fails_callers_instead_of_hanging(pg_database: str):
    name = f"nbo_test_gone_{os.getpid()}"
    await pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await pg_admin(f"CREATE DATABASE {name}")
    await asyncio.to_thread(upgrade, pg_async_url(name))
    h = SqlHistory(pg_async_url(name))
    await h.start()
    await h.record_decision(decision("d-0"))
    await pg_admin(f"DROP DATABASE {name} WITH (FORCE)")
    try:
        writes = [h.record_decision(decision(f"d-{i}")) for i in range(1, 51)]
        results = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), NO_HANG)
        assert all(isinstance(r, HistoryWriteError) for r in results)
        assert await h.ping() is False
    finally:
        await h.close()


# --- contacts and responses ----------------------------------------------------------------------------


async def test_duplicate_contacts_are_skipped(history: SqlHistory):
    first = [send("s-1", "a"), send("s-1", "b"), send("s-2", "a")]
    assert await history.record_contacts(first) == first
    again = send("s-1", "a", at=T0 + 5)  # the same contact reported again, with another time
    assert await history.record_contacts([again, send("s-3", "a"), send("s-3", "a", at=T0 + 9)]) == [send("s-3", "a")]
    assert await history.record_contacts([]) == []

    twice = await asyncio.gather(
        *(history.record_contacts([send("s-4", "a"), send("s-4", "b")]) for _ in range(2))
    )
    assert sorted(map(len, twice)) == [0, 2]  # credited once, to one of the two callers
    assert await count(history, contacts) == 6
    stored = await history.find_contact("s-1", "a")
    assert stored is not None and stored.at == T0  # the first report stands


async def test_responses_are_idempotent(history: SqlHistory):
    await history.record_decision(decision("d-1"))
    first = response("resp-1", "card_gold", "d-1", T0 + 10)

    assert await history.record_response(first) is True
    assert await history.record_response(first) is False
    both = await asyncio.gather(
        *(history.record_response(response("resp-2", "x", None, T0)) for _ in range(2))
    )
    assert sorted(both) == [False, True]
    assert await count(history, responses) == 2


async def test_a_response_without_group_takes_its_contacts_group(history: SqlHistory):
    await history.record_decision(decision("d-1"))
    await history.record_contacts([send("s-1", "loan_car", group="loans")])
    await history.record_response(response("r-1", "card_gold", "d-1", T0 + 1))
    await history.record_response(response("r-2", "loan_car", None, T0 + 2))  # by customer and offer
    await history.record_response(response("r-3", "unknown_offer", None, T0 + 3))

    groups = {
        e.offer_id: e.group for e in (await history.summary("c-1", T0)).events if e.outcome == "clicked"
    }
    assert groups == {"card_gold": "cards", "loan_car": "loans", "unknown_offer": ""}


# --- summaries and listings ----------------------------------------------------------------------------


async def write_random_history(h: SqlHistory, seed: int) -> list[tuple[str, ContactEvent]]:
    """Write random decisions, sends and responses for two customers; return (customer, event) written."""
    rng, written = random.Random(seed), []
    for i in range(60):
        customer, at = rng.choice(["c-1", "c-2"]), round(T0 + rng.uniform(0, 90 * 86_400), 6)
        offers = tuple(rng.sample(["card_gold", "loan_car", "mortgage", "savings"], rng.randint(1, 3)))
        if rng.random() < 0.7:
            record = decision(f"d-{i}", offers, customer=customer, at=at)
            await h.record_decision(record)
            events = record.events()
        else:
            sends = [send(f"s-{i}", o, customer=customer, at=at) for o in offers]
            await h.record_contacts(sends)
            events = [s.event() for s in sends]
        written += [(customer, e) for e in events]
        for e in rng.sample(events, rng.randint(0, len(events))):
            outcome = rng.choice([Outcome.CLICKED, Outcome.DECLINED, Outcome.ACCEPTED, Outcome.NOT_DISPLAYED])
            r = response(
                f"r-{i}-{e.offer_id}",
                e.offer_id,
                e.decision_id,
                round(at + rng.uniform(1, 9e5), 6),
                customer=customer,
                group=e.group,
                outcome=outcome,
            )
            await h.record_response(r)
            written.append((customer, r.event(e.group)))
    return written


@pytest.mark.parametrize("since_days", [0, 45])
async def test_summary_rebuild_equals_the_events_written(history: SqlHistory, since_days: int):
    written = await write_random_history(history, seed=since_days + 1)
    since = T0 + since_days * 86_400

    for customer in ("c-1", "c-2"):
        rebuilt = await history.summary(customer, since)
        expected = [e for c, e in written if c == customer and e.at >= since]
        assert expected and Counter(rebuilt.events) == Counter(expected)
        assert [e.at for e in rebuilt.events] == sorted(e.at for e in expected)
        assert HistorySummary.from_json(rebuilt.to_json()) == rebuilt


async def test_summary_keeps_the_newest_events(history: SqlHistory):
    await history.record_contacts([send(f"s-{i}", "card_gold", at=T0 + i) for i in range(MAX_EVENTS + 88)])

    events = (await history.summary("c-1", 0.0)).events
    assert len(events) == MAX_EVENTS
    assert (events[0].at, events[-1].at) == (T0 + 88, T0 + MAX_EVENTS + 87)


async def test_all_summaries_at_once_equal_each_customers_summary(history: SqlHistory):
    await write_random_history(history, seed=11)

    everyone = await history.summaries(since=T0)
    assert set(everyone) == {"c-1", "c-2"}
    for customer, summary in everyone.items():
        one = await history.summary(customer, T0)
        assert Counter(summary.events) == Counter(one.events)
        assert [e.at for e in summary.events] == [e.at for e in one.events]


async def test_entries_are_newest_first(history: SqlHistory):
    written = await write_random_history(history, seed=3)
    times = sorted((e.at for c, e in written if c == "c-1"), reverse=True)

    entries = await history.entries("c-1", limit=25)
    assert [e.at for e in entries] == times[:25]
    assert {e.kind for e in entries} == {"contact", "response"}
    assert all(e.customer_id == "c-1" for e in entries)
    assert len(await history.entries("c-1", limit=1000)) == len(times)
    assert await history.entries("nobody") == []


# --- lifecycle, durability, schema ---------------------------------------------------------------------


async def test_history_survives_closing_and_reopening(history: SqlHistory, history_url: str):
    await history.record_decision(decision("d-1", request_id="req-1"))
    await history.record_response(response("r-1", "card_gold", "d-1", T0 + 5))
    before = await history.summary("c-1", 0.0)
    await history.close()

    reopened = SqlHistory(history_url)
    await reopened.start()
    try:
        assert await reopened.decision_for_request("req-1") == decision("d-1", request_id="req-1")
        assert await reopened.summary("c-1", 0.0) == before
        assert len(before.events) == 2
    finally:
        await reopened.close()


async def test_ping(history: SqlHistory):
    assert await history.ping() is True
    await history.close()
    assert await history.ping() is False


async def test_the_migration_builds_the_tables_the_code_uses(history: SqlHistory):
    def diff(sync_conn: sa.Connection) -> list:
        # The partitioned layout's own tables (months, DEFAULT, key tables: history.partitions) are
        # PostgreSQL's alone and checked by tests/contract/test_partitions.py.
        def ours(name: str | None, type_: str, parent: dict) -> bool:
            return not is_partitioning_table(name if type_ == "table" else parent.get("table_name"))

        return compare_metadata(MigrationContext.configure(sync_conn, opts={"include_name": ours}), metadata)

    async with history.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_the_migration_downgrades_and_upgrades_again(history: SqlHistory, history_url: str):
    await history.close()
    await asyncio.to_thread(command.downgrade, alembic_config(history_url), "base")
    await asyncio.to_thread(upgrade, history_url)
    upgrade(history_url)  # already at head: a no-op, also from a thread whose event loop is running

    again = SqlHistory(history_url)
    await again.start()
    await again.record_decision(decision("d-1"))
    assert await count(again, contacts) == 1
    await again.close()


async def test_the_outbound_migration_keeps_the_contacts_stored_before_it(history: SqlHistory, history_url: str):
    await history.record_decision(decision("d-1", ("card_gold", "loan_car")))
    await history.close()
    await asyncio.to_thread(command.downgrade, alembic_config(history_url), "0001")
    await asyncio.to_thread(upgrade, history_url)

    again = SqlHistory(history_url)
    await again.start()
    try:
        assert await again.find_contact("d-1", "loan_car") == decision("d-1", ("card_gold", "loan_car")).contacts[1]
        assert await again.record_contacts([selection("d-2", "card_gold")]) == [selection("d-2", "card_gold")]
        async with again.engine.connect() as conn:
            indexes = await conn.run_sync(lambda sync: sa.inspect(sync).get_indexes("contacts"))
        assert {"name": "ix_contacts_decision_offer", "columns": ["decision_id", "offer_id"]} in [
            {"name": i["name"], "columns": i["column_names"]} for i in indexes
        ]
    finally:
        await again.close()


async def test_the_outbound_migration_refuses_to_downgrade_over_selections(history: SqlHistory, history_url: str):
    await history.record_contacts([selection("d-1", "card_gold")])
    await history.close()

    with pytest.raises(RuntimeError, match="'selected'"):
        await asyncio.to_thread(command.downgrade, alembic_config(history_url), "0001")
    again = SqlHistory(history_url)  # nothing was changed: still at head, the selection kept
    await again.start()
    try:
        assert await again.find_contact("d-1", "card_gold") == selection("d-1", "card_gold")
    finally:
        await again.close()


KILLED_WRITER = """
import asyncio, sys
from decisioning.records import ContactRecord, DecisionRecord
from decisioning.types import Direction, Outcome
from history import SqlHistory

def decision(i):
    offer = ContactRecord(f"d-{i}", "c-1", 1.79e9 + i, "web", Direction.INBOUND, "card_gold", "cards",
                          Outcome.PRESENTED)
    return DecisionRecord(f"d-{i}", "c-1", 1.79e9 + i, "web", None, None, False, "m", "c", (offer,))

async def main():
    h = SqlHistory(sys.argv[1])
    await h.start()
    i = 0
    while True:
        await asyncio.gather(*(h.record_decision(decision(i + k)) for k in range(10)))
        print("\\n".join(f"d-{i + k}" for k in range(10)), flush=True)  # acknowledged
        i += 10

asyncio.run(main())
"""


async def test_sigkill_does_not_lose_an_acknowledged_decision(sqlite_url: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLED_WRITER,
        sqlite_url,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    acknowledged = [await proc.stdout.readline() for _ in range(300)]
    proc.kill()  # SIGKILL: no cleanup, no close(), no flush
    acknowledged += (await proc.stdout.read()).split()  # what it printed before dying
    await proc.wait()

    h = SqlHistory(sqlite_url)
    await h.start()
    try:
        async with h.engine.connect() as conn:
            stored = set((await conn.execute(sa.select(decisions.c.decision_id))).scalars())
        assert len(acknowledged) >= 300 and {a.decode().strip() for a in acknowledged} <= stored
    finally:
        await h.close()


# --- a record that cannot be stored fails alone ----------------------------------------------------------


def deep(levels: int) -> dict:
    nested: dict = {}
    for _ in range(levels):
        nested = {"k": nested}
    return nested


async def test_an_unencodable_context_fails_only_its_own_write(history: SqlHistory):
    good = [history.record_decision(decision(f"d-{i}", context={"page": "/cards"})) for i in range(20)]
    too_big = history.record_decision(decision("d-big", context={"n": 2**70}))
    too_deep = history.record_decision(decision("d-deep", context=deep(500)))

    results = await asyncio.gather(*good[:10], too_big, *good[10:], too_deep, return_exceptions=True)

    assert results[:10] + results[11:21] == [True] * 20
    big, deep_ = results[10], results[21]
    assert isinstance(big, HistoryRecordError) and "context" in str(big) and "2**70" not in str(big)
    assert isinstance(deep_, HistoryRecordError) and "context" in str(deep_)
    assert await count(history, decisions) == 20 and await count(history, contacts) == 20
    assert await history.record_decision(decision("d-after")) is True  # the writer carries on


async def test_a_value_refused_inside_the_transaction_fails_only_its_own_write(history: SqlHistory):
    connection = getattr(history._pg_writer, "_conn", None)
    bad = [
        history.record_contacts([send("s-bad-rank", "card_gold", rank=2**70)]),  # too big for the driver
        history.record_contacts([dataclasses.replace(send("s-bad", "x"), outcome=Outcome.CLICKED)]),  # CHECK
    ]
    good = [history.record_decision(decision(f"d-{i}")) for i in range(20)]

    results = await asyncio.gather(*good, *bad, return_exceptions=True)

    assert results[:20] == [True] * 20
    assert all(isinstance(r, HistoryRecordError) for r in results[20:])
    assert all("Failing row" not in str(r) and "s-bad" not in str(r) for r in results[20:])  # no values
    assert await history.record_decision(decision("d-after")) is True
    assert await count(history, decisions) == 21 and await count(history, contacts) == 21
    if connection is not None:  # PostgreSQL: the writer's connection was not thrown away
        assert history._pg_writer._conn is connection


@pytest.mark.services
async def test_a_nul_character_postgresql_refuses_fails_only_its_own_write(pg_url: str):
    h = SqlHistory(pg_url)
    await h.start()
    try:
        good = [h.record_decision(decision(f"d-{i}")) for i in range(20)]
        nul = h.record_decision(decision("d-nul", context={"page": "/a\x00b"}))  # jsonb refuses \u0000
        results = await asyncio.gather(*good, nul, return_exceptions=True)

        assert results[:20] == [True] * 20 and isinstance(results[20], HistoryRecordError)
        assert await h.record_decision(decision("d-after")) is True
    finally:
        await h.close()


async def test_a_decision_keeps_its_feature_values_and_schema_version(history: SqlHistory):
    kept = dataclasses.replace(
        decision("d-1", request_id="r-1"), features=(41.0, True, "gold", None, 1.79e9), feature_schema="abc123"
    )
    assert await history.record_decision(kept) is True
    assert await history.decision_for_request("r-1") == kept


async def test_a_decision_without_features_reads_back_as_none(history: SqlHistory):
    assert await history.record_decision(decision("d-1", request_id="r-1")) is True
    found = await history.decision_for_request("r-1")
    assert found is not None and found.features is None and found.feature_schema is None


async def test_the_features_migration_keeps_decisions_stored_before_it(history: SqlHistory, history_url: str):
    await history.record_decision(dataclasses.replace(decision("d-1", request_id="r-1"), features=(1.0,)))
    await history.close()
    await asyncio.to_thread(command.downgrade, alembic_config(history_url), "0002")
    await asyncio.to_thread(upgrade, history_url)
    again = SqlHistory(history_url)
    await again.start()
    try:
        before = await again.decision_for_request("r-1")  # kept, without the snapshot the downgrade dropped
        assert before == decision("d-1", request_id="r-1")
        kept = dataclasses.replace(decision("d-2", request_id="r-2"), features=(2.0, None), feature_schema="s")
        await again.record_decision(kept)
        assert await again.decision_for_request("r-2") == kept
    finally:
        await again.close()
