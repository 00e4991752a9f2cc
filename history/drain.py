"""`Drainer`: moves the write-behind stream's entries into SQL, then acknowledges and deletes them.

One consumer group (`nbo-drain`) reads the stream; each drainer process is one consumer. A batch is read
(XREADGROUP), stored through `SqlHistory` (its group commit puts the batch in one or a few transactions),
then acknowledged and deleted (XACK + XDEL in one MULTI). SQL inserts are idempotent (decisions by id and
request id, contacts by (contact_id, offer_id), responses by id), so an entry delivered twice, because a
drainer stored it and died before XACK, is not stored twice.

Where entries wait:
- read but not acknowledged (the drainer died, or SQL failed): in the group's pending list. A drainer
  re-reads its own pending entries first after a failure, and takes over other consumers' entries idle
  longer than `claim_idle_ms` (XAUTOCLAIM), at start and every `claim_idle_ms / 2` after.
- an entry SQL refuses for its data (a violated constraint, a value that cannot be encoded:
  `HistoryRecordError`) or that cannot be decoded goes to the dead-letter stream `<stream>:dead` with the
  reason, and is acknowledged: retrying cannot fix it.
- anything else (SQL or Redis unreachable) is retried, with a growing pause, until it is stored. The
  retry stores the pending entries one by one, so that a single entry that fails for another reason
  does not hold the others back; one that has failed alone `MAX_STRIKES` times while SQL answers a ping
  is dead-lettered too. `requeue_dead` puts dead-lettered entries back once the cause is fixed.

Entries are deleted once acknowledged, so XLEN of the stream is the backlog; the stream belongs to the
drain group (another group reading it would miss deleted entries).

>>> drainer = Drainer(redis_client(redis_url), sql, stream="nbo:history")    # doctest: +SKIP
>>> await drainer.run(stop_event)                             # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from features.redis_client import RedisClient, redis_client
from history.batch import CONTACTS, DECISION, RESPONSE
from history.codec import DATA, KIND, decode_entry
from history.pending import PendingIndex
from history.sql import SqlHistory
from history.writer import HistoryRecordError

log = logging.getLogger(__name__)

MAX_PAUSE = 5.0  # seconds between retries while SQL or Redis is down
MAX_STRIKES = 3  # failures of an entry stored alone, with SQL up, before it is dead-lettered
Entry = tuple[bytes, dict[bytes, bytes]]  # (stream id, fields) as redis-py returns it

# KEYS[1] the stream, KEYS[2..] pending index hashes; ARGV[1] the group, ARGV[2] n, ARGV[3 .. 2+n] entry ids,
# then for each index hash: a count, then that many fields. XACK + XDEL + HDEL atomically (what a MULTI
# did; redis-py's asyncio cluster client runs each command of a MULTI on a thread of its own, blocking the
# event loop), in chunks that stay under Lua's limit on unpacked arguments.
_ACK = """
local function chunks(first, last, run)
  for i = first, last, 1000 do run(i, math.min(i + 999, last)) end
end
local n = tonumber(ARGV[2])
chunks(3, 2 + n, function(i, j)
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, j))
  redis.call('XDEL', KEYS[1], unpack(ARGV, i, j))
end)
local at = 3 + n
for k = 2, #KEYS do
  local count = tonumber(ARGV[at])
  chunks(at + 1, at + count, function(i, j) redis.call('HDEL', KEYS[k], unpack(ARGV, i, j)) end)
  at = at + count + 1
