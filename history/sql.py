"""`SqlHistory`: the unified contact history on SQLite (embedded default) or PostgreSQL (production).

Writes go through a group-commit writer (see `history.writer`): a call returns once its rows are
committed, and concurrent calls share transactions. Reads run on their own pooled connections: on
PostgreSQL through SQLAlchemy, on SQLite in one hop each to plain `sqlite3` readers (`history.sqlite_reader`);
both run the selects of `history.queries`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from decisioning.records import ContactRecord, DecisionRecord, HistoryEntry, ResponseRecord
from decisioning.summary import MAX_EVENTS, HistorySummary
from decisioning.types import ContactEvent
from history import queries, rows
from history.batch import CONTACTS, DECISION, RESPONSE
from history.database import make_engine, sqlite_file
from history.postgres_writer import PostgresWriter
from history.sqlite_reader import Reads, SqliteReader
from history.sqlite_writer import SqliteWriter
from history.writer import GroupCommitWriter, HistoryClosedError, Transact

Lookup = tuple[sa.Select[Any], dict[str, Any]]  # a select of `history.queries` and its parameters


class SqlHistory:
    """The `ContactHistory` port on SQLAlchemy (async): `sqlite+aiosqlite:///path.db` or
    `postgresql+asyncpg://user@host:5432/db`. The schema comes from the Alembic migrations.

    >>> history = SqlHistory("sqlite+aiosqlite:///var/nbo.db")   # doctest: +SKIP
    >>> await history.start()                                     # doctest: +SKIP
    >>> await history.record_decision(record)                     # doctest: +SKIP
    >>> await history.close()                                     # doctest: +SKIP

    `batch_max` caps the writes that share one transaction; `batch_wait_ms` is how long the writer waits
    for more work after the first write of a batch. `clock` stamps responses' `recorded_at`.
    `sqlite_readers` is the number of SQLite's reader threads; 0 sends SQLite's reads through SQLAlchemy and
    aiosqlite, as PostgreSQL's go (slower: the tests compare the two paths).
    """

    def __init__(
        self,
        url: str,
        *,
        batch_max: int = 500,
        batch_wait_ms: float = 1.0,
        clock: Callable[[], float] = time.time,
        sqlite_synchronous: str = "full",
        sqlite_readers: int = 2,
        **engine_options: Any,
    ) -> None:
        self.url = url
        self._sqlite_synchronous = sqlite_synchronous
        self._sqlite_readers = sqlite_readers
        self._batch_max = batch_max
        self._batch_wait = batch_wait_ms / 1000.0
        self._clock = clock
        self._engine_options = engine_options
        self._engine: AsyncEngine | None = None
        self._writer: GroupCommitWriter | None = None
        self._sqlite_writer: SqliteWriter | None = None
        self._pg_writer: PostgresWriter | None = None
        self._sqlite_reader: SqliteReader | None = None  # SQLite: the reads' threads (see history.sqlite_reader)
        self._reads: AsyncEngine | None = None  # PostgreSQL: the reads' own pool, in autocommit (see start)

    async def start(self) -> None:
        """Open the engine and start the writer (the schema must exist: see `history.migrate`)."""
        if self._engine is not None:
            return
        options = {"pool_pre_ping": True} if self.url.startswith("postgresql") else {}
        self._engine = make_engine(self.url, **(options | self._engine_options))
        if self._engine.dialect.name == "postgresql":
            # Reads in autocommit: each statement its own snapshot, as in a READ COMMITTED transaction, but
            # without BEGIN and ROLLBACK around the query and around the pre-ping (6 round trips to 2).
            self._reads = make_engine(self.url, **(options | self._engine_options | {"isolation_level": "AUTOCOMMIT"}))
        self._writer = GroupCommitWriter(
            self._transact_for(self._engine), batch_max=self._batch_max, batch_wait=self._batch_wait
        )
        self._writer.start()

    def _transact_for(self, engine: AsyncEngine) -> Transact:
        """The dialect's fast path for a batch transaction (see postgres_writer and sqlite_writer)."""
        if engine.dialect.name == "postgresql":
            self._pg_writer = PostgresWriter(engine)
            return self._pg_writer.transact
        if engine.dialect.name == "sqlite":
            self._sqlite_writer = SqliteWriter(sqlite_file(self.url), self._sqlite_synchronous)
            if self._sqlite_readers > 0:
                self._sqlite_reader = SqliteReader(sqlite_file(self.url), engine.dialect, self._sqlite_readers)
            return self._sqlite_writer.transact
        raise ValueError(f"SqlHistory runs on PostgreSQL or SQLite, not {engine.dialect.name}")

    async def close(self) -> None:
        """Write what is queued, then release the connections. Idempotent."""
        writer, engine, sqlite_writer, pg_writer = self._writer, self._engine, self._sqlite_writer, self._pg_writer
        reads, self._reads = self._reads, None
        sqlite_reader, self._sqlite_reader = self._sqlite_reader, None
        self._writer = self._engine = self._sqlite_writer = self._pg_writer = None
        if writer is not None:
            await writer.close()
        if sqlite_reader is not None:
            await sqlite_reader.close()
        if sqlite_writer is not None:
            await sqlite_writer.close()
        if pg_writer is not None:
            await pg_writer.close()
        if engine is not None:
            await engine.dispose()
        if reads is not None:
            await reads.dispose()

    async def durability(self) -> str:
        """How a commit is made durable: SQLite's writer `synchronous` level ("full" fsyncs every group
        commit, "normal" survives a crash of the service only), or "server" for PostgreSQL."""
        if self._sqlite_writer is None:
            return "server"
        return await self._sqlite_writer.synchronous()

    @property
    def commits(self) -> int:
        """Write transactions committed since `start` (fewer than writes: they are grouped)."""
        return self._writer.commits if self._writer else 0

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise HistoryClosedError("the contact history is not started")
        return self._engine

    @property
    def _read_engine(self) -> AsyncEngine:
        """Where the reads go: their autocommit pool on PostgreSQL, the engine itself on SQLite (whose driver
        opens no transaction for a SELECT)."""
        return self._reads or self.engine

    # --- writes -------------------------------------------------------------------------------------

    async def record_decision(self, decision: DecisionRecord) -> bool:
        """Durably store the decision and its presented offers; returns after the commit.

        A decision whose `request_id` (or `decision_id`) is already stored is not stored again: False.
        """
        payload = (rows.decision_row(decision), [rows.contact_row(c) for c in decision.contacts])
        return await self._submit(DECISION, payload)

    async def record_contacts(self, contacts: Sequence[ContactRecord]) -> list[ContactRecord]:
        """Store outbound contacts (sends, selections); those whose (contact_id, offer_id) exists already,
        or comes earlier in the same call, are skipped. Returns the contacts added, in the order given."""
        if not contacts:
            return []
        added = await self._submit(CONTACTS, [rows.contact_row(c) for c in contacts])
        return [c for c, was_added in zip(contacts, added, strict=True) if was_added]

    async def record_response(self, response: ResponseRecord) -> bool:
        """Store a response; False when one with the same `response_id` exists already.

        A response without a group takes the group of the contact it answers (or of the customer's
        latest contact of that offer), so that group-level contact policies count it.
        """
        group = response.group or await self._group_of(response)
        row = rows.response_row(response, recorded_at=self._clock()) | {"group_id": group}
        return await self._submit(RESPONSE, row)

    async def _submit(self, kind: str, payload: Any) -> Any:
        if self._writer is None:
            raise HistoryClosedError("the contact history is not started")
        return await self._writer.submit(kind, payload)

    async def _group_of(self, response: ResponseRecord) -> str | None:
        """The group of the contact the response answers: the first of `_group_lookups` found."""
        lookups = _group_lookups(response)
        if (reader := self._sqlite_reader) is not None:
            row = await reader.run(lambda reads: next(filter(None, (reads.first(*q) for q in lookups)), None))
        else:
            row = None
            for lookup in lookups:
                if (row := await self._first(*lookup)) is not None:
                    break
        return row._mapping["group_id"] if row else None

    # --- reads --------------------------------------------------------------------------------------

    async def latest_contact(
        self, customer_id: str, offer_id: str, at_or_before: float | None = None
    ) -> ContactRecord | None:
        """The most recent contact (any channel, any outcome) of this offer to this customer, made at or
        before `at_or_before` when given. Ties in time go to the greatest (contact_id): deterministic."""
        row = await self._first(*_latest_contact(customer_id, offer_id, at_or_before))
        return rows.contact_from_row(row) if row else None

    async def find_contact(self, decision_id: str, offer_id: str) -> ContactRecord | None:
        """The contact of `offer_id` in the decision (or outbound send) `decision_id`."""
        row = await self._first(*_find_contact(decision_id, offer_id))
        return rows.contact_from_row(row) if row else None

    async def decision_for_request(self, request_id: str) -> DecisionRecord | None:
        """The decision recorded for a request id, with its contacts in rank order, if any (idempotent
        retries)."""
        params = {"request_id": request_id}
        if (reader := self._sqlite_reader) is not None:
            return await reader.run(lambda reads: _decision_for_request(reads, params))
        async with self._read_engine.connect() as conn:
            found = (await conn.execute(queries.decision_for_request(), params)).first()
            if found is None:
                return None
            offers = await conn.execute(queries.contacts_of(), {"contact_id": found.decision_id})
            return rows.decision_from_rows(found, offers.all())

    async def summary(self, customer_id: str, since: float) -> HistorySummary:
        """Rebuild a customer's summary from the stored contacts and responses at or after `since`.

        Only the newest `MAX_EVENTS` of each are read: the summary keeps no more than that anyway.
        """
        found_contacts, found_responses = await self.newest_rows(customer_id, MAX_EVENTS, since)
        # Contacts first, and a stable sort: at equal times a contact precedes the response to it.
        events = [*map(rows.contact_event, found_contacts), *map(rows.response_event, found_responses)]
        return HistorySummary().with_events(sorted(events, key=lambda e: e.at))

    async def summaries(self, since: float) -> dict[str, HistorySummary]:
        """Every customer's summary, rebuilt in two scans: warms an in-process cache at start-up.

        >>> summaries = await history.summaries(since=now - 400 * DAY)   # doctest: +SKIP
        """
        scans = (queries.since("contacts"), {"since": since}), (queries.since("responses"), {"since": since})
        if (reader := self._sqlite_reader) is not None:  # row by row on the reader thread: none kept
            return await reader.run(lambda reads: _summaries_of(*(reads.each(*scan) for scan in scans)))
        async with self._read_engine.connect() as conn:
            return _summaries_of(*[await conn.execute(*scan) for scan in scans])

    async def entries(self, customer_id: str, limit: int = 100) -> list[HistoryEntry]:
        """The customer's contacts and responses, newest first, at most `limit`."""
        found_contacts, found_responses = await self.newest_rows(customer_id, limit)
        listed = [*map(rows.contact_entry, found_contacts), *map(rows.response_entry, found_responses)]
        return sorted(listed, key=lambda e: e.at, reverse=True)[:limit]

    async def newest_rows(
        self, customer_id: str, limit: int, since: float | None = None
    ) -> tuple[Sequence[rows.Row], Sequence[rows.Row]]:
        """The customer's newest `limit` contact rows and `limit` response rows (at or after `since`), newest
        first: what `summary` and `entries` are built from (and `StreamHistory` merges its pending with)."""
        return await self._both(
            _newest_of("contacts", customer_id, limit, since), _newest_of("responses", customer_id, limit, since)
        )

    async def ping(self) -> bool:
        """True when the database answers a trivial query (through the engine, on SQLite too: its
        migrations and the CLI use it)."""
        try:
            async with self._read_engine.connect() as conn:
                return (await conn.execute(sa.select(sa.literal(1)))).first() is not None
        except Exception:  # a health check reports, it does not raise
            return False

    async def _first(self, query: sa.Select[Any], params: dict[str, Any]) -> rows.Row | None:
        if (reader := self._sqlite_reader) is not None:
            return await reader.run(lambda reads: reads.first(query, params))
        async with self._read_engine.connect() as conn:
            return (await conn.execute(query, params)).first()

    async def _both(self, first: Lookup, second: Lookup) -> tuple[Sequence[rows.Row], Sequence[rows.Row]]:
        """The rows of two selects, in one hop on SQLite, on one pooled connection otherwise."""
        if (reader := self._sqlite_reader) is not None:
            return await reader.run(lambda reads: (reads.all(*first), reads.all(*second)))
        async with self._read_engine.connect() as conn:
            return (await conn.execute(*first)).all(), (await conn.execute(*second)).all()


