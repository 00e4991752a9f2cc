"""Write-behind contact history: `StreamHistory` on the real Redis, drained by `Drainer` into SQLite and
real PostgreSQL. Each test has its own stream name; an unreachable Redis or PostgreSQL fails the test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from decisioning.records import ContactRecord, DecisionRecord, ResponseRecord
from decisioning.types import Direction, Outcome
from history import HistoryRecordError, HistoryWriteError, SqlHistory
from history.drain import MAX_STRIKES, Drainer, requeue_dead
from history.stream import DATA, KIND, StreamFullError, StreamHistory, decode_entry, encode_record, marker_prefix
from history.tables import contacts, decisions, responses

from .conftest import REDIS_SESSION_PREFIX
from .test_history_contract import NO_HANG, REPO, T0, count, decision, response, send

# --- the entry codec: every record comes back equal ------------------------------------------------------

_text = st.text(max_size=8)
_finite = st.floats(allow_nan=False, allow_infinity=False)
_int64 = st.integers(-(2**63), 2**63 - 1)
_json = st.recursive(
    st.none() | st.booleans() | _int64 | _finite | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_contacts = st.builds(
    ContactRecord,
    contact_id=_text,
    customer_id=_text,
    at=_finite,
    channel=_text,
    direction=st.sampled_from(Direction),
    offer_id=_text,
    group=_text,
    outcome=st.sampled_from(Outcome),
    **{name: st.none() | _text for name in ("treatment", "placement", "model_version", "catalogue_version")},
    **{name: st.none() | _finite for name in ("propensity", "value", "priority", "selection_probability")},
    rank=st.none() | _int64,
    campaign=st.none() | _text,
    decision_id=st.none() | _text,
)
_decisions = st.builds(
    DecisionRecord,
    decision_id=_text,
    customer_id=_text,
    at=_finite,
    channel=_text,
    placement=st.none() | _text,
    intent=st.none() | _text,
    control_group=st.booleans(),
    model_version=_text,
    catalogue_version=_text,
    contacts=st.lists(_contacts, max_size=3).map(tuple),
    context=st.dictionaries(_text, _json, max_size=4),
    candidates=st.lists(st.dictionaries(_text, _json, max_size=3), max_size=3).map(tuple),
    request_id=st.none() | _text,
    features=st.none() | st.lists(st.none() | st.booleans() | _finite | _text, max_size=5).map(tuple),
    feature_schema=st.none() | _text,
)
_responses = st.builds(
    ResponseRecord,
    response_id=_text,
    customer_id=_text,
    offer_id=_text,
    channel=_text,
    outcome=st.sampled_from(Outcome),
    at=_finite,
    decision_id=st.none() | _text,
    group=st.none() | _text,
)


def _entry(kind: str, record: object) -> dict[bytes, bytes]:
    return {KIND: kind.encode(), DATA: encode_record(record)}


@given(_decisions)
@settings(max_examples=200)
def test_a_decision_survives_the_stream_exactly(record: DecisionRecord):
    assert decode_entry(_entry("decision", record)) == ("decision", record)


@given(st.lists(_contacts, max_size=4), _responses)
@settings(max_examples=200)
def test_contacts_and_responses_survive_the_stream_exactly(sends: list[ContactRecord], answer: ResponseRecord):
    assert decode_entry(_entry("contacts", sends)) == ("contacts", sends)
    assert decode_entry(_entry("response", answer)) == ("response", answer)


def test_markers_share_the_streams_cluster_slot():
    assert marker_prefix("nbo:history") == "{nbo:history}"  # hashes like the untagged stream name
    assert marker_prefix("{nbo}:history") == "{nbo}:history"  # already tagged: reuse the tag
    assert marker_prefix("a{}b") == "{a{}b}"  # an empty tag is no tag


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
def sql_url(history_url: str) -> str:
    """The SQL side's database: SQLite, then PostgreSQL (conftest's `history_url`; this suite's own
    `history` is the stream)."""
    return history_url


@pytest.fixture
async def sql(sql_url: str) -> AsyncIterator[SqlHistory]:
    h = SqlHistory(sql_url)
    await h.start()
    yield h
    await h.close()


@pytest.fixture
async def stream(redis_client: Redis) -> AsyncIterator[str]:
    """A stream name private to this test; the stream, its dead letters and markers are deleted after."""
    name = f"{REDIS_SESSION_PREFIX}:{uuid.uuid4().hex[:8]}:history"
    yield name
    keys = [key async for key in redis_client.scan_iter(match=f"*{name}*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
async def history(redis_client: Redis, sql: SqlHistory, stream: str) -> AsyncIterator[StreamHistory]:
    h = StreamHistory(redis_client, sql, stream=stream)
    await h.start()
    yield h
    await h.close()


@pytest.fixture
def drainer(redis_client: Redis, sql: SqlHistory, stream: str) -> Drainer:
    return Drainer(redis_client, sql, stream=stream, consumer="drainer-1", block_ms=10)


async def drain_all(d: Drainer) -> int:
    """Drain until the backlog is empty; returns the entries stored."""
    stored = 0
    for _ in range(1_000):
        stored += await d.drain_once()
        if await d.backlog() == 0:
            return stored
    raise AssertionError("the drainer did not empty the stream")


async def pending(client: Redis, stream: str) -> int:
    return (await client.xpending(stream, "nbo-drain"))["pending"]


# --- decisions, contacts, responses reach SQL -----------------------------------------------------------


async def test_every_recorded_decision_is_in_sql_after_a_drain(history: StreamHistory, drainer: Drainer):
    records = [
        decision(
            f"d-{i}",
            ("card_gold", "loan_car")[: 1 + i % 2],
            request_id=f"req-{i}",
            context={"page": "/cards", "n": i},
            candidates=({"offer_id": "card_gold", "propensity": 0.25},),
        )
        for i in range(20)
    ]
    for record in records:
        await history.record_decision(record)
    twice = [send("s-1", "mortgage"), send("s-1", "mortgage")]
    assert await history.record_contacts(twice) == [send("s-1", "mortgage")]
    assert await history.record_response(response("r-1", "card_gold", "d-0", T0 + 5)) is True
    assert await count(history.sql, decisions) == 0  # acknowledged, not yet drained

    assert await drainer.drain_once() == 22
    assert await drainer.backlog() == 0 and await pending(history.client, history.stream) == 0
    assert await count(history.sql, decisions) == 20
    assert await count(history.sql, contacts) == 30 + 1
    for record in records:
        assert await history.decision_for_request(record.request_id) == record
        for c in record.contacts:
            assert await history.find_contact(record.decision_id, c.offer_id) == c
    async with history.sql.engine.connect() as conn:
        row = (await conn.execute(sa.select(decisions).where(decisions.c.decision_id == "d-3"))).one()
    assert row.context == {"page": "/cards", "n": 3}
    assert row.candidates == [{"offer_id": "card_gold", "propensity": 0.25}]
    clicked = [e for e in (await history.summary("c-1", T0)).events if e.outcome == Outcome.CLICKED]
    assert [(e.offer_id, e.group, e.decision_id) for e in clicked] == [("card_gold", "cards", "d-0")]


async def test_a_request_id_is_found_before_its_decision_is_drained(history: StreamHistory, drainer: Drainer):
    record = decision("d-1", ("card_gold", "loan_car"), request_id="req-1", context={"page": "/cards"})
    await history.record_decision(record)

    assert await history.sql.decision_for_request("req-1") is None  # SQL lags
    assert await history.decision_for_request("req-1") == record  # the pending index does not
    assert await history.decision_for_request("req-unknown") is None
    await drain_all(drainer)
    assert await history.decision_for_request("req-1") == record  # from SQL now (the marker stays)


async def test_500_concurrent_decisions_all_land(history: StreamHistory, drainer: Drainer):
    records = [decision(f"d-{i}", ("card_gold", "loan_car", "mortgage")[: 1 + i % 3]) for i in range(500)]

    await asyncio.gather(*(history.record_decision(r) for r in records))

    assert await drainer.backlog() == 500
    assert await drain_all(drainer) == 500
    assert await count(history.sql, decisions) == 500
    assert await count(history.sql, contacts) == sum(len(r.contacts) for r in records)


# --- re-delivery after a crash -----------------------------------------------------------------------------


async def test_a_batch_stored_but_not_acknowledged_is_not_stored_twice(
    history: StreamHistory, sql: SqlHistory, stream: str, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
):
    for i in range(50):
        await history.record_decision(decision(f"d-{i}", ("card_gold", "loan_car")))
    await history.record_contacts([send("s-1", "mortgage")])
    await history.record_response(response("r-1", "card_gold", "d-1", T0 + 1))
    crashing = Drainer(redis_client, sql, stream=stream, consumer="crashes-before-ack", block_ms=10)

    async def crash(ids: object, settled: object) -> None:
        raise ConnectionError("killed between the SQL commit and XACK")

    monkeypatch.setattr(crashing, "_ack", crash)
    with pytest.raises(ConnectionError):
        await crashing.drain_once()
    assert await count(sql, decisions) == 50  # stored...
    assert await pending(redis_client, stream) == 52  # ...but still pending

    survivor = Drainer(redis_client, sql, stream=stream, consumer="survivor", block_ms=10, claim_idle_ms=0)
    assert await drain_all(survivor) == 52  # claimed and stored again

    assert await pending(redis_client, stream) == 0
    assert (await count(sql, decisions), await count(sql, contacts), await count(sql, responses)) == (50, 101, 1)


async def test_a_batch_read_by_a_drainer_that_died_is_taken_over(
    history: StreamHistory, sql: SqlHistory, stream: str, redis_client: Redis
):
    for i in range(30):
        await history.record_decision(decision(f"d-{i}"))
    await Drainer(redis_client, sql, stream=stream, consumer="dies").start()
    read = await redis_client.xreadgroup("nbo-drain", "dies", {stream: ">"}, count=100)  # then it dies
    assert len(read[0][1]) == 30

    patient = Drainer(redis_client, sql, stream=stream, consumer="patient", block_ms=10, claim_idle_ms=60_000)
    assert await patient.drain_once() == 0  # not idle long enough: the owner may still be working on it
    survivor = Drainer(redis_client, sql, stream=stream, consumer="survivor", block_ms=10, claim_idle_ms=0)
    assert await survivor.drain_once() == 30

    assert await count(sql, decisions) == 30
    assert await pending(redis_client, stream) == 0


async def test_entries_wait_in_the_stream_while_sql_is_down(history: StreamHistory, drainer: Drainer):
    await drainer.start()
    for i in range(10):
        await history.record_decision(decision(f"d-{i}"))
    await history.sql.close()  # SQL unreachable: every write fails, none for its data

    with pytest.raises(HistoryWriteError):
        await drainer.drain_once()
    with pytest.raises(HistoryWriteError):
        await drainer.drain_once()  # the retry stops at the first entry while SQL does not answer
    assert await drainer.backlog() == 10 and drainer.dead_lettered == 0

    await history.sql.start()
    assert await drain_all(drainer) == 10
    assert await count(history.sql, decisions) == 10


# --- responses and contacts: what the caller is told --------------------------------------------------------


async def test_a_duplicate_response_is_refused(history: StreamHistory, drainer: Drainer, redis_client: Redis):
    await history.record_decision(decision("d-1"))
    first = response("resp-1", "card_gold", "d-1", T0 + 10)

    assert await history.record_response(first) is True
    assert await history.record_response(first) is False  # not drained yet: the Redis marker refuses it
    await drain_all(drainer)
    assert await history.record_response(first) is False
    await redis_client.delete(f"{marker_prefix(history.stream)}:r:resp-1")  # the marker expired
    assert await history.record_response(first) is False  # SQL has it

    both = await asyncio.gather(*(history.record_response(response("resp-2", "x", None, T0)) for _ in range(2)))
    assert sorted(both) == [False, True]
    await drain_all(drainer)
    assert await count(history.sql, responses) == 2


async def test_contacts_report_the_ones_accepted(history: StreamHistory, drainer: Drainer):
    later = send("s-1", "a", at=T0 + 9)  # the same contact again, within the call: the first one wins
    assert await history.record_contacts([send("s-1", "a"), send("s-1", "b"), later]) == [
        send("s-1", "a"),
        send("s-1", "b"),
    ]
    assert await history.record_contacts([]) == []
    assert await history.record_contacts([send("s-1", "b"), send("s-3", "a")]) == [send("s-3", "a")]  # s-1/b waits
    same = send("s-4", "a")
    assert await history.record_contacts([same, same]) == [same]
    await drain_all(drainer)

    assert await history.record_contacts([send("s-1", "a"), send("s-2", "a")]) == [send("s-2", "a")]  # s-1/a is stored
    await drain_all(drainer)
    assert await count(history.sql, contacts) == 5
    found = await history.find_contact("s-1", "a")
    assert found is not None and found.at == T0


async def test_a_large_outbound_list_is_split_into_entries(history: StreamHistory, drainer: Drainer):
    assert len(await history.record_contacts([send(f"s-{i}", "card_gold") for i in range(2_500)])) == 2_500

    assert await drainer.backlog() == 3  # 1,000 + 1,000 + 500
    await drain_all(drainer)
    assert await count(history.sql, contacts) == 2_500


# --- bounded stream, bad entries, the loop ------------------------------------------------------------------


async def test_a_full_stream_refuses_writes_instead_of_dropping_entries(
    redis_client: Redis, sql: SqlHistory, stream: str, drainer: Drainer
):
    bounded = StreamHistory(redis_client, sql, stream=stream, maxlen=3)
    await bounded.start()
    for i in range(3):
        await bounded.record_decision(decision(f"d-{i}"))

    with pytest.raises(StreamFullError):
        await bounded.record_decision(decision("d-3"))
    with pytest.raises(StreamFullError):  # refused as a whole, not partly appended
        await bounded.record_contacts([send(f"s-{i}", "a") for i in range(1_500)])
    await drain_all(drainer)
    await bounded.record_decision(decision("d-3"))  # room again once drained
    await drain_all(drainer)
    assert await count(sql, decisions) == 4


async def test_entries_that_can_never_be_stored_are_dead_lettered(
    history: StreamHistory, drainer: Drainer, redis_client: Redis, stream: str
):
    await history.record_decision(decision("d-1"))
    await redis_client.xadd(stream, {KIND: b"mystery", DATA: b"{}"})  # unreadable
    refused = dataclasses.replace(send("s-bad", "card_gold"), outcome=Outcome.CLICKED)  # the CHECK refuses it
    await redis_client.xadd(stream, _entry("contacts", [refused]))
    await history.record_decision(decision("d-2"))

    assert await drainer.drain_once() == 2
    assert await drainer.backlog() == 0 and drainer.dead_lettered == 2
    dead = await redis_client.xrange(f"{stream}:dead")
    assert [fields[KIND] for _, fields in dead] == [b"mystery", b"contacts"]
    assert b"refused by SQL" in dead[1][1][b"error"]

    assert await requeue_dead(redis_client, stream) == 2
    assert await drainer.backlog() == 2
    await drain_all(drainer)  # still bad: back to the dead letters
    assert len(await redis_client.xrange(f"{stream}:dead")) == 2


async def test_an_entry_the_writer_cannot_encode_is_set_aside_at_once(
    history: StreamHistory, drainer: Drainer, redis_client: Redis, stream: str
):
    for i in range(5):
        await history.record_decision(decision(f"d-{i}"))
    poison = orjson.loads(encode_record(decision("d-poison")))
    poison["at"] = "not a time"  # fails inside the writer's transaction, as it encodes the row
    await redis_client.xadd(stream, {KIND: b"decision", DATA: orjson.dumps(poison)})
    await history.record_decision(decision("d-after"))

    assert await drainer.drain_once() == 6  # the batch was retried job by job: only the poison failed
    assert await count(history.sql, decisions) == 6
    assert drainer.dead_lettered == 1 and b"refused" in (await redis_client.xrange(f"{stream}:dead"))[0][1][b"error"]


async def test_an_entry_that_fails_alone_is_set_aside_after_a_few_tries(
    history: StreamHistory, drainer: Drainer, redis_client: Redis, stream: str, monkeypatch: pytest.MonkeyPatch
):
    for i in range(5):
        await history.record_decision(decision(f"d-{i}"))
    await history.record_decision(decision("d-poison"))
    await history.record_decision(decision("d-after"))
    real = drainer.sql.record_decision

    async def flaky_for_the_poison(record: DecisionRecord) -> bool:  # fails, but not for its data
        if record.decision_id == "d-poison":
            raise HistoryWriteError("decision not recorded: something odd")
        return await real(record)

    monkeypatch.setattr(drainer.sql, "record_decision", flaky_for_the_poison)

    failures = 0
    while await drainer.backlog():
        try:
            await drainer.drain_once()
        except HistoryWriteError:
            failures += 1
        assert failures <= MAX_STRIKES + 1

    assert await count(history.sql, decisions) == 6
    assert drainer.dead_lettered == 1 and b"alone" in (await redis_client.xrange(f"{stream}:dead"))[0][1][b"error"]


async def test_run_stops_cleanly_having_stored_what_it_read(history: StreamHistory, drainer: Drainer):
    stop = asyncio.Event()
    task = asyncio.create_task(drainer.run(stop))
    await asyncio.gather(*(history.record_decision(decision(f"d-{i}")) for i in range(200)))
    for _ in range(500):
        if await drainer.backlog() == 0:
            break
        await asyncio.sleep(0.01)

    stop.set()
    await asyncio.wait_for(task, NO_HANG)
    assert await count(history.sql, decisions) == 200
    assert await pending(history.client, history.stream) == 0


async def test_the_drainer_recovers_a_deleted_stream(
    history: StreamHistory, drainer: Drainer, redis_client: Redis, stream: str
):
    await history.record_decision(decision("d-1"))
    await drain_all(drainer)
    await redis_client.delete(stream)  # an operator's mistake, or a Redis that lost its data

    assert await drainer.drain_once() == 0  # the group is created again
    await history.record_decision(decision("d-2"))
    assert await drain_all(drainer) == 1
    assert await count(history.sql, decisions) == 2


async def test_the_drain_command_drains_until_sigterm(
    history: StreamHistory, sql_url: str, redis_url: str, stream: str
):
    code = f"import asyncio; from history.drain import main; asyncio.run(main({sql_url!r}, {redis_url!r}, {stream!r}))"
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=REPO)
    try:
        await asyncio.gather(*(history.record_decision(decision(f"d-{i}")) for i in range(100)))
        for _ in range(int(NO_HANG / 0.05)):
            if await count(history.sql, decisions) == 100:
                break
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), NO_HANG) == 0  # a clean stop
    finally:
        if process.returncode is None:
            process.kill()
    assert await count(history.sql, decisions) == 100
    assert await history.client.xlen(stream) == 0


async def test_a_write_reports_an_unreachable_redis(sql: SqlHistory, stream: str):
    gone = Redis(port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))  # nothing listens on port 1
    history = StreamHistory(gone, sql, stream=stream)
    await history.start()
    with pytest.raises(HistoryWriteError):
        await history.record_decision(decision("d-1"))
    assert await history.ping() is False
    await history.close()
    await gone.aclose()


async def test_concurrent_writes_share_round_trips(history: StreamHistory, drainer: Drainer):
    await asyncio.gather(*(history.record_decision(decision(f"d-{i}")) for i in range(300)))

    assert history.round_trips < 300  # pipelined together, not one round trip each
    assert await drainer.backlog() == 300


async def test_writes_survive_a_flushed_script_cache(
    history: StreamHistory, drainer: Drainer, monkeypatch: pytest.MonkeyPatch
):
    real, calls = history._evalsha, []

    async def flushed_first(jobs):  # as if Redis had restarted: the first pipeline finds no script
        calls.append(len(jobs))
        return [NoScriptError("NOSCRIPT No matching script")] * len(jobs) if len(calls) == 1 else await real(jobs)

    monkeypatch.setattr(history, "_evalsha", flushed_first)
    await history.record_decision(decision("d-1"))
    assert await history.record_response(response("r-1", "card_gold", "d-1", T0)) is True

    assert calls[:2] == [1, 1]  # the refused write ran again once the script was loaded
    assert await drainer.backlog() == 2


# --- reads see what is appended and not drained yet --------------------------------------------------------


async def index_keys(client: Redis, stream: str) -> list[bytes]:
    """The pending index's keys of this stream (markers aside)."""
    prefix = marker_prefix(stream)
    return sorted([key async for key in client.scan_iter(match=f"{prefix}:[dp]:*", count=1000)])


