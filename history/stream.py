"""`StreamHistory`: the contact history in write-behind mode, acknowledged once appended to a Redis Stream.

A write is one atomic Lua call that appends an entry (`kind` + the orjson record, see `history.codec`) to
the stream and indexes it for the reads (`history.pending`); concurrent writes share one pipeline (group
append, on the same `GroupCommitWriter` as SQL's group commit). A `history.drain.Drainer` later moves the
entries into SQL through `SqlHistory`, whose inserts are idempotent, and takes them out of the index.
Reads merge the pending index with SQL, so a decision is visible the moment its write returns. A write is
as durable as Redis persistence makes it: run Redis with `appendonly yes` (`appendfsync always` to
survive a power loss; `everysec` may lose the last second).

Two small idempotency markers, in the stream's Cluster slot (hash tag `{<stream>}`):
- `{<stream>}:q:<request_id>` -> decision id, so that a retried request is refused (and its decision
  found) before the drainer has stored the first one;
- `{<stream>}:r:<response_id>`, so that a duplicate response is refused (False) even before the first
  one is drained. Both expire after `marker_ttl_seconds`; beyond that SQL has the row and answers.

>>> history = StreamHistory(redis_client(redis_url), SqlHistory(url), stream="nbo:history")   # doctest: +SKIP
>>> await history.start(); await history.record_decision(record)              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from redis.exceptions import NoScriptError, RedisError, ResponseError

from decisioning.records import ContactRecord, DecisionRecord, HistoryEntry, ResponseRecord
from decisioning.summary import MAX_EVENTS, HistorySummary
from features.redis_client import RedisClient, decodes_responses, queue_evalsha
from history import pending as index
from history.batch import CONTACTS, DECISION, RESPONSE
from history.codec import DATA, KIND, decision_from, decode_entry, encode_record
from history.pending import IndexItem, PendingIndex, marker_prefix
from history.sql import SqlHistory
from history.tables import contacts, responses
from history.writer import GroupCommitWriter, HistoryRecordError, HistoryWriteError, Job

__all__ = ["DATA", "KIND", "StreamFullError", "StreamHistory", "decode_entry", "encode_record", "marker_prefix"]

log = logging.getLogger(__name__)

CONTACTS_PER_ENTRY = 1_000  # an outbound list is split so that one drain batch stays bounded
_SQL_CHUNK = 500  # ids per IN (...) when looking for contacts already stored

# KEYS[1] the stream, KEYS[2] the idempotency marker (untouched when ARGV[2] is ''), KEYS[3..] index hashes.
# ARGV[1] maxlen (0: unbounded), [2] marker value, [3] TTL (s) of the marker and the index hashes, [4] kind,
# [5] n, the number of entries, [6 .. 5+n] their payloads, then index items of four: key number (in KEYS),
# field, value, mode (see history.pending: 'gate' refuses the whole write when its field exists, and takes
# the first entry's payload as its value; 'first' sets if absent and reports whether it was; 'then' sets
# only if the 'first' before it was absent; 'set' sets).
# Appends all entries or none; returns false when a marker or a gate refused the write, else
# {last entry id, {0 or 1 for each 'first' item}}.
# XADD comes before any SET: Redis refuses a script for lack of memory only at its first write, so an
# entry refused for memory never leaves a marker behind that would refuse the caller's retry.
_APPEND = """
local maxlen, ttl, n = tonumber(ARGV[1]), ARGV[3], tonumber(ARGV[5])
if maxlen > 0 and redis.call('XLEN', KEYS[1]) + n > maxlen then
  return redis.error_reply('NBOFULL history stream ' .. KEYS[1] .. ' is full: the drainer is behind')
