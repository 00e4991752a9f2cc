"""Customer features and history summaries in Redis (production): one round trip per decision.

Layout, per customer, under a schema-versioned prefix (`nbo:v1`), both keys tagged `{customer_id}` so they
live in the same Redis Cluster slot and one Lua script can read or write them together:

- `nbo:v1:c:{customer_id}`, a hash:
  - `f`: the batch features, packed as one orjson array `[schema fingerprint, load time, v1, v2, ...]` in
    schema order. One field decodes in one `orjson.loads`, much cheaper than 40 fields; the fingerprint
    guards against reading a file loaded under another feature list (those values are then ignored and
    the decision reports them defaulted).
  - `e:{feature}` / `t:{feature}`: each real-time event feature and the time it was last written, as
    separate fields so that events update them atomically in place (HINCRBYFLOAT, HSET, Lua for "max").
  - `w:{feature}`: the event times of a windowed count ("count" updates), `window|t1,t2,...` oldest first,
    trimmed by the Lua script on every write (see features/updates.py): bounded, and read by the same
    HGETALL, so a decision still costs one round trip; the decision counts the times within the window.
- `nbo:v1:h:{customer_id}`, a list: the history summary, one orjson row per contact event after a `#`
  header (the header makes an empty summary distinct from a missing one). A list lets `append_events`
  push rows in a Lua script without decoding and re-encoding the summary (Lua's cjson would also round
  epoch times to 14 digits).

TTL policy:
- the customer hash expires `feature_ttl_days` (default 35) after its last batch load: a customer who
  drops out of the nightly files disappears from the cache a month later, instead of living on with ever
  staler data. Events do not extend it; a hash created by an event (customer not loaded yet) gets the
  same TTL from that first event.
- the summary expires `summary_ttl_days` (default 400, the history retention) after its last write. It is
  a cache of the contact history: when it is missing, the service rebuilds it from the history and stores
  it back.

Changing the feature list means a new `schema_version`: the old keys then simply expire.
The client must be created with `decode_responses=False` (values are orjson bytes).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from operator import attrgetter
from types import MappingProxyType
from typing import Any

import orjson

from decisioning.ports import CustomerSnapshot, FeatureUpdate, WindowedCount
from decisioning.summary import MAX_EVENTS, RETENTION_SECONDS, HistorySummary
from decisioning.types import DAY, ContactEvent, FeatureValue, Outcome
from features import redis_scripts
from features.redis_client import RedisClient, decodes_responses, evalsha_pipelined
from features.updates import MAX_COUNTED_EVENTS, check_updates

SUMMARY_HEADER = redis_scripts.SUMMARY_HEADER


def schema_fingerprint(feature_names: Sequence[str]) -> int:
    """A short, stable fingerprint of an ordered feature list.

    >>> schema_fingerprint(["age", "segment"]) == schema_fingerprint(["age", "segment"])
    True
    """
    return zlib.crc32("\x1f".join(feature_names).encode())


class RedisCustomerCache:
    """`CustomerCache` on Redis (redis-py asyncio with hiredis). See the module doc for layout and TTLs.

    >>> cache = RedisCustomerCache(redis_client(url), feature_names=["age", "segment"])   # doctest: +SKIP
    >>> snapshot = await cache.load("c-000042")                                  # doctest: +SKIP
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        feature_names: Sequence[str],
        prefix: str = "nbo",
        schema_version: int = 1,
        feature_ttl_days: float = 35.0,
        summary_ttl_days: float = RETENTION_SECONDS / DAY,
    ) -> None:
        if decodes_responses(client):
            raise ValueError("RedisCustomerCache needs a client with decode_responses=False")
        self.client = client
        self.feature_names = tuple(feature_names)
        self.prefix = f"{prefix}:v{schema_version}"
        self.feature_ttl = int(feature_ttl_days * DAY)
        self.summary_ttl = int(summary_ttl_days * DAY)
        self._fingerprint = schema_fingerprint(self.feature_names)
        self._load = client.register_script(redis_scripts.LOAD)
        self._put = client.register_script(redis_scripts.PUT_FEATURES)
        self._append = client.register_script(redis_scripts.APPEND_EVENTS)
        self._apply = client.register_script(redis_scripts.APPLY_UPDATES)
        self._store = client.register_script(redis_scripts.STORE_SUMMARY)
        self._lock_and_load = client.register_script(redis_scripts.LOCK_AND_LOAD)
        self._append_and_unlock = client.register_script(redis_scripts.APPEND_AND_UNLOCK)
        self._remove = client.register_script(redis_scripts.REMOVE_EVENTS)

    def features_key(self, customer_id: str) -> str:
        return f"{self.prefix}:c:{{{customer_id}}}"

    def summary_key(self, customer_id: str) -> str:
        return f"{self.prefix}:h:{{{customer_id}}}"

    async def load(self, customer_id: str) -> CustomerSnapshot:
        """Features, their times and the summary of one customer, in one round trip (one Lua call)."""
        flat, rows = await self._load(keys=[self.features_key(customer_id), self.summary_key(customer_id)])
        return self._snapshot(customer_id, flat, rows)

    async def lock_and_load(
        self, customer_id: str, lock_key: str, token: str, lease_ms: int
    ) -> CustomerSnapshot | None:
        """Take the customer's lock (`SET NX PX`) and, when it was free, load the customer: one round trip.
        None while another holder has the lock. `lock_key` must carry the customer's hash tag."""
        keys = [lock_key, self.features_key(customer_id), self.summary_key(customer_id)]
        answer = await self._lock_and_load(keys=keys, args=[token, lease_ms])
        return self._snapshot(customer_id, answer[1], answer[2]) if answer[0] else None

    async def append_and_unlock(
        self, customer_id: str, events: Sequence[ContactEvent], now: float, lock_key: str, token: str
    ) -> None:
        """`append_events`, then release the lock if this holder still has it: one round trip."""
        args: list[Any] = [token, *self._append_args(events, now)]
        await self._append_and_unlock(keys=[self.summary_key(customer_id), lock_key], args=args)

    async def remove_events(self, customer_id: str, events: Sequence[ContactEvent]) -> None:
        """Take these events out of the summary (a decision that was not recorded), each once."""
        if events:
            await self._remove(keys=[self.summary_key(customer_id)], args=[orjson.dumps(e.to_row()) for e in events])

    def _snapshot(self, customer_id: str, flat: list[bytes], rows: list[bytes]) -> CustomerSnapshot:
        if not flat:
            return CustomerSnapshot(customer_id, None, summary=decode_summary(rows))
        features, times, windowed = self._decode_features(flat)
        return CustomerSnapshot(customer_id, features, times, decode_summary(rows), windowed)

    def _decode_features(
        self, flat: list[bytes]
    ) -> tuple[Mapping[str, FeatureValue], Mapping[str, float], Mapping[str, WindowedCount]]:
        values: dict[str, FeatureValue] = {}
        live: dict[str, FeatureValue] = {}
        times: dict[str, float] = {}
        windowed: dict[str, WindowedCount] = {}
        pairs = iter(flat)
        for name, raw in zip(pairs, pairs, strict=True):
            if name == b"f":
                packed = orjson.loads(raw)
                if packed[0] == self._fingerprint:
                    times["*"] = packed[1]
                    values = dict(zip(self.feature_names, packed[2:], strict=True))
            elif name[:2] == b"e:":
                live[name[2:].decode()] = orjson.loads(raw)
            elif name[:2] == b"t:":
                times[name[2:].decode()] = float(raw)
            elif name[:2] == b"w:":
                windowed[name[2:].decode()] = decode_windowed(raw)
        values.update(live)  # real-time values win over a batch column of the same name
        return MappingProxyType(values), MappingProxyType(times), MappingProxyType(windowed)

    def pack(self, values: Mapping[str, FeatureValue], at: float) -> bytes:
        """The `f` field of one customer: missing features are stored as null."""
        return orjson.dumps([self._fingerprint, at, *map(values.get, self.feature_names)])

    async def put_features(self, rows: Sequence[tuple[str, Mapping[str, FeatureValue]]], at: float) -> int:
        """Replace the batch features of each row's customer (event features are kept), pipelined (on a
        cluster, redis-py splits the pipeline by node and sends the parts concurrently)."""
        calls = [([self.features_key(cid)], [self.pack(values, at), self.feature_ttl]) for cid, values in rows]
        await evalsha_pipelined(self.client, redis_scripts.PUT_FEATURES, self._put.sha, calls)
        return len(rows)

    async def apply_updates(self, customer_id: str, updates: Sequence[FeatureUpdate], at: float) -> None:
        """Apply the updates of one event atomically (one Lua call)."""
        if not updates:
            return
        check_updates(updates)
        args: list[Any] = [repr(float(at)), self.feature_ttl, MAX_COUNTED_EVENTS]
        for u in updates:
            value = repr(float(u.window)) if u.window is not None else orjson.dumps(u.value)
            args += [u.op, u.feature, value]
        await self._apply(keys=[self.features_key(customer_id)], args=args)

    async def append_events(self, customer_id: str, events: Sequence[ContactEvent], now: float) -> None:
        """Add events to the summary if the cache holds one (a missing summary stays missing)."""
        args = self._append_args(events, now)
        if len(args) > 3:
            await self._append(keys=[self.summary_key(customer_id)], args=args)

    def _append_args(self, events: Sequence[ContactEvent], now: float) -> list[Any]:
        """The append script's arguments: max events, cutoff, ttl, then the rows within the retention."""
        cutoff = now - RETENTION_SECONDS
        rows = [orjson.dumps(e.to_row()) for e in events if e.at >= cutoff]
        return [MAX_EVENTS, repr(cutoff), self.summary_ttl, *rows]

    async def store_summary(self, customer_id: str, summary: HistorySummary) -> None:
        """Replace the summary (one Lua call: readers see the old one or the new one)."""
        rows = [orjson.dumps(e.to_row()) for e in summary.events]
        await self._store(keys=[self.summary_key(customer_id)], args=[self.summary_ttl, SUMMARY_HEADER, *rows])

    async def count(self) -> int:
        """How many customers have features: a SCAN over the prefix, O(keys), for admin use only."""
        n = 0
        async for _ in self.client.scan_iter(match=f"{self.prefix}:c:*", count=1000, _type="HASH"):
            n += 1
        return n

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()


