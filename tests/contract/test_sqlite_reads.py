"""SQLite's reads in one hop on plain `sqlite3` readers (history/sqlite_reader.py) read what SQLAlchemy reads.

Two histories on one file: the embedded default (reader threads) and `sqlite_readers=0` (every read through
SQLAlchemy and aiosqlite, as on PostgreSQL). Each read must return the same records and the same row
values, of the same types, on rows with NULLs, microseconds, JSON payloads, and rows SQLAlchemy wrote
itself. And on the request path no read may go through the engine (aiosqlite) any more.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from decisioning.records import ContactRecord, DecisionRecord, ResponseRecord
from decisioning.summary import MAX_EVENTS
from decisioning.types import Direction, Outcome
from history import SqlHistory, queries
from history.sqlite_reader import Prepared
from history.tables import contacts, decisions, responses

T0 = 1_790_000_000.0
RNG = random.Random(11)
PAYLOAD = {"page": "/cartes", "é": "ünïcode ✓", "n": [1, 2.5, None, True, False, {"deep": [[]]}], "big": 2**62}


def contact(contact_id: str, offer_id: str, at: float, customer: str = "c-1", **kw: Any) -> ContactRecord:
    return ContactRecord(
        contact_id, customer, at, kw.pop("channel", "web"), kw.pop("direction", Direction.INBOUND), offer_id,
        kw.pop("group", "cards"), kw.pop("outcome", Outcome.PRESENTED), **kw,
    )  # fmt: skip


def decision(decision_id: str, at: float, **kw: Any) -> DecisionRecord:
    offers = kw.pop("offers", ("card_gold", "loan_car"))
    presented = tuple(
        contact(decision_id, o, at, rank=i + 1, propensity=RNG.random(), value=120.5, priority=None)
        for i, o in enumerate(offers)
    )
    return DecisionRecord(
        decision_id, "c-1", at, kw.pop("channel", "web"), kw.pop("placement", None), kw.pop("intent", None),
        kw.pop("control_group", False), "m-7", "cat-3", presented, **kw,
    )  # fmt: skip


def micro(at: float) -> float:
    return round(at + RNG.uniform(0, 1), 6)  # a time with microseconds


@pytest.fixture
async def fast(sqlite_url: str) -> AsyncIterator[SqlHistory]:
    h = SqlHistory(sqlite_url)
    await h.start()
    yield h
    await h.close()


@pytest.fixture
async def engine_only(sqlite_url: str, fast: SqlHistory) -> AsyncIterator[SqlHistory]:
    """The same file, read through SQLAlchemy and aiosqlite."""
    h = SqlHistory(sqlite_url, sqlite_readers=0)
    await h.start()
    yield h
    await h.close()


async def fill(h: SqlHistory) -> None:
    """Decisions, sends, selections and responses with NULLs, microseconds, ties and JSON payloads; and rows
    SQLAlchemy inserts itself (a time without microseconds, a NULL group)."""
    await h.record_decision(decision("d-1", micro(T0), request_id="req-1", context=PAYLOAD, candidates=(PAYLOAD,)))
    await h.record_decision(
        decision("d-2", micro(T0 + 10), request_id="req-2", placement="home_hero", intent="browse",
                 control_group=True, features=(1.5, None, "mass", True), feature_schema="fs-1")
    )  # fmt: skip
    await h.record_decision(decision("d-3", T0 + 20, offers=()))  # no request id, no contacts
    await h.record_contacts([
        contact("s-1", "card_gold", T0 + 20, channel="email", direction=Direction.OUTBOUND, outcome=Outcome.SENT,
                decision_id="d-1", campaign="autumn"),
        contact("s-2", "card_gold", T0 + 20, channel="email", direction=Direction.OUTBOUND, outcome=Outcome.SENT),
        contact("sel-1", "loan_car", micro(T0 + 30), channel="email", direction=Direction.OUTBOUND,
                outcome=Outcome.SELECTED, treatment="t-1", placement="inbox", rank=None, selection_probability=0.25),
    ])  # fmt: skip
    for i, outcome in enumerate((Outcome.CLICKED, Outcome.DECLINED, Outcome.IGNORED)):
        await h.record_response(
            ResponseRecord(f"r-{i}", "c-1", "card_gold", "web", outcome, micro(T0 + 40 + i), "d-1" if i else None)
        )
    async with h.engine.begin() as conn:
        await conn.execute(sa.insert(responses).values(
            response_id="r-sa", customer_id="c-1", decision_id=None, offer_id="loan_car", group_id=None,
            channel="web", outcome="clicked", responded_at=T0 + 50, recorded_at=micro(T0 + 50),
        ))  # fmt: skip
        await conn.execute(sa.insert(contacts).values(
            contact_id="sa-1", offer_id="savings", customer_id="c-1", contacted_at=T0, channel="web",
            direction="inbound", group_id="savings", outcome="presented",
        ))  # fmt: skip
        # A time as an older writer may have stored it: no microseconds.
        no_microseconds = "UPDATE contacts SET contacted_at = '2026-09-21 14:13:20' WHERE contact_id = 'sa-1'"
        await conn.execute(sa.text(no_microseconds))


Read = Callable[[SqlHistory], Awaitable[Any]]
READS: dict[str, Read] = {
    "find_contact": lambda h: h.find_contact("d-1", "loan_car"),
    "find_contact of a send": lambda h: h.find_contact("s-1", "card_gold"),
    "find_contact missing": lambda h: h.find_contact("d-1", "no_such_offer"),
    "latest_contact": lambda h: h.latest_contact("c-1", "card_gold"),
    "latest_contact tie in time": lambda h: h.latest_contact("c-1", "card_gold", T0 + 20),
    "latest_contact bounded": lambda h: h.latest_contact("c-1", "loan_car", T0 + 15),
    "latest_contact before any": lambda h: h.latest_contact("c-1", "card_gold", T0 - 1),
    "latest_contact of a time without microseconds": lambda h: h.latest_contact("c-1", "savings"),
    "latest_contact of no one": lambda h: h.latest_contact("c-404", "card_gold"),
    "decision_for_request": lambda h: h.decision_for_request("req-1"),
    "decision_for_request NULLs and features": lambda h: h.decision_for_request("req-2"),
    "decision_for_request missing": lambda h: h.decision_for_request("req-404"),
    "summary": lambda h: h.summary("c-1", since=0.0),
    "summary since": lambda h: h.summary("c-1", since=T0 + 20),
    "summary of no one": lambda h: h.summary("c-404", since=0.0),
    "entries": lambda h: h.entries("c-1"),
    "entries limited": lambda h: h.entries("c-1", limit=3),
    "newest_rows": lambda h: h.newest_rows("c-1", 2, T0 + 10),
    "summaries": lambda h: h.summaries(since=0.0),
}


@pytest.mark.parametrize("name", READS)
async def test_a_read_returns_what_the_sqlalchemy_path_returns(fast: SqlHistory, engine_only: SqlHistory, name: str):
    await fill(fast)
    read = READS[name]

    found, expected = await read(fast), await read(engine_only)

    if name == "newest_rows":  # rows, not records: compare their values (and their types)
        found, expected = typed(found[0]) + typed(found[1]), typed(expected[0]) + typed(expected[1])
    assert found == expected
    assert repr(found) == repr(expected)  # 1 == 1.0 == True: the types must match as well


SELECTS: dict[str, tuple[sa.Select[Any], dict[str, Any]]] = {
    "every decision": (sa.select(decisions), {}),
    "every contact": (sa.select(contacts), {}),
    "every response": (sa.select(responses), {}),
    "latest bounded": (queries.latest_contact(True), {"customer_id": "c-1", "offer_id": "card_gold",
                                                      "at_or_before": T0 + 20}),
    "newest since": (queries.newest("responses", True), {"customer_id": "c-1", "limit": 10, "since": T0 + 41}),
    "since": (queries.since("contacts"), {"since": T0 + 20}),
}  # fmt: skip


@pytest.mark.parametrize("name", SELECTS)
async def test_rows_read_back_exactly_as_sqlalchemy_reads_them(fast: SqlHistory, name: str):
    await fill(fast)
    query, params = SELECTS[name]
    reader = fast._sqlite_reader
    assert reader is not None

    found = await reader.run(lambda reads: reads.all(query, params))
    async with fast.engine.connect() as conn:
        expected = (await conn.execute(query, params)).all()

    assert typed(found) == typed(expected) and len(found) > 0


async def test_times_json_and_booleans_come_back_as_written(fast: SqlHistory):
    at = micro(T0)
    await fast.record_decision(decision("d-1", at, request_id="req-1", context=PAYLOAD, control_group=True))

    found = await fast.decision_for_request("req-1")

    assert found is not None and found.at == at and found.contacts[0].at == at
    assert found.context == PAYLOAD and found.control_group is True and found.features is None


def typed(found: Any) -> list[list[tuple[str, str, Any]]]:
    return [[(k, type(v).__name__, v) for k, v in row._mapping.items()] for row in found]


def test_a_select_is_compiled_with_its_parameters_bound_not_inlined(fast: SqlHistory):
    prepared = Prepared(queries.latest_contact(True), fast.engine.dialect)

    assert "c-1" not in prepared.sql and prepared.sql.count("?") == 5  # customer, offer, time, LIMIT, OFFSET
    params = prepared.parameters({"customer_id": "c-1", "offer_id": "o", "at_or_before": T0 + 0.25})
    assert params == ("c-1", "o", "2026-09-21 14:13:20.250000", 1, 0)  # SQLAlchemy's own DATETIME text
    with pytest.raises(KeyError):
        prepared.parameters({"customer_id": "c-1"})


def test_a_parameter_used_twice_is_bound_twice_and_a_list_rendered_per_call_is_refused(fast: SqlHistory):
    either = sa.or_(contacts.c.contact_id == sa.bindparam("id"), contacts.c.decision_id == sa.bindparam("id"))
    prepared = Prepared(sa.select(contacts).where(either), fast.engine.dialect)
    assert prepared.parameters({"id": "d-1"}) == ("d-1", "d-1")

    with pytest.raises(ValueError, match="rendered at execution time"):
        Prepared(sa.select(contacts).where(contacts.c.contact_id.in_(["d-1", "d-2"])), fast.engine.dialect)


# --- the request path does not go through aiosqlite ---------------------------------------------------


@pytest.fixture
def engine_statements(fast: SqlHistory) -> list[str]:
    """Every statement sent through the history's SQLAlchemy engine (so aiosqlite) from now on."""
    sent: list[str] = []
    sa.event.listen(fast.engine.sync_engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    return sent


HOT_READS: dict[str, Read] = {
    "find_contact": READS["find_contact"],
    "latest_contact": READS["latest_contact"],
    "latest_contact bounded": READS["latest_contact bounded"],
    "decision_for_request": READS["decision_for_request"],
    "decision_for_request missing": READS["decision_for_request missing"],
    "summary": READS["summary"],
    "entries": READS["entries"],
    "summaries (start-up)": READS["summaries"],
    "a response's group": lambda h: h.record_response(
        ResponseRecord("r-new", "c-1", "loan_car", "web", Outcome.CLICKED, T0 + 99, "d-1")
    ),
}


@pytest.mark.parametrize("name", HOT_READS)
async def test_a_request_path_read_is_one_hop_and_never_through_aiosqlite(
    fast: SqlHistory, engine_statements: list[str], name: str
):
    await fill(fast)
    engine_statements.clear()
    reader = fast._sqlite_reader
    assert reader is not None
    before = reader.reads

    await HOT_READS[name](fast)

    assert engine_statements == []
    assert reader.reads == before + 1


async def test_a_response_takes_the_group_of_the_contact_it_answers(fast: SqlHistory):
    await fill(fast)
    gold = ResponseRecord("r-x", "c-1", "card_gold", "web", Outcome.CLICKED, T0 + 5, None)  # latest before it: d-1
    late = ResponseRecord("r-y", "c-1", "card_gold", "web", Outcome.CLICKED, T0 - 5, None)  # none before: any
    await fast.record_contacts([contact("s-9", "card_gold", T0 + 1, group="premium", channel="email")])

    for r in (gold, late):
        assert await fast.record_response(r)
    groups = {e.id: e.group for e in await fast.entries("c-1")}
    # At T0+5 the latest contact is s-9 (premium); at T0-5 there is none before, so the latest of all (s-2).
    assert groups["r-x"] == "premium" and groups["r-y"] == "cards"


async def test_a_failing_read_raises_as_sqlalchemy_does(fast: SqlHistory, engine_only: SqlHistory):
    async with fast.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE contacts RENAME TO contacts_away"))
    try:
        with pytest.raises(sa.exc.OperationalError) as fast_error:
            await fast.find_contact("d-1", "card_gold")
        with pytest.raises(sa.exc.OperationalError) as engine_error:
            await engine_only.find_contact("d-1", "card_gold")
    finally:
        async with fast.engine.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE contacts_away RENAME TO contacts"))
    assert "no such table: contacts" in str(fast_error.value) and "no such table" in str(engine_error.value)
    assert await fast.find_contact("d-1", "card_gold") is None  # the reader carries on


async def test_readers_see_each_commit_at_once(fast: SqlHistory):
    for i in range(20):
        await fast.record_decision(decision(f"d-{i}", T0 + i, request_id=f"req-{i}"))
        found = await fast.decision_for_request(f"req-{i}")
        assert found is not None and found.decision_id == f"d-{i}"
    assert len((await fast.summary("c-1", 0.0)).events) == min(40, MAX_EVENTS)