end
return n
"""


@dataclass(slots=True)
class _Readable:
    entry_id: bytes
    fields: dict[bytes, bytes]
    kind: str
    record: Any


@dataclass(slots=True)
class _Outcome:
    """What became of one batch: ids stored, entries dead-lettered (with why), errors to retry."""

    done: list[bytes] = field(default_factory=list)
    dead: list[tuple[bytes, dict[bytes, bytes], str]] = field(default_factory=list)
    failed: list[BaseException] = field(default_factory=list)
    # (kind, record) of the entries done or dead, whose pending index entries go with the acknowledgement
    settled: list[tuple[str, Any]] = field(default_factory=list)

    def merge(self, other: _Outcome) -> None:
        self.done += other.done
        self.dead += other.dead
        self.failed += other.failed
        self.settled += other.settled


class Drainer:
    """Drains one history stream into SQL as a member of a consumer group. See the module doc.

    `stored` counts entries written to SQL (or found there already), `dead_lettered` those set aside.
    """

    def __init__(
        self,
        client: RedisClient,
        sql: SqlHistory,
        *,
        stream: str = "nbo:history",
        group: str = "nbo-drain",
        consumer: str | None = None,
        batch: int = 500,
        block_ms: int = 100,
        claim_idle_ms: int = 30_000,
        prune_idle_ms: int = 86_400_000,
    ) -> None:
        self.client = client
        self.sql = sql
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.prune_idle_ms = prune_idle_ms
        self.dead_letter = f"{stream}:dead"
        self.index = PendingIndex(stream)
        self.stored = 0
        self.dead_lettered = 0
        self._started = False
        self._own_pending = True  # re-read our own unacknowledged entries first (at start, after a failure)
        self._claim_cursor = b"0-0"
        self._claim_due = 0.0
        self._strikes: dict[bytes, int] = {}
        self._ack_script = client.register_script(_ACK)

    async def start(self) -> None:
        """Create the group if missing (from the stream's first entry: nothing written before is skipped),
        and forget consumers long gone that hold no entries (a consumer name is per process)."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        await self._prune_consumers()
        self._started = True

    async def _prune_consumers(self) -> None:
        for consumer in await self.client.xinfo_consumers(self.stream, self.group):
            name = consumer["name"].decode()
            if consumer["pending"] == 0 and consumer["idle"] > self.prune_idle_ms and name != self.consumer:
                await self.client.xgroup_delconsumer(self.stream, self.group, name)

    async def backlog(self) -> int:
        """Entries not yet acknowledged (acknowledged ones are deleted): the drain lag, in entries."""
        return await self.client.xlen(self.stream)

    # --- one batch ----------------------------------------------------------------------------------

    async def drain_once(self) -> int:
        """Read one batch, store it in SQL, acknowledge it; returns the entries stored.

        Raises the first error that left entries unstored (they stay pending and are read again first);
        the rest of the batch is acknowledged all the same.
        """
        if not self._started:
            await self.start()
        entries, retrying = await self._next_entries()
        if not entries:
            return 0
        outcome = await (self._store_alone(entries) if retrying else self._store(entries))
        await self._bury(outcome.dead)
        await self._ack([*outcome.done, *(entry_id for entry_id, _, _ in outcome.dead)], outcome.settled)
        self.stored += len(outcome.done)
        self.dead_lettered += len(outcome.dead)
        if outcome.failed:
            self._own_pending = True
            raise outcome.failed[0]
        return len(outcome.done)

    async def _next_entries(self) -> tuple[list[Entry], bool]:
        """Our own pending entries first (a retry), then others' entries left idle too long, then new ones."""
        if self._own_pending:
            entries = await self._read("0", block=None)
            if entries:
                return entries, True
            self._own_pending = False
        if time.monotonic() >= self._claim_due:
            entries = await self._claim()
            if entries:
                return entries, False
        return await self._read(">", block=self.block_ms or None), False

    async def _read(self, start_id: str, block: int | None) -> list[Entry]:
        try:
            reply = await self.client.xreadgroup(
                self.group, self.consumer, {self.stream: start_id}, count=self.batch, block=block
            )
        except ResponseError as error:
            await self._restart_if_gone(error)
            return []
        return reply[0][1] if reply else []

    async def _claim(self) -> list[Entry]:
        """Take over entries another consumer read and left unacknowledged for `claim_idle_ms`."""
        try:
            cursor, entries, *_ = await self.client.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, self._claim_cursor, count=self.batch
            )
        except ResponseError as error:
            await self._restart_if_gone(error)
            return []
        self._claim_cursor = cursor
        if cursor == b"0-0":  # the whole pending list was scanned
            self._claim_due = time.monotonic() + self.claim_idle_ms / 2000
        return entries

    async def _restart_if_gone(self, error: ResponseError) -> None:
        """Create the group again if the stream was deleted (or Redis lost it); re-raise anything else."""
        if "NOGROUP" not in str(error):
            raise error
        self._claim_cursor = b"0-0"
        await self.start()

    async def _store(self, entries: Sequence[Entry]) -> _Outcome:
        outcome = _Outcome()
        readable = [r for r in (self._decode(e, outcome) for e in entries) if r is not None]
        # Decisions and sends before responses: a response without a group looks up its contact's.
        await self._store_wave([r for r in readable if r.kind != RESPONSE], outcome)
        await self._store_wave([r for r in readable if r.kind == RESPONSE], outcome)
        return outcome

    async def _store_alone(self, entries: Sequence[Entry]) -> _Outcome:
        """Store entries one at a time (a retry), so that one that keeps failing is found and set aside."""
        outcome = _Outcome()
        for entry in entries:
            alone = await self._store([entry])
            if alone.failed and not await self.sql.ping():  # an outage, not this entry: the rest can wait
                outcome.failed += alone.failed
                break
            outcome.merge(self._strike(entry, alone) if alone.failed else alone)
            if not alone.failed:
                self._strikes.pop(entry[0], None)
        return outcome

    def _strike(self, entry: Entry, alone: _Outcome) -> _Outcome:
        """Count a failure of an entry stored alone while SQL is up; dead-letter it at `MAX_STRIKES`."""
        strikes = self._strikes[entry[0]] = self._strikes.get(entry[0], 0) + 1
        if strikes < MAX_STRIKES:
            return alone
        self._strikes.pop(entry[0])
        reason = f"failed {strikes} times alone, SQL up: {alone.failed[0]!r}"
        return _Outcome(dead=[(*entry, reason)], settled=[decode_entry(entry[1])])  # it decoded before

    def _decode(self, entry: Entry, outcome: _Outcome) -> _Readable | None:
        entry_id, fields = entry
        if not fields:  # deleted from the stream while pending: nothing left to store
            outcome.done.append(entry_id)
            return None
        try:
            return _Readable(entry_id, fields, *decode_entry(fields))
        except (ValueError, KeyError, TypeError) as error:
            outcome.dead.append((entry_id, fields, f"unreadable: {error!r}"))
            return None

    async def _store_wave(self, wave: Sequence[_Readable], outcome: _Outcome) -> None:
        # All at once: SqlHistory's group commit gathers them into shared transactions.
        results = await asyncio.gather(*(self._write(r.kind, r.record) for r in wave), return_exceptions=True)
        for readable, result in zip(wave, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, HistoryRecordError):
                outcome.failed.append(result)  # still pending: it stays in the pending index too
                continue
            if isinstance(result, HistoryRecordError):  # refused for its data: retrying cannot fix it
                outcome.dead.append((readable.entry_id, readable.fields, f"refused by SQL: {result.__cause__!r}"))
            else:
                outcome.done.append(readable.entry_id)
            outcome.settled.append((readable.kind, readable.record))

    async def _write(self, kind: str, record: Any) -> Any:
        if kind == DECISION:
            return await self.sql.record_decision(record)
        if kind == CONTACTS:
            return await self.sql.record_contacts(record)
        return await self.sql.record_response(record)

    async def _bury(self, dead: Sequence[tuple[bytes, dict[bytes, bytes], str]]) -> None:
        """Copy entries that can never be stored to the dead-letter stream, with the reason."""
        if not dead:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for entry_id, fields, reason in dead:
                log.error("history entry %s dead-lettered (%s): %s", entry_id, fields.get(KIND), reason)
                pipe.xadd(self.dead_letter, {**fields, b"entry": entry_id, b"error": reason.encode()})
            await pipe.execute()

    async def _ack(self, ids: Sequence[bytes], settled: Sequence[tuple[str, Any]]) -> None:
        """Acknowledge and delete the entries, and take them out of the pending index, in one script: after
        their SQL commit, so that a reader asking the index first, then SQL, finds each of them."""
        if not ids:
            return
        cleanup = self.index.cleanup(settled)
        args: list[Any] = [self.group, len(ids), *ids]
        for fields in cleanup.values():
            args += [len(fields), *fields]
        await self._ack_script(keys=[self.stream, *cleanup], args=args)

    # --- the loop -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until `stop` is set. A batch in hand is stored and acknowledged before stopping; stopping
        takes at most `block_ms` plus one batch. Failures are logged and retried after a growing pause."""
        pause = 0.0
        while not stop.is_set():
            try:
                await self.drain_once()
                pause = 0.0
            except Exception as error:  # SQL or Redis down: the entries wait in the stream
                pause = min(max(2 * pause, 0.1), MAX_PAUSE)
                log.warning("history drain failed, retrying in %.1fs: %r", pause, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)


async def requeue_dead(client: RedisClient, stream: str = "nbo:history", *, count: int = 1_000) -> int:
    """Move up to `count` dead-lettered entries back to `stream` (once their cause is fixed); returns how many.

    Each is re-appended before it is removed from `<stream>:dead`, so a crash in between leaves a copy in
    both, which the idempotent drain stores once.
    """
    moved = 0
    for entry_id, fields in await client.xrange(f"{stream}:dead", count=count):
        if KIND in fields and DATA in fields:  # an entry without them can never be stored: it stays
            await client.xadd(stream, {KIND: fields[KIND], DATA: fields[DATA]})
            await client.xdel(f"{stream}:dead", entry_id)
            moved += 1
    return moved


async def main(database_url: str, redis_url: str, stream: str = "nbo:history", *, batch: int = 500) -> None:
    """Drain `stream` into the history at `database_url` until SIGINT or SIGTERM (the `nbo history drain`
    command). The database must be migrated already (`nbo db upgrade`)."""
    client = redis_client(redis_url)
    sql = SqlHistory(database_url, batch_max=batch)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sql.start()
        drainer = Drainer(client, sql, stream=stream, batch=batch)
        log.info("draining %s as %s/%s", stream, drainer.group, drainer.consumer)
        await drainer.run(stop)
        log.info("drain stopped: %d entries stored, %d dead-lettered", drainer.stored, drainer.dead_lettered)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sql.close()
        await client.aclose()