async def test_an_undrained_decision_is_found(history: StreamHistory, drainer: Drainer):
    record = decision("d-1", ("card_gold", "loan_car"), request_id="req-1", at=T0)
    await history.record_decision(record)
    await history.record_contacts([send("s-1", "card_gold", at=T0 + 60)])

    assert await history.sql.find_contact("d-1", "card_gold") is None  # SQL lags
    assert await history.find_contact("d-1", "loan_car") == record.contacts[1]
    assert await history.find_contact("d-1", "mortgage") is None
    assert await history.find_contact("s-1", "card_gold") == send("s-1", "card_gold", at=T0 + 60)
    assert await history.decision_for_request("req-1") == record
    assert await history.latest_contact("c-1", "card_gold") == send("s-1", "card_gold", at=T0 + 60)
    assert await history.latest_contact("c-1", "card_gold", at_or_before=T0 + 59) == record.contacts[0]
    assert await history.latest_contact("c-1", "card_gold", at_or_before=T0 - 1) is None

    await drain_all(drainer)
    assert await index_keys(history.client, history.stream) == []  # the drain took them out
    assert await history.find_contact("d-1", "loan_car") == record.contacts[1]  # from SQL
    assert await history.latest_contact("c-1", "card_gold", at_or_before=T0 + 59) == record.contacts[0]


