"""`StreamHistory`: the contact history in write-behind mode, acknowledged once appended to a Redis Stream.

A write is one atomic Lua call that appends an entry (`kind` + the orjson record) to the stream;
concurrent writes share one pipeline (group append, on the same `GroupCommitWriter` as SQL's group commit).
A `history.drain.Drainer` later moves the entries into SQL through `SqlHistory`, whose inserts are
idempotent. Reads go to SQL and may lag by the drain delay. A write is as durable as Redis persistence
makes it: run Redis with `appendonly yes` (`appendfsync always` to survive a power loss; `everysec` may
lose the last second).

Two small idempotency markers, in the stream's Cluster slot (hash tag `{<stream>}`):
- `{<stream>}:q:<request_id>` -> decision id, so that `find_decision` sees a retried request before the
  drainer has stored the first one;
- `{<stream>}:r:<response_id>`, so that a duplicate response is refused (False) even before the first
  one is drained. Both expire after `marker_ttl_seconds`; beyond that SQL has the row and answers.

>>> history = StreamHistory(Redis(), SqlHistory(url), stream="nbo:history")   # doctest: +SKIP
>>> await history.start(); await history.record_decision(record)              # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from decisioning.records import ContactRecord, DecisionRecord, HistoryEntry, ResponseRecord
from decisioning.summary import HistorySummary
from decisioning.types import Direction, Outcome
from history.batch import CONTACTS, DECISION, RESPONSE
from history.rows import JSON_OPTIONS, json_default
from history.sql import SqlHistory
from history.tables import contacts, responses
from history.writer import GroupCommitWriter, HistoryWriteError, Job

log = logging.getLogger(__name__)

KIND, DATA = b"kind", b"data"  # the two fields of a stream entry
CONTACTS_PER_ENTRY = 1_000  # an outbound list is split so that one drain batch stays bounded
_SQL_CHUNK = 500  # ids per IN (...) when looking for contacts already stored

# KEYS[1] the stream, KEYS[2] an optional idempotency marker.
# ARGV: maxlen (0: unbounded), marker value, marker TTL (s), on_marker ("refuse" or "keep"), kind, payload...
# Appends one entry per payload, all or none; returns the last entry id, or nil when a marker refused it.
# XADD comes before SET: Redis refuses a script for lack of memory only at its first write, so an entry
# refused for memory never leaves a marker behind that would refuse the caller's retry.
_APPEND = """
local maxlen = tonumber(ARGV[1])
if maxlen > 0 and redis.call('XLEN', KEYS[1]) + #ARGV - 5 > maxlen then
  return redis.error_reply('NBOFULL history stream ' .. KEYS[1] .. ' is full: the drainer is behind')
