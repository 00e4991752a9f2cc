"""Volume budget counters: in process (the embedded default) and in Redis, shared by every replica.

Redis keeps one counter key per budget and period.

`reserve` and `release` are Lua scripts, so a reservation is a single atomic check-and-increment on the
server: 2,000 concurrent reservations against a limit of 100 give exactly 100 successes (contract test).
A counter expires `ttl_seconds` after its first reservation (set once, never extended), so a daily
budget's key (e.g. `budget:mortgage_call:2026-11-23`) cleans itself up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from features.redis_client import RedisClient

# KEYS[1] budget counter; ARGV[1] limit, ARGV[2] ttl in ms ('' for none). Takes one unit if fewer than the
# limit were taken; the expiry is set on first use only, so a period's budget resets when its key expires.
RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# KEYS[1] budget counter: gives back one unit, never below 0 (a release without a reservation is a no-op).
RELEASE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 then redis.call('DECR', KEYS[1]) end
return used
"""


class RedisBudgetCounter:
    """`BudgetCounter` on Redis; keys are stored under `{prefix}:b:`.

    >>> budgets = RedisBudgetCounter(redis_client(url))                               # doctest: +SKIP
    >>> await budgets.reserve("budget:mortgage_call:2026-11-23", 500, 2 * 86_400)     # doctest: +SKIP
    True
    """

    def __init__(self, client: RedisClient, *, prefix: str = "nbo") -> None:
        self.client = client
        self.prefix = f"{prefix}:b:"
        self._reserve = client.register_script(RESERVE)
        self._release = client.register_script(RELEASE)

    def key_for(self, key: str) -> str:
        # The whole budget key is the hash tag: each counter is its own slot on Redis Cluster.
        return f"{self.prefix}{{{key}}}"

    async def reserve(self, key: str, limit: int, ttl_seconds: float | None) -> bool:
        ttl_ms = "" if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        return bool(await self._reserve(keys=[self.key_for(key)], args=[limit, ttl_ms]))

    async def release(self, key: str) -> None:
        await self._release(keys=[self.key_for(key)])

    async def used(self, key: str) -> int:
        raw = await self.client.get(self.key_for(key))
        return int(raw) if raw is not None else 0

    async def ping(self) -> bool:
        return bool(await self.client.ping())


class InMemoryBudgetCounter:
    """`BudgetCounter` in a dict; a key's count starts afresh `ttl_seconds` after its first reservation.

    >>> import asyncio
    >>> budgets = InMemoryBudgetCounter()
    >>> [asyncio.run(budgets.reserve("b", limit=1, ttl_seconds=None)) for _ in range(2)]
    [True, False]
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._expires: dict[str, float] = {}

    def _current(self, key: str) -> int:
        deadline = self._expires.get(key)
        if deadline is not None and self._clock() >= deadline:
            del self._expires[key]
            self._counts.pop(key, None)
        return self._counts.get(key, 0)

    async def reserve(self, key: str, limit: int, ttl_seconds: float | None) -> bool:
        used = self._current(key)
        if used >= limit:
            return False
        self._counts[key] = used + 1
        if ttl_seconds is not None and key not in self._expires:
            self._expires[key] = self._clock() + ttl_seconds
        return True

    async def release(self, key: str) -> None:
        used = self._current(key)
        if used > 0:
            self._counts[key] = used - 1

    async def used(self, key: str) -> int:
        return self._current(key)
