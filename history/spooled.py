"""`SpooledHistory`: the `ContactHistory` port that keeps acknowledging writes while PostgreSQL is down.

It wraps `SqlHistory`. A write goes to PostgreSQL; when PostgreSQL cannot commit it (unreachable, failing
over; not a record it refuses for its data), it goes to the local spool (`history.spool`: fsync'd, bounded)
and is acknowledged from there. From then on every write goes to the spool, so that one customer's writes
stay in order, until a background task has replayed everything held into PostgreSQL and emptied the file;
writes then go to PostgreSQL again. When the spool is full a write fails with `SpoolFull` (503 with
Retry-After): nothing is acknowledged that is not durable somewhere.

Replay is exactly once because every insert is idempotent (decisions by `decision_id` and `request_id`,
contacts by `(contact_id, offer_id)`, responses by `response_id`): a record replayed twice (a crash after
its commit, before the file was truncated) is skipped the second time. Records are replayed in the order
they were spooled. A process replays at start-up what the previous owner of its spool slot left.

Reads go to PostgreSQL (a spooled decision is found by its `request_id` from memory, so that a retry is
answered with it); a read PostgreSQL cannot answer raises `StoreUnavailable`. Writes never wait for a read,
except a response without a group, whose group is looked up first (SqlHistory).

>>> history = SpooledHistory(SqlHistory(url), Path("var/spool"), max_bytes=64 << 20)   # doctest: +SKIP
>>> await history.start()                                                              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import exc

from decisioning.ports import StoreUnavailable
from decisioning.records import ContactRecord, DecisionRecord, HistoryEntry, ResponseRecord
from decisioning.summary import HistorySummary
from history.batch import CONTACTS, DECISION, RESPONSE
from history.spool import Spool, SpooledEntry, SpoolFull, encode_entry
from history.sql import SqlHistory
from history.writer import GroupCommitWriter, HistoryClosedError, HistoryRecordError, HistoryWriteError, Job

log = logging.getLogger("nbo.spool")
T = TypeVar("T")
READ_FAILURES = (exc.DBAPIError, exc.TimeoutError, OSError, TimeoutError, HistoryWriteError)
REPLAY_BATCH = 500
FINAL_REPLAY_SECONDS = 5.0


class SpooledHistory:
    """`ContactHistory` = `SqlHistory` + a local spool for the writes it cannot commit (module doc)."""

    def __init__(
        self,
        sql: SqlHistory,
        directory: Path,
        *,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
        retry_seconds: float = 0.5,
    ) -> None:
        self.sql = sql
        self.directory = directory
        self.max_bytes = max_bytes
        self._clock = clock
        self._retry = retry_seconds
        self._spool: Spool | None = None
        self._writer: GroupCommitWriter | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._mutex = asyncio.Lock()  # a spool append and the final truncate never interleave
        self.spooling = False
        self._requests: dict[str, DecisionRecord] = {}  # request id -> spooled decision, until replayed
        self.replayed_records = 0

    async def start(self) -> None:
        """Open the spool (taking what a previous process left: replayed in the background) and the writer."""
        await self.sql.start()
        self._spool = await asyncio.to_thread(Spool.open, self.directory, max_bytes=self.max_bytes)
        if self._spool.pending:
            self.spooling = True
            for entry in await asyncio.to_thread(self._spool.read, 0, len(self._spool.pending)):
                self._remember(entry.kind, entry.record)
        self._writer = GroupCommitWriter(self._append, batch_max=500, batch_wait=0.0)
        self._writer.start()
        self._replayer = asyncio.get_running_loop().create_task(self._replay_forever(), name="history-replay")

    async def close(self) -> None:
        """Stop taking writes, replay what the spool holds if PostgreSQL answers (bounded), then close.
        What is left stays in the spool file for the next start."""
        if self._writer is not None:
            await self._writer.close()
        if self._replayer is not None:
            self._replayer.cancel()
            await asyncio.gather(self._replayer, return_exceptions=True)
        if self._spool is not None and self._spool.pending:
            try:
                async with asyncio.timeout(FINAL_REPLAY_SECONDS):
                    while self._spool.pending and await self.sql.ping() and await self._replay_batch():
                        pass
            except TimeoutError:
                pass
            log.info("history spool at shutdown", extra={"records_left": len(self._spool.pending)})
        await self.sql.close()
        if self._spool is not None:
            self._spool.close()
        self._writer = self._replayer = self._spool = None

    # --- writes ------------------------------------------------------------------------------------

    async def record_decision(self, decision: DecisionRecord) -> bool:
        if decision.request_id and decision.request_id in self._requests:
            return False  # an attempt of this request is spooled already, as SqlHistory would say
        return await self._write(DECISION, decision, lambda: self.sql.record_decision(decision), True)

    async def record_contacts(self, contacts: Sequence[ContactRecord]) -> list[ContactRecord]:
        # Spooled, the contacts are reported added: a duplicate (contact_id, offer_id) is skipped at replay.
        if not contacts:
            return []
        first = list({(c.contact_id, c.offer_id): c for c in reversed(contacts)}.values())[::-1]
        return await self._write(CONTACTS, list(contacts), lambda: self.sql.record_contacts(contacts), first)

    async def record_response(self, response: ResponseRecord) -> bool:
        # Spooled, a response is reported new: a repeated response_id is skipped at replay.
        return await self._write(RESPONSE, response, lambda: self.sql.record_response(response), True)

    async def _write(self, kind: str, record: Any, direct: Callable[[], Awaitable[T]], spooled: T) -> T:
        if not self.spooling:
            try:
                return await direct()
            except (HistoryRecordError, HistoryClosedError):
                raise
            except HistoryWriteError as error:
                log.warning(
                    "history write spooled: the database did not commit it", extra={"error": type(error).__name__}
                )
                self.spooling = True
        if self._writer is None:
            raise HistoryClosedError("the contact history is not started")
        await self._writer.submit(kind, record)
        self._remember(kind, record)
        return spooled

    async def _append(self, jobs: Sequence[Job]) -> list[Any]:
        """The spool's group commit: every job of the batch in one write and one fsync."""
        now = self._clock()
        framed = [encode_entry(job.kind, job.payload, now) for job in jobs]
        assert self._spool is not None
        async with self._mutex:
            await asyncio.to_thread(self._spool.append, framed, [now] * len(framed))
            self.spooling = True
        self._wake.set()
        return [True] * len(jobs)

    def _remember(self, kind: str, record: Any) -> None:
        if kind == DECISION and record.request_id:
            self._requests[record.request_id] = record

    # --- replay ------------------------------------------------------------------------------------

    async def _replay_forever(self) -> None:
        pause = self._retry
        while True:
            if not self.spooling:
                self._wake.clear()
                await self._wake.wait()
            try:
                done = await self.sql.ping() and await self._replay_batch()
            except Exception as error:  # never let the replayer die: it is what empties the spool
                log.warning("history replay failed", extra={"error": type(error).__name__})
                done = False
            if done:
                pause = self._retry
                continue
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    async def _replay_batch(self) -> bool:
        """Replay the next batch held; truncate the file once all of it is in. False when the database
        did not take it (retried later from the same record)."""
        spool = self._spool
        assert spool is not None
        entries = await asyncio.to_thread(spool.read, spool.replayed, REPLAY_BATCH)
        if not entries:
            async with self._mutex:
                if await asyncio.to_thread(spool.truncate_if_replayed):
                    self.spooling = False
                    log.warning("history spool replayed: writing to the database again")
            return True
        # Submitted together, in order: the group commit writes them in one or a few transactions.
        results = await asyncio.gather(*(self._store(e) for e in entries), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning("history replay interrupted", extra={"error": type(failed[0]).__name__})
            return False
        spool.mark_replayed(entries[-1].end)
        self.replayed_records += len(entries)
        for entry in entries:
            if entry.kind == DECISION and entry.record.request_id:
                self._requests.pop(entry.record.request_id, None)
        return True

    async def _store(self, entry: SpooledEntry) -> None:
        try:
            if entry.kind == DECISION:
                await self.sql.record_decision(entry.record)
            elif entry.kind == CONTACTS:
                await self.sql.record_contacts(entry.record)
            elif entry.kind == RESPONSE:
                await self.sql.record_response(entry.record)
        except HistoryRecordError as error:
            # The database refuses this record for its data: replaying it again would fail forever.
            log.error(
                "spooled record refused by the database; skipped", extra={"kind": entry.kind, "error": str(error)}
            )

    # --- reads -------------------------------------------------------------------------------------

    async def decision_for_request(self, request_id: str) -> DecisionRecord | None:
        if (spooled := self._requests.get(request_id)) is not None:
            return spooled
        return await self._read(lambda: self.sql.decision_for_request(request_id))

    async def latest_contact(
        self, customer_id: str, offer_id: str, at_or_before: float | None = None
    ) -> ContactRecord | None:
        return await self._read(lambda: self.sql.latest_contact(customer_id, offer_id, at_or_before))

    async def find_contact(self, decision_id: str, offer_id: str) -> ContactRecord | None:
        return await self._read(lambda: self.sql.find_contact(decision_id, offer_id))

    async def summary(self, customer_id: str, since: float) -> HistorySummary:
        return await self._read(lambda: self.sql.summary(customer_id, since))

    async def entries(self, customer_id: str, limit: int = 100) -> list[HistoryEntry]:
        return await self._read(lambda: self.sql.entries(customer_id, limit))

    async def _read(self, query: Callable[[], Awaitable[T]]) -> T:
        try:
            return await query()
        except READ_FAILURES as error:
            raise StoreUnavailable("history", type(error).__name__) from error

    async def ping(self) -> bool:
        """True when the database answers, or when the spool can still take writes (decisions go on)."""
        if await self.sql.ping():
            return True
        return self._spool is not None and self._spool.depth[1] < self.max_bytes

    @property
    def depth(self) -> tuple[int, int, float]:
        """(records, bytes, age in seconds of the oldest) held in the spool: the metrics' source."""
        if self._spool is None:
            return 0, 0, 0.0
        records, size, oldest = self._spool.depth
        return records, size, 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    def __getattr__(self, name: str) -> Any:  # SqlHistory extras (engine, commits, durability, summaries)
        return getattr(self.sql, name)


__all__ = ["SpoolFull", "SpooledHistory"]