end
if KEYS[2] and ARGV[4] == 'refuse' and redis.call('EXISTS', KEYS[2]) == 1 then return false end
local id
for i = 6, #ARGV do id = redis.call('XADD', KEYS[1], '*', 'kind', ARGV[5], 'data', ARGV[i]) end
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3]) end
return id
"""


class StreamFullError(HistoryWriteError):
    """The stream holds `maxlen` undrained entries: the write is refused rather than trimmed away."""


# --- the entry codec ----------------------------------------------------------------------------------


def encode_record(record: DecisionRecord | ResponseRecord | Sequence[ContactRecord]) -> bytes:
    """A record (or a list of contacts) as the orjson payload of a stream entry.

    Every field is kept, by name; read-only mappings and numpy scalars are written as plain JSON, as
    `SqlHistory` writes them.
    """
    return orjson.dumps(record, default=json_default, option=JSON_OPTIONS)


def decode_entry(fields: dict[bytes, bytes]) -> tuple[str, Any]:
    """(kind, record) of a stream entry: a `DecisionRecord`, a list of `ContactRecord` or a `ResponseRecord`.

    Raises ValueError (or KeyError, TypeError) for an entry this code cannot read.

    >>> decode_entry({KIND: b"contacts", DATA: b"[]"})
    ('contacts', [])
    """
    kind, data = fields[KIND].decode(), orjson.loads(fields[DATA])
    if kind == DECISION:
        return kind, decision_from(data)
    if kind == CONTACTS:
        return kind, [contact_from(c) for c in data]
    if kind == RESPONSE:
        return kind, ResponseRecord(**{**data, "outcome": Outcome(data["outcome"])})
    raise ValueError(f"unknown history entry kind {kind!r}")


def contact_from(data: dict[str, Any]) -> ContactRecord:
    return ContactRecord(**{**data, "direction": Direction(data["direction"]), "outcome": Outcome(data["outcome"])})


def decision_from(data: dict[str, Any]) -> DecisionRecord:
    # `context` stays the dict the engine builds; `candidates` is a tuple of dicts, as in the record.
    contacts_ = tuple(contact_from(c) for c in data["contacts"])
    return DecisionRecord(**{**data, "contacts": contacts_, "candidates": tuple(data["candidates"])})


# --- the adapter --------------------------------------------------------------------------------------


class StreamHistory:
    """The `ContactHistory` port in write-behind mode: writes to a Redis Stream, reads from SQL.

    - `record_decision` returns once the entry is in Redis (drained into SQL later);
    - `record_contacts` returns how many rows it accepted: distinct (contact_id, offer_id) of the call not
      already in SQL (one that is still in the stream, undrained, is accepted and skipped at drain);
    - `record_response` is False for a `response_id` seen before: a marker in Redis (checked and set in
      the same script as the append) catches duplicates not yet drained, a look-up in SQL those older
      than the marker;
    - `maxlen` bounds the undrained entries: beyond it writes fail (`StreamFullError`) instead of
      trimming, since a trimmed entry would be an acknowledged decision lost.

    The Redis client must use `decode_responses=False` and belongs to the caller (`close` leaves it
    open); `close` closes the `SqlHistory`.
    """

    def __init__(
        self,
        client: Redis,
        sql: SqlHistory,
        *,
        stream: str = "nbo:history",
        maxlen: int | None = None,
        marker_ttl_seconds: int = 86_400,
        batch_max: int = 500,
    ) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("StreamHistory needs a client with decode_responses=False")
        self.client = client
        self.sql = sql
        self.stream = stream
        self.maxlen = maxlen or 0
        self.marker_ttl = int(marker_ttl_seconds)
        self._markers = marker_prefix(stream)
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
        decision holds its `request_id` already: the first attempt of a request wins, as in sync mode."""
        marker = None
        if decision.request_id is not None:
            marker = (self._request_key(decision.request_id), decision.decision_id.encode(), "refuse")
        return await self._write(DECISION, [_payload(decision)], marker) is not None

    async def record_contacts(self, contacts_: Sequence[ContactRecord]) -> int:
        """Append outbound sends not already stored; returns how many rows were accepted."""
        fresh = list({(c.contact_id, c.offer_id): c for c in contacts_}.values())
        stored = await self._stored_contacts(fresh)
        fresh = [c for c in fresh if (c.contact_id, c.offer_id) not in stored]
        if fresh:
            chunks = [fresh[i : i + CONTACTS_PER_ENTRY] for i in range(0, len(fresh), CONTACTS_PER_ENTRY)]
            await self._write(CONTACTS, [_payload(chunk) for chunk in chunks])
        return len(fresh)

    async def record_response(self, response: ResponseRecord) -> bool:
        """Append the response; False (and nothing appended) when its `response_id` was seen before."""
        if await self._response_stored(response.response_id):
            return False
        marker = (self._response_key(response.response_id), b"1", "refuse")
        return await self._write(RESPONSE, [_payload(response)], marker) is not None

    async def _write(self, kind: str, payloads: list[bytes], marker: tuple[str, bytes, str] | None = None) -> Any:
        keys = [self.stream] if marker is None else [self.stream, marker[0]]
        value, on_marker = (b"", "keep") if marker is None else marker[1:]
        result = await self._appender.submit(
            kind, (keys, [self.maxlen, value, self.marker_ttl, on_marker, kind, *payloads])
        )
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
                pipe.evalsha(self._sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)

    def _request_key(self, request_id: str) -> str:
        return f"{self._markers}:q:{request_id}"

    def _response_key(self, response_id: str) -> str:
        return f"{self._markers}:r:{response_id}"

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

    # --- reads, from SQL (they may lag behind the writes by the drain delay) ----------------------------

    async def find_decision(self, request_id: str) -> str | None:
        """The decision id of a request: from its Redis marker (not yet drained), else from SQL."""
        try:
            found = await self.client.get(self._request_key(request_id))
        except (RedisError, OSError) as error:
            log.warning("request marker look-up failed: %r", error)
            found = None
        return found.decode() if found is not None else await self.sql.find_decision(request_id)

    async def latest_contact(self, customer_id: str, offer_id: str) -> ContactRecord | None:
        return await self.sql.latest_contact(customer_id, offer_id)

    async def find_contact(self, decision_id: str, offer_id: str) -> ContactRecord | None:
        return await self.sql.find_contact(decision_id, offer_id)

    async def summary(self, customer_id: str, since: float) -> HistorySummary:
        """From SQL: decisions still in the stream are not in it yet."""
        return await self.sql.summary(customer_id, since)

    async def entries(self, customer_id: str, limit: int = 100) -> list[HistoryEntry]:
        return await self.sql.entries(customer_id, limit)

    async def ping(self) -> bool:
        """True when both Redis (writes) and SQL (reads) answer; never raises."""
        try:
            redis_up = bool(await self.client.ping())
        except (RedisError, OSError):
            return False
        return redis_up and await self.sql.ping()


def marker_prefix(stream: str) -> str:
    """A key prefix in the same Redis Cluster slot as `stream`: its hash tag, or the stream name as one.

    >>> marker_prefix("nbo:history"), marker_prefix("{nbo}:history")
    ('{nbo:history}', '{nbo}:history')
    """
    opening = stream.find("{")
    closing = stream.find("}", opening + 1)
    has_tag = opening >= 0 and closing > opening + 1
    return stream if has_tag else f"{{{stream}}}"


def _payload(record: Any) -> bytes:
    try:
        return encode_record(record)
    except TypeError as error:  # orjson refuses the value (an integer beyond 64 bits, an unknown type)
        raise HistoryWriteError(f"{type(record).__name__} not recorded: {error}") from error


def _noscript(result: Any) -> bool:
    return isinstance(result, NoScriptError)