end
if ARGV[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then return false end
local items = 6 + n
for i = items, #ARGV, 4 do
  if ARGV[i + 3] == 'gate' and redis.call('HEXISTS', KEYS[tonumber(ARGV[i])], ARGV[i + 1]) == 1 then
    return false
  end
end
local id
for i = 6, 5 + n do id = redis.call('XADD', KEYS[1], '*', 'kind', ARGV[4], 'data', ARGV[i]) end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ttl) end
local firsts, added = {}, 1
for i = items, #ARGV, 4 do
  local key, field, value, mode = KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if mode == 'first' then
    added = redis.call('HSETNX', key, field, value)
    firsts[#firsts + 1] = added
  elseif mode == 'gate' then
    redis.call('HSET', key, field, ARGV[6])
  elseif mode ~= 'then' or added == 1 then
    redis.call('HSET', key, field, value)
  end
end
for k = 3, #KEYS do redis.call('EXPIRE', KEYS[k], ttl) end
return {id, firsts}
"""


class StreamFullError(HistoryWriteError):
    """The stream holds `maxlen` undrained entries: the write is refused rather than trimmed away."""


class StreamHistory:
    """The `ContactHistory` port in write-behind mode: writes to a Redis Stream, reads from it and SQL.

    - `record_decision` returns once the entry is in Redis (drained into SQL later); False when its
      request id (or, still undrained, its decision id) was appended before;
    - `record_contacts` returns the contacts it accepted: the first of each (contact_id, offer_id) of the
      call, neither stored in SQL nor pending in the stream;
    - `record_response` is False for a `response_id` seen before: a marker in Redis (checked and set in
      the same script as the append) catches duplicates not yet drained, a look-up in SQL those older
      than the marker;
    - reads (`decision_for_request`, `find_contact`, `latest_contact`, `summary`, `entries`) ask the
      pending index first, then SQL, and merge (see `history.pending`); a Redis error is raised, never
      answered from SQL alone (a summary missing undrained presentations would under-count caps);
    - `maxlen` bounds the undrained entries: beyond it writes fail (`StreamFullError`) instead of
      trimming, since a trimmed entry would be an acknowledged decision lost.

    The Redis client must use `decode_responses=False` and belongs to the caller (`close` leaves it
    open); `close` closes the `SqlHistory`.
    """

    def __init__(
        self,
        client: RedisClient,
        sql: SqlHistory,
        *,
        stream: str = "nbo:history",
        maxlen: int | None = None,
        marker_ttl_seconds: int = 86_400,
        batch_max: int = 500,
    ) -> None:
        if decodes_responses(client):
            raise ValueError("StreamHistory needs a client with decode_responses=False")
        self.client = client
        self.sql = sql
        self.stream = stream
        self.maxlen = maxlen or 0
        self.marker_ttl = int(marker_ttl_seconds)
        self.index = PendingIndex(stream)
        self._sha = client.register_script(_APPEND).sha
        # Group append: concurrent writes share one pipeline (one round trip, one pooled connection),
        # without waiting for company (batch_wait 0): a lone write goes out at once.
        self._appender = GroupCommitWriter(self._append_batch, batch_max=batch_max, batch_wait=0.0)

    async def start(self) -> None:
        """Start the appender and the SQL side (reads, look-ups for duplicates). Idempotent."""
        await self.sql.start()
        self._appender.start()
        await self._warn_if_volatile()

    async def _warn_if_volatile(self) -> None:
        """Log a Redis configuration that can lose acknowledged writes (best effort: managed Redis
        services often refuse CONFIG)."""
        try:
            config = {**await self.client.config_get("appendonly"), **await self.client.config_get("maxmemory-policy")}
        except (RedisError, OSError):
            return
        if config.get("appendonly") != "yes":
            log.warning("write-behind history on a Redis without appendonly: a restart loses acknowledged decisions")
        if str(config.get("maxmemory-policy", "")).startswith("allkeys"):
            log.warning("write-behind history on a Redis with an allkeys eviction policy: it may evict the stream")

    async def close(self) -> None:
        """Append what is queued, then close the SQL side (the Redis client is the caller's)."""
        await self._appender.close()
        await self.sql.close()

    @property
    def round_trips(self) -> int:
        """Pipelines sent to Redis since `start` (fewer than writes: concurrent writes share one)."""
        return self._appender.commits

    # --- writes -------------------------------------------------------------------------------------

    async def record_decision(self, decision: DecisionRecord) -> bool:
        """Append the decision; returns once Redis has it. False (and nothing appended) when another
        decision holds its `request_id` already (the first attempt of a request wins, as in sync mode), or
        when a decision with its id is still in the stream."""
        marker = None
        if decision.request_id is not None:
            marker = (self.index.request(decision.request_id), decision.decision_id.encode())
        payload = _payload(DECISION, decision)
        return await self._write(DECISION, [payload], self.index.decision_items(decision), marker) is not None

    async def record_contacts(self, contacts_: Sequence[ContactRecord]) -> list[ContactRecord]:
        """Append outbound contacts not already stored nor pending; returns those accepted, in the order
        given (the first of each (contact_id, offer_id) of the call)."""
        fresh = _first_of_each(contacts_)
        stored = await self._stored_contacts(fresh)
        fresh = [c for c in fresh if (c.contact_id, c.offer_id) not in stored]
        if not fresh:
            return []
        chunks = [fresh[i : i + CONTACTS_PER_ENTRY] for i in range(0, len(fresh), CONTACTS_PER_ENTRY)]
        payloads = [_payload(CONTACTS, chunk) for chunk in chunks]
        _, added = await self._write(CONTACTS, payloads, self.index.contact_items(fresh))
        return [c for c, new in zip(fresh, added, strict=True) if new]

    async def record_response(self, response: ResponseRecord) -> bool:
        """Append the response; False (and nothing appended) when its `response_id` was seen before.

        A response without a group takes the group of the contact it answers now, pending or stored, so
        that the entry carries it (SQL would look it up at drain time otherwise).
        """
        if await self._response_stored(response.response_id):
            return False
        if response.group is None:
            response = dataclasses.replace(response, group=await self._group_of(response))
        marker = (self.index.response(response.response_id), b"1")
        items = self.index.response_items(response)
        return await self._write(RESPONSE, [_payload(RESPONSE, response)], items, marker) is not None

    async def _group_of(self, response: ResponseRecord) -> str | None:
        contact = None
        if response.decision_id is not None:
            contact = await self.find_contact(response.decision_id, response.offer_id)
        if contact is None:
            contact = await self.latest_contact(response.customer_id, response.offer_id, response.at)
        return contact.group if contact else None

    async def _write(
        self, kind: str, payloads: list[bytes], items: Sequence[IndexItem], marker: tuple[str, bytes] | None = None
    ) -> Any:
        keys = [self.stream, marker[0] if marker else self.stream]
        numbers: dict[str, int] = {}
        for item in items:
            numbers.setdefault(item.key, len(keys) + len(numbers) + 1)
        keys += list(numbers)
        args: list[Any] = [self.maxlen, marker[1] if marker else b"", self.marker_ttl, kind, len(payloads), *payloads]
        for item in items:
            args += [numbers[item.key], item.field, item.value, item.mode]
        result = await self._appender.submit(kind, (keys, args))
        if isinstance(result, ResponseError):  # this write's own error, in a pipeline that went through
            error = StreamFullError if str(result).startswith("NBOFULL") else HistoryWriteError
            raise error(f"{kind} not recorded: {result}") from result
        return result

    async def _append_batch(self, jobs: Sequence[Job]) -> list[Any]:
        """Run a batch of writes as one pipeline; a connection error fails them all (the writer says so)."""
        results = await self._evalsha(jobs)
        redo = [i for i, result in enumerate(results) if _noscript(result)]
        if redo:  # Redis restarted or its script cache was flushed: load it, run those writes again
            await self.client.script_load(_APPEND)
            for i, result in zip(redo, await self._evalsha([jobs[i] for i in redo]), strict=True):
                results[i] = result
        return results

    async def _evalsha(self, jobs: Sequence[Job]) -> list[Any]:
        # EVALSHA by hand: a pipeline given Script objects asks SCRIPT EXISTS first, a second round trip.
        async with self.client.pipeline(transaction=False) as pipe:
            for job in jobs:
                keys, args = job.payload
                queue_evalsha(pipe, self._sha, keys, args)
            return await pipe.execute(raise_on_error=False)

    # --- look-ups for duplicates, in SQL ------------------------------------------------------------

    async def _response_stored(self, response_id: str) -> bool:
        query = sa.select(responses.c.response_id).where(responses.c.response_id == response_id)
        return bool(await self._stored_keys(query))

    async def _stored_contacts(self, contacts_: Sequence[ContactRecord]) -> set[tuple[Any, ...]]:
        ids = sorted({c.contact_id for c in contacts_})
        stored: set[tuple[Any, ...]] = set()
        for start in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[start : start + _SQL_CHUNK]
            query = sa.select(contacts.c.contact_id, contacts.c.offer_id).where(contacts.c.contact_id.in_(chunk))
            stored |= await self._stored_keys(query)
        return stored

    async def _stored_keys(self, query: sa.Select[Any]) -> set[tuple[Any, ...]]:
        """The keys `query` finds; none when SQL is unreachable. Then the Redis marker alone decides: the
        rows are still deduplicated at drain, only the answer may miss an old duplicate."""
        try:
            async with self.sql.engine.connect() as conn:
                return {tuple(row) for row in await conn.execute(query)}
        except Exception as error:  # a read for an answer must not stop the write
            log.warning("history duplicate look-up failed, relying on Redis markers: %r", error)
            return set()

    # --- reads: the pending index first, then SQL (the drainer unindexes an entry after its commit) ------

    async def decision_for_request(self, request_id: str) -> DecisionRecord | None:
        """The decision of a request: still in the stream (its marker names it), else from SQL."""
        decision_id = await self.client.get(self.index.request(request_id))
        if decision_id is not None:
            found = await self.client.hget(self.index.decision(decision_id.decode()), index.DECISION_FIELD)
            if found is not None:
                return decision_from(orjson.loads(found))
        return await self.sql.decision_for_request(request_id)

    async def find_contact(self, decision_id: str, offer_id: str) -> ContactRecord | None:
        """The contact of `offer_id` in the decision (or send) `decision_id`, drained or not."""
        key = self.index.decision(decision_id)
        raw = await self.client.hmget(key, index.offer_field(offer_id), index.DECISION_FIELD)
        found = index.contact_in(raw, offer_id)
        return found if found is not None else await self.sql.find_contact(decision_id, offer_id)

    async def latest_contact(
        self, customer_id: str, offer_id: str, at_or_before: float | None = None
    ) -> ContactRecord | None:
        """The customer's newest contact of this offer (at or before `at_or_before`), drained or not."""
        waiting = [
            c
            for c in (await self._pending(customer_id)).contacts
            if c.offer_id == offer_id and (at_or_before is None or c.at <= at_or_before)
        ]
        stored = await self.sql.latest_contact(customer_id, offer_id, at_or_before)
        found = [*waiting, *([stored] if stored else [])]
        return max(found, key=lambda c: (c.at, c.contact_id)) if found else None

    async def summary(self, customer_id: str, since: float) -> HistorySummary:
        """Rebuild a customer's summary from SQL and the entries not yet drained, each counted once."""
        waiting = await self._pending(customer_id)
        contact_rows, response_rows = await self.sql.newest_rows(customer_id, MAX_EVENTS, since)
        return index.merged_summary(contact_rows, response_rows, waiting, since)

    async def entries(self, customer_id: str, limit: int = 100) -> list[HistoryEntry]:
        """The customer's history, drained or not, newest first (an undrained response has no
        `recorded_at` yet)."""
        waiting = await self._pending(customer_id)
        contact_rows, response_rows = await self.sql.newest_rows(customer_id, limit)
        return index.merged_entries(contact_rows, response_rows, waiting, limit)

    async def _pending(self, customer_id: str) -> index.Pending:
        return index.pending_of(await self.client.hgetall(self.index.customer(customer_id)))

    async def ping(self) -> bool:
        """True when both Redis (writes) and SQL (reads) answer; never raises."""
        try:
            redis_up = bool(await self.client.ping())
        except (RedisError, OSError):
            return False
        return redis_up and await self.sql.ping()


def _first_of_each(contacts_: Sequence[ContactRecord]) -> list[ContactRecord]:
    """The contacts without repeats of a (contact_id, offer_id): the first one stands, as in SQL."""
    seen: set[tuple[str, str]] = set()
    firsts = []
    for c in contacts_:
        if (c.contact_id, c.offer_id) not in seen:
            seen.add((c.contact_id, c.offer_id))
            firsts.append(c)
    return firsts


def _payload(kind: str, record: Any) -> bytes:
    """The entry's payload; `HistoryRecordError` (in the caller's task, before the append) for a record
    orjson cannot encode, naming the part that fails (never its value)."""
    try:
        return encode_record(record)
    except TypeError as error:  # too deep, an integer beyond 64 bits, an unknown type
        raise HistoryRecordError(
            f"{kind} not recorded: its {_unencodable_part(record)} cannot be stored as JSON ({error})"
        ) from error


def _unencodable_part(record: Any) -> str:
    """The first field (of a record, or of a list's records) that orjson refuses."""
    records = record if isinstance(record, list) else [record]
    for one in records:
        for f in dataclasses.fields(one):
            try:
                encode_record(getattr(one, f.name))
            except TypeError:
                return f.name
    return "record"


def _noscript(result: Any) -> bool:
    return isinstance(result, NoScriptError)