def _latest_contact(customer_id: str, offer_id: str, at_or_before: float | None) -> Lookup:
    params: dict[str, Any] = {"customer_id": customer_id, "offer_id": offer_id}
    if at_or_before is not None:
        params["at_or_before"] = at_or_before
    return queries.latest_contact(bounded=at_or_before is not None), params


def _find_contact(decision_id: str, offer_id: str) -> Lookup:
    return queries.find_contact(), {"contact_id": decision_id, "offer_id": offer_id}


def _group_lookups(response: ResponseRecord) -> list[Lookup]:
    """Where a response's contact is looked for, in order: the contact it names; the customer's latest of
    that offer made before it; any, if none was (clock skew)."""
    lookups = [_find_contact(response.decision_id, response.offer_id)] if response.decision_id is not None else []
    lookups.append(_latest_contact(response.customer_id, response.offer_id, response.at))
    lookups.append(_latest_contact(response.customer_id, response.offer_id, None))
    return lookups


def _summaries_of(contact_rows: Iterable[rows.Row], response_rows: Iterable[rows.Row]) -> dict[str, HistorySummary]:
    """Every customer's summary from the rows of `queries.since` on contacts and on responses."""
    events: dict[str, list[ContactEvent]] = defaultdict(list)
    for row in contact_rows:
        events[row._mapping["customer_id"]].append(rows.contact_event(row))
    for row in response_rows:
        events[row._mapping["customer_id"]].append(rows.response_event(row))
    # Contacts were added first, and the sort is stable: at equal times a contact precedes its response.
    return {cid: HistorySummary().with_events(sorted(evs, key=lambda e: e.at)) for cid, evs in events.items()}