def decode_windowed(raw: bytes) -> WindowedCount:
    """A windowed count's field, `window|t1,t2,...`.

    >>> decode_windowed(b"2592000.0|1763000000.0,1763000060.5")
    WindowedCount(window=2592000.0, times=(1763000000.0, 1763000060.5))
    """
    window, _, times = raw.partition(b"|")
    return WindowedCount(float(window), tuple(float(t) for t in times.split(b",")))


_OUTCOMES = {o.value: o for o in Outcome}
_AT = attrgetter("at")


def decode_summary(rows: list[bytes]) -> HistorySummary | None:
    """A summary from its list (header first); None when the list does not exist.

    >>> decode_summary([b"#", b'[5.0,"card_gold","cards","web","presented",null]']).events[0].offer_id
    'card_gold'
    """
    if not rows:
        return None
    # The same rows as ContactEvent.from_row, decoded inline: this runs on every decision, and the
    # per-row method call and enum call cost about as much as the rest of load() (~40 µs for 50 events).
    events = [
        ContactEvent(float(at), offer, group, channel, _OUTCOMES[outcome], decision_id)
        for at, offer, group, channel, outcome, decision_id in orjson.loads(b"[" + b",".join(rows[1:]) + b"]")
    ]
    # Rows are kept in arrival order; a late response may carry an earlier time than the row before it.
    return HistorySummary(tuple(sorted(events, key=_AT)))
