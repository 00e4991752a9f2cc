"""`SqlHistory`: the unified contact history on SQLite (embedded default) or PostgreSQL (production).

Writes go through a group-commit writer (see `history.writer`): a call returns once its rows are
committed, and concurrent calls share transactions. Reads run on their own pooled connections.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from decisioning.records import ContactRecord, DecisionRecord, HistoryEntry, ResponseRecord
from decisioning.summary import MAX_EVENTS, HistorySummary
from decisioning.types import ContactEvent
from history import rows
from history.batch import CONTACTS, DECISION, RESPONSE
from history.database import make_engine, sqlite_file
from history.postgres_writer import PostgresWriter
from history.sqlite_writer import SqliteWriter
from history.tables import contacts, decisions, responses
from history.writer import GroupCommitWriter, HistoryClosedError, Transact


class SqlHistory:
    """The `ContactHistory` port on SQLAlchemy (async): `sqlite+aiosqlite:///path.db` or
    `postgresql+asyncpg://user@host:5432/db`. The schema comes from the Alembic migrations.

    >>> history = SqlHistory("sqlite+aiosqlite:///var/nbo.db")   # doctest: +SKIP
    >>> await history.start()                                     # doctest: +SKIP
    >>> await history.record_decision(record)                     # doctest: +SKIP
    >>> await history.close()                                     # doctest: +SKIP

    `batch_max` caps the writes that share one transaction; `batch_wait_ms` is how long the writer waits
    for more work after the first write of a batch. `clock` stamps responses' `recorded_at`.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_max: int = 500,
        batch_wait_ms: float = 1.0,
        clock: Callable[[], float] = time.time,
        sqlite_synchronous: str = "full",
        **engine_options: Any,
    ) -> None:
        self.url = url
        self._sqlite_synchronous = sqlite_synchronous
        self._batch_max = batch_max
        self._batch_wait = batch_wait_ms / 1000.0
        self._clock = clock
        self._engine_options = engine_options
        self._engine: AsyncEngine | None = None
        self._writer: GroupCommitWriter | None = None
        self._sqlite_writer: SqliteWriter | None = None
        self._pg_writer: PostgresWriter | None = None
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
            return self._sqlite_writer.transact
        raise ValueError(f"SqlHistory runs on PostgreSQL or SQLite, not {engine.dialect.name}")

    async def close(self) -> None:
        """Write what is queued, then release the connections. Idempotent."""
        writer, engine, sqlite_writer, pg_writer = self._writer, self._engine, self._sqlite_writer, self._pg_writer
        reads, self._reads = self._reads, None
        self._writer = self._engine = self._sqlite_writer = self._pg_writer = None
        if writer is not None:
            await writer.close()
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
        contact = None
        if response.decision_id is not None:
            contact = await self.find_contact(response.decision_id, response.offer_id)
        if contact is None:  # the contact it answers was made before it; any, if none was (clock skew)
            contact = await self.latest_contact(response.customer_id, response.offer_id, response.at)
        if contact is None:
            contact = await self.latest_contact(response.customer_id, response.offer_id)
        return contact.group if contact else None

    # --- reads --------------------------------------------------------------------------------------

    async def latest_contact(
        self, customer_id: str, offer_id: str, at_or_before: float | None = None
    ) -> ContactRecord | None:
        """The most recent contact (any channel, any outcome) of this offer to this customer, made at or
        before `at_or_before` when given. Ties in time go to the greatest (contact_id): deterministic."""
        query = sa.select(contacts).where(contacts.c.customer_id == customer_id, contacts.c.offer_id == offer_id)
        if at_or_before is not None:
            query = query.where(contacts.c.contacted_at <= at_or_before)
        row = await self._first(query.order_by(contacts.c.contacted_at.desc(), contacts.c.contact_id.desc()).limit(1))
        return rows.contact_from_row(row) if row else None

    async def find_contact(self, decision_id: str, offer_id: str) -> ContactRecord | None:
        """The contact of `offer_id` in the decision (or outbound send) `decision_id`."""
        query = sa.select(contacts).where(
            contacts.c.contact_id == decision_id, contacts.c.offer_id == offer_id
        )
        row = await self._first(query)
        return rows.contact_from_row(row) if row else None

    async def decision_for_request(self, request_id: str) -> DecisionRecord | None:
        """The decision recorded for a request id, with its contacts in rank order, if any (idempotent
        retries)."""
        async with self._read_engine.connect() as conn:
            found = (await conn.execute(sa.select(decisions).where(decisions.c.request_id == request_id))).first()
            if found is None:
                return None
            offers = await conn.execute(sa.select(contacts).where(contacts.c.contact_id == found.decision_id))
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
        events: dict[str, list[ContactEvent]] = defaultdict(list)
        async with self._read_engine.connect() as conn:
            for row in await conn.execute(sa.select(contacts).where(contacts.c.contacted_at >= since)):
                events[row.customer_id].append(rows.contact_event(row))
            for row in await conn.execute(sa.select(responses).where(responses.c.responded_at >= since)):
                events[row.customer_id].append(rows.response_event(row))
        # Contacts were added first, and the sort is stable: at equal times a contact precedes its response.
        return {cid: HistorySummary().with_events(sorted(evs, key=lambda e: e.at)) for cid, evs in events.items()}

    async def entries(self, customer_id: str, limit: int = 100) -> list[HistoryEntry]:
        """The customer's contacts and responses, newest first, at most `limit`."""
        found_contacts, found_responses = await self.newest_rows(customer_id, limit)
        listed = [*map(rows.contact_entry, found_contacts), *map(rows.response_entry, found_responses)]
        return sorted(listed, key=lambda e: e.at, reverse=True)[:limit]

    async def newest_rows(
        self, customer_id: str, limit: int, since: float | None = None
    ) -> tuple[Sequence[sa.Row[Any]], Sequence[sa.Row[Any]]]:
        """The customer's newest `limit` contact rows and `limit` response rows (at or after `since`), newest
        first: what `summary` and `entries` are built from (and `StreamHistory` merges its pending with)."""
        async with self._read_engine.connect() as conn:
            found_contacts = await conn.execute(_newest(contacts, "contacted_at", customer_id, limit, since))
            found_responses = await conn.execute(
                _newest(responses, "responded_at", customer_id, limit, since)
            )
            return found_contacts.all(), found_responses.all()

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            return await self._first(sa.select(sa.literal(1))) is not None
        except Exception:  # a health check reports, it does not raise
            return False

    async def _first(self, query: sa.Select[Any]) -> sa.Row[Any] | None:
        async with self._read_engine.connect() as conn:
            return (await conn.execute(query)).first()


def _newest(table: sa.Table, at: str, customer_id: str, limit: int, since: float | None) -> sa.Select[Any]:
    """The customer's newest rows of `table` by its time column `at`, at or after `since`.

    Ties in time are broken by the primary key, so that listings are deterministic.
    """
    query = sa.select(table).where(table.c.customer_id == customer_id)
    if since is not None:
        query = query.where(table.c[at] >= since)
    return query.order_by(table.c[at].desc(), *table.primary_key.columns).limit(limit)