async def test_a_response_to_an_undrained_decision_takes_its_group(history: StreamHistory, drainer: Drainer):
    await history.record_decision(decision("d-1", ("card_gold",)))
    assert await history.record_response(response("r-1", "card_gold", "d-1", T0 + 5)) is True  # no group given

    await drain_all(drainer)
    clicked = [e for e in (await history.summary("c-1", T0)).events if e.outcome == Outcome.CLICKED]
    assert [(e.group, e.decision_id) for e in clicked] == [("cards", "d-1")]


async def test_summary_and_entries_count_undrained_entries_once(
    history: StreamHistory, sql: SqlHistory, stream: str, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
):
    await history.record_decision(decision("d-0", ("card_gold",), at=T0))
    await Drainer(redis_client, sql, stream=stream, consumer="first", block_ms=10).drain_once()  # d-0 in SQL
    for i in range(1, 4):
        await history.record_decision(decision(f"d-{i}", ("card_gold", "loan_car"), at=T0 + i))
    await history.record_response(response("r-1", "card_gold", "d-1", T0 + 10, group="cards"))
    await history.record_contacts([send("s-1", "mortgage", at=T0 + 20, group="loans")])
    expected = [
        ("card_gold", "presented"),
        *[(offer, "presented") for _ in range(3) for offer in ("card_gold", "loan_car")],
        ("card_gold", "clicked"),
        ("mortgage", "sent"),
    ]

    def seen(summary: object) -> list[tuple[str, str]]:
        return sorted((e.offer_id, str(e.outcome)) for e in summary.events)  # type: ignore[attr-defined]

    assert seen(await history.summary("c-1", T0)) == sorted(expected)  # 1 stored, the rest pending
    assert len((await history.summary("c-1", T0 + 1.5)).events) == 6  # `since` holds for pending entries too
    entries = await history.entries("c-1")
    newest = [(e.kind, e.id, e.offer_id) for e in entries][:2]
    assert newest == [("contact", "s-1", "mortgage"), ("response", "r-1", "card_gold")]
    assert len(entries) == 9 and entries[1].details == {}  # not stored yet: no recorded_at

    crashing = Drainer(redis_client, sql, stream=stream, consumer="crashes-before-ack", block_ms=10)

    async def crash(ids: object, settled: object) -> None:
        raise ConnectionError("killed between the SQL commit and XACK")

    monkeypatch.setattr(crashing, "_ack", crash)
    with pytest.raises(ConnectionError):
        await crashing.drain_once()
    assert await count(sql, decisions) == 4  # in SQL and still in the pending index
    assert seen(await history.summary("c-1", T0)) == sorted(expected)  # each counted once
    assert len(await history.entries("c-1")) == 9

    survivor = Drainer(redis_client, sql, stream=stream, consumer="survivor", block_ms=10, claim_idle_ms=0)
    await drain_all(survivor)
    assert await index_keys(redis_client, stream) == []
    assert seen(await history.summary("c-1", T0)) == sorted(expected)
    assert [e.id for e in await history.entries("c-1")] == [e.id for e in entries]
    assert (await history.entries("c-1"))[1].details != {}  # stored: it has its recorded_at now