def _decision_for_request(reads: Reads, params: dict[str, Any]) -> DecisionRecord | None:
    """`SqlHistory.decision_for_request` on a SQLite reader thread: both selects and the record, one hop."""
    found = reads.first(queries.decision_for_request(), params)
    if found is None:
        return None
    offers = reads.all(queries.contacts_of(), {"contact_id": found._mapping["decision_id"]})
    return rows.decision_from_rows(found, offers)


def _newest_of(table: str, customer_id: str, limit: int, since: float | None) -> Lookup:
    params: dict[str, Any] = {"customer_id": customer_id, "limit": limit}
    if since is not None:
        params["since"] = since
    return queries.newest(table, bounded=since is not None), params


def _newest(table: sa.Table, at: str, customer_id: str, limit: int, since: float | None) -> sa.Select[Any]:
    """The select `newest_rows` runs on `table`, its values bound (tests EXPLAIN it on the partitions).

    `at` is the table's time column: the one `queries.TIME_COLUMNS` names, or ValueError.
    """
    if queries.TIME_COLUMNS.get(table.name) != at:
        raise ValueError(f"{table.name}'s rows are read newest first by {queries.TIME_COLUMNS.get(table.name)}")
    query, params = _newest_of(table.name, customer_id, limit, since)
    return query.params(params)
