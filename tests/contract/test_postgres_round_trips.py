"""Fewer round trips to PostgreSQL, the same outcomes.

The group commit writes a batch of decisions in one statement (history/postgres_writer.py), with the
outcomes of the transaction of one insert per table: a decision whose decision or request id is stored
already is refused with its contacts, and a row PostgreSQL refuses fails only its own write. Reads run in
autocommit (history/sql.py): no BEGIN and ROLLBACK around them or around the pool's pre-ping."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from history import HistoryRecordError, SqlHistory, postgres_writer
from history.tables import contacts, decisions

from .test_history_contract import count, decision

pytestmark = pytest.mark.services


@pytest.fixture
async def pg_history(pg_url: str):
    h = SqlHistory(pg_url)
    await h.start()
    yield h
    await h.close()


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many batches took the one statement, and how many the transaction of one insert per table."""
    taken = {"one_statement": 0, "transaction": 0}
    one, plan = postgres_writer._decisions_in_one_statement, postgres_writer.run_plan

    async def counted_one(*args):
        taken["one_statement"] += 1
        return await one(*args)

    async def counted_plan(*args):
        taken["transaction"] += 1
        return await plan(*args)

    monkeypatch.setattr(postgres_writer, "_decisions_in_one_statement", counted_one)
    monkeypatch.setattr(postgres_writer, "run_plan", counted_plan)
    return taken


async def test_a_batch_of_decisions_is_one_statement_with_the_transaction_s_outcomes(pg_history, paths):
    await pg_history.record_decision(decision("d-old", request_id="r-old"))
    writes = [
        *(pg_history.record_decision(decision(f"d-{i}", ("card_gold", "loan_personal"))) for i in range(30)),
        pg_history.record_decision(decision("d-retry", ("card_gold", "mortgage_fixed"), request_id="r-old")),
        pg_history.record_decision(decision("d-old", ("card_gold",))),  # a decision id stored already
        pg_history.record_decision(decision("d-twin", ("card_gold",), request_id="r-twin")),
        pg_history.record_decision(decision("d-twin-2", ("card_gold",), request_id="r-twin")),
    ]
    results = await asyncio.gather(*writes)

    assert results[:30] == [True] * 30 and results[30:32] == [False, False]
    assert sorted(results[32:]) == [False, True]  # one of two attempts of a request in the same batch
    assert paths["transaction"] == 0 and paths["one_statement"] >= 2
    assert await count(pg_history, decisions) == 1 + 30 + 1
    assert await count(pg_history, contacts) == 1 + 60 + 1  # the refused decisions' contacts are not there
    assert await pg_history.find_contact("d-retry", "mortgage_fixed") is None
    assert (await pg_history.find_contact("d-7", "loan_personal")).rank == 1


async def test_a_row_refused_in_the_one_statement_fails_alone_and_keeps_the_connection(pg_history, paths):
    await pg_history.record_decision(decision("d-first"))
    connection = pg_history._pg_writer._conn
    good = [pg_history.record_decision(decision(f"d-{i}")) for i in range(20)]
    nul = pg_history.record_decision(decision("d-nul", context={"page": "/a\x00b"}))  # jsonb refuses \u0000
    results = await asyncio.gather(*good, nul, return_exceptions=True)

    assert results[:20] == [True] * 20 and isinstance(results[20], HistoryRecordError)
    assert paths["transaction"] >= 1  # the refused batch went on to the transaction, which split it
    assert pg_history._pg_writer._conn is connection
    assert await count(pg_history, decisions) == 21 and await count(pg_history, contacts) == 21


async def test_reads_open_no_transaction_and_see_what_was_committed(pg_history, monkeypatch: pytest.MonkeyPatch):
    await pg_history.record_decision(decision("d-1", ("card_gold", "loan_personal"), request_id="r-1"))
    opened: list[object] = []
    transaction = asyncpg.Connection.transaction

    def counted(self, *args, **kwargs):
        opened.append(self)
        return transaction(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "transaction", counted)
    await pg_history._read_engine.dispose()  # new connections: each checkout pre-pings
    assert (await pg_history.latest_contact("c-1", "loan_personal")).contact_id == "d-1"
    assert (await pg_history.decision_for_request("r-1")).decision_id == "d-1"
    assert len((await pg_history.summary("c-1", since=0)).events) == 2
    assert await pg_history.ping()
    assert opened == []
    await pg_history.record_decision(decision("d-2", request_id="r-2"))  # the writes keep their transaction
    assert (await pg_history.decision_for_request("r-2")).decision_id == "d-2"
