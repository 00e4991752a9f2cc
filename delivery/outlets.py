"""The primary outlets (a Redis Stream; an in-process queue in the embedded mode) and the fan-out.

A primary outlet keeps the deliveries for readers: `read(after, limit)` pages through them oldest first
(`GET /v1/triggers/deliveries`, `nbo triggers read`). Ids are the stream's entry ids in Redis
("1764583200000-0") and a sequence number in process ("17"); `after` is the last id a reader has seen.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from decisioning.triggers import TriggerDelivery
from features.redis_client import RedisClient

Entry = tuple[str, dict[str, Any]]  # (id, the delivery as a dict)


class PrimaryOutlet(Protocol):
    name: str

    async def publish(self, delivery: TriggerDelivery) -> list[str]: ...

    async def read(self, after: str | None, limit: int) -> list[Entry]: ...

    async def close(self) -> None: ...


class InProcessDeliveries:
    """The embedded mode's queue: the last `maxlen` deliveries in memory (a restart forgets them; the
    decisions themselves are in the history)."""

    name = "queue"

    def __init__(self, maxlen: int = 10_000) -> None:
        self._entries: deque[tuple[int, dict[str, Any]]] = deque(maxlen=maxlen)
        self._ids = itertools.count(1)

    async def publish(self, delivery: TriggerDelivery) -> list[str]:
        self._entries.append((next(self._ids), delivery.to_dict()))
        return [self.name]

    async def read(self, after: str | None, limit: int) -> list[Entry]:
        last = _sequence(after)
        return [(str(i), d) for i, d in self._entries if i > last][:limit]

    async def close(self) -> None:
        return None


def _sequence(after: str | None) -> int:
    if after is None or after == "":
        return 0
    if not after.isdigit():
        raise ValueError(f"'{after}' is not a delivery id of the in-process queue (a whole number)")
    return int(after)


class RedisStreamDeliveries:
    """Deliveries on one Redis Stream, `{prefix}:triggers`, capped near `maxlen` entries (`XADD MAXLEN ~`).

    One key: every XADD and XRANGE touches that key alone, so it works unchanged on Redis Cluster. Each
    entry has the fields `delivery` (the JSON), `trigger`, `channel` and `customer_id`, so a consumer group
    can route without parsing.
    """

    name = "stream"

    def __init__(self, client: RedisClient, *, prefix: str = "nbo", maxlen: int = 100_000) -> None:
        self.client = client
        self.key = f"{prefix}:triggers"
        self.maxlen = maxlen

    async def publish(self, delivery: TriggerDelivery) -> list[str]:
        fields = {
            "delivery": orjson.dumps(delivery.to_dict()),
            "trigger": delivery.trigger,
            "channel": delivery.channel,
            "customer_id": delivery.customer_id,
        }
        await self.client.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
        return [self.name]

    async def read(self, after: str | None, limit: int) -> list[Entry]:
        start = f"({after}" if after else "-"
        rows = await self.client.xrange(self.key, min=start, max="+", count=limit)
        return [(_text(entry_id), orjson.loads(fields[b"delivery"])) for entry_id, fields in rows]

    async def close(self) -> None:
        return None  # the client is the cache's


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Secondary(Protocol):
    name: str

    def submit(self, delivery: TriggerDelivery) -> bool: ...

    async def close(self) -> None: ...


class FanOut:
    """The primary outlet (must accept: else `publish` raises), then each secondary one (a webhook: queued,
    delivered in the background; one that refuses is left out of the sinks returned)."""

    def __init__(self, primary: PrimaryOutlet, secondaries: Sequence[Secondary] = ()) -> None:
        self.primary = primary
        self.secondaries = tuple(secondaries)

    async def publish(self, delivery: TriggerDelivery) -> list[str]:
        sinks = await self.primary.publish(delivery)
        return sinks + [s.name for s in self.secondaries if s.submit(delivery)]

    async def read(self, after: str | None, limit: int) -> list[Entry]:
        return await self.primary.read(after, limit)

    async def close(self) -> None:
        for secondary in self.secondaries:
            await secondary.close()
        await self.primary.close()