async def test_a_pending_decision_id_is_not_appended_twice(history: StreamHistory, drainer: Drainer):
    assert await history.record_decision(decision("d-1")) is True
    assert await history.record_decision(decision("d-1", ("loan_car",))) is False  # still in the stream

    assert await drain_all(drainer) == 1
    assert await count(history.sql, contacts) == 1


async def test_the_index_expires_with_the_markers(history: StreamHistory, redis_client: Redis):
    await history.record_decision(decision("d-1", request_id="req-1"))
    await history.record_contacts([send("s-1", "a", customer="c-2")])
    await history.record_response(response("r-1", "card_gold", "d-1", T0 + 1, group="cards"))

    keys = await index_keys(redis_client, history.stream)
    assert len(keys) == 4  # d:d-1, d:s-1, p:c-1, p:c-2
    for key in keys:
        assert 0 < await redis_client.ttl(key) <= history.marker_ttl


async def test_dead_lettered_entries_leave_the_index(
    history: StreamHistory, drainer: Drainer, redis_client: Redis, stream: str
):
    refused = dataclasses.replace(send("s-bad", "card_gold"), outcome=Outcome.CLICKED)  # the CHECK refuses it
    await history.record_contacts([refused])
    assert await history.find_contact("s-bad", "card_gold") == refused  # pending, for now

    await drain_all(drainer)
    assert drainer.dead_lettered == 1 and await index_keys(redis_client, stream) == []
    assert await history.find_contact("s-bad", "card_gold") is None


async def test_a_write_and_its_index_are_one_round_trip(history: StreamHistory):
    before = history.round_trips
    await history.record_decision(decision("d-1", ("card_gold", "loan_car", "mortgage"), request_id="req-1"))
    await history.record_contacts([send(f"s-{i}", "card_gold", customer=f"c-{i}") for i in range(50)])
    assert history.round_trips - before == 2


async def test_an_unencodable_record_fails_only_its_own_append(history: StreamHistory, drainer: Drainer):
    deep: dict = {}
    for _ in range(500):
        deep = {"k": deep}
    good = [history.record_decision(decision(f"d-{i}", context={"page": "/cards"})) for i in range(20)]
    bad = [
        history.record_decision(decision("d-big", context={"n": 2**70})),
        history.record_decision(decision("d-deep", context=deep)),
    ]

    results = await asyncio.gather(*good, *bad, return_exceptions=True)

    assert results[:20] == [True] * 20
    assert all(isinstance(r, HistoryRecordError) and "its context" in str(r) for r in results[20:])
    assert await drain_all(drainer) == 20
