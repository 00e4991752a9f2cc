"""Trigger claims: at most once per customer, trigger and period. In process (the embedded default) and in
Redis, shared by every replica.

Redis: one key per (customer, trigger), `SET key 1 NX PX <period>`: the first replica to set it fires, every
other gets nothing until the key expires with its period. The key is hash-tagged by customer
(`{prefix}:tr:{<customer>}:<trigger>`), so on Redis Cluster a customer's claims sit on the slot of the
customer's features and summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from features.redis_client import RedisClient


class InMemoryTriggerClaims:
    """`TriggerClaims` in one process: expiry times in a dict, swept as they are read."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._until: dict[tuple[str, str], float] = {}

    async def claim(self, customer_id: str, trigger: str, period_seconds: float) -> bool:
        now = self.clock()
        if len(self._until) > 10_000:  # bounded: expired slots go before they pile up
            self._until = {k: u for k, u in self._until.items() if u > now}
        if self._until.get((customer_id, trigger), 0.0) > now:
            return False
        self._until[(customer_id, trigger)] = now + period_seconds
        return True

    async def release(self, customer_id: str, trigger: str) -> None:
        self._until.pop((customer_id, trigger), None)


class RedisTriggerClaims:
    """`TriggerClaims` on Redis (`SET NX PX`).

    >>> claims = RedisTriggerClaims(redis_client(url))                          # doctest: +SKIP
    >>> await claims.claim("c-000042", "competitor_transfer", 7 * 86_400)        # doctest: +SKIP
    True
    """

    def __init__(self, client: RedisClient, *, prefix: str = "nbo") -> None:
        self.client = client
        self.prefix = f"{prefix}:tr:"

    def key_for(self, customer_id: str, trigger: str) -> str:
        return f"{self.prefix}{{{customer_id}}}:{trigger}"

    async def claim(self, customer_id: str, trigger: str, period_seconds: float) -> bool:
        ms = max(1, int(period_seconds * 1000))
        return bool(await self.client.set(self.key_for(customer_id, trigger), b"1", nx=True, px=ms))

    async def release(self, customer_id: str, trigger: str) -> None:
        await self.client.delete(self.key_for(customer_id, trigger))
