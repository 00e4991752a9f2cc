"""The overnight batch's prescored offers in Redis: what degraded decisions show (`PrescoredFallback`).

Layout (written by the batch, read here and nowhere else):

| key | type | content |
| --- | --- | --- |
| `{prefix}:prescored:{customer_id}` | hash | field: channel; value: orjson `[[offer_id, priority], ...]` |

Best first. The hash tag `{customer_id}` puts it in the customer's Redis Cluster slot. The batch sets a TTL on it (its
next run replaces it); a missing key or channel is normal and reads as "nothing prescored".

>>> fallback = RedisPrescoredFallback(Redis(), prefix="nbo")   # doctest: +SKIP
>>> await fallback.top("c-000042", "web", 2)                    # doctest: +SKIP
[PrescoredOffer(offer_id='savings_plus', priority=3.2)]
"""

from __future__ import annotations

import logging

import orjson
from redis.asyncio import Redis

from decisioning.ports import PrescoredOffer

log = logging.getLogger("nbo.prescored")


class RedisPrescoredFallback:
    """`PrescoredFallback` on the layout above: one HGET per degraded decision."""

    def __init__(self, client: Redis, *, prefix: str = "nbo") -> None:
        self.client = client
        self.prefix = f"{prefix}:prescored:"

    def key(self, customer_id: str) -> str:
        return f"{self.prefix}{{{customer_id}}}"

    async def top(self, customer_id: str, channel: str, n: int) -> list[PrescoredOffer]:
        raw = await self.client.hget(self.key(customer_id), channel)
        return decode_prescored(raw)[:n] if raw else []

    async def put(self, customer_id: str, channel: str, offers: list[PrescoredOffer], ttl_seconds: int) -> None:
        """Write one customer's list for one channel (what the batch does; used by tests and tools)."""
        key = self.key(customer_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, channel, orjson.dumps([[o.offer_id, o.priority] for o in offers]))
            pipe.expire(key, ttl_seconds)
            await pipe.execute()


def decode_prescored(raw: bytes) -> list[PrescoredOffer]:
    """A channel's list; a value this code cannot read is logged and read as empty (a fallback must not fail).

    >>> decode_prescored(b'[["savings_plus", 3.2]]')
    [PrescoredOffer(offer_id='savings_plus', priority=3.2)]
    """
    try:
        return [PrescoredOffer(str(offer), float(priority)) for offer, priority in orjson.loads(raw)]
    except (ValueError, TypeError) as error:
        log.warning("unreadable prescored offers ignored", extra={"error": type(error).__name__})
        return []


class NoPrescoredFallback:
    """No batch: nothing prescored (the embedded mode)."""

    async def top(self, customer_id: str, channel: str, n: int) -> list[PrescoredOffer]:
        return []
