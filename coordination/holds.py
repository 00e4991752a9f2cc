"""Customer holds on Redis (the `CustomerHolds` port of decisioning/ports.py): locked and loaded in one
round trip, appended and released in another.

- `service.holds.LockThenLoad` composes any `CustomerLock` and `CustomerCache` (the embedded default,
  tests): the same calls as before, one after the other.
- `RedisHolds` fuses them into two round trips to Redis: `LOCK_AND_LOAD` (SET NX PX + HGETALL + LRANGE)
  and `APPEND_AND_UNLOCK` (append + compare-and-delete), instead of four (lock, load, append, unlock).
  All keys carry the customer's hash tag, so each script runs on one Redis Cluster slot.
- `GuardedHolds` runs them through the Redis circuit breaker (a Redis down: `StoreUnavailable`, and the
  decision path decides degraded).

The lock is released at the append, before the history commit: the next decision for the customer reads
the presentations from the summary, which has them; a commit that then fails takes its own rows out of the
summary again (`CustomerCache.remove_events`), without touching what a decision made meanwhile appended.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from coordination.breaker import CircuitBreaker
from coordination.locks import RENEWAL_TASK, RedisCustomerLock
from decisioning.ports import CustomerHolds, CustomerSnapshot, Held, LockTimeout
from decisioning.types import ContactEvent
from features.redis_cache import RedisCustomerCache

log = logging.getLogger("nbo.locks")


class RedisHolds:
    """Lock and load in one Redis round trip, append and unlock in another (module docstring). It is the
    same lock as `RedisCustomerLock` (same key, token, lease, renewal and local queue), taken differently."""

    def __init__(self, locks: RedisCustomerLock, cache: RedisCustomerCache) -> None:
        self.locks, self.cache = locks, cache

    @asynccontextmanager
    async def hold(self, customer_id: str) -> AsyncIterator[Held]:
        # The process's own concurrent requests for the customer queue in memory, not by polling Redis.
        async with self.locks._local.hold(customer_id):
            key, token = self.locks.key(customer_id), secrets.token_hex(8)
            snapshot = await self._acquire(customer_id, key, token)
            released = asyncio.Event()
            renewal = asyncio.create_task(self.locks._keep(key, token, released), name=RENEWAL_TASK)

            def stop_renewing() -> None:
                released.set()
                renewal.cancel()

            async def append_and_release(events: Sequence[ContactEvent], now: float) -> None:
                stop_renewing()
                await self.cache.append_and_unlock(customer_id, events, now, key, token)

            async def release() -> None:
                stop_renewing()
                await self.locks._release(keys=[key], args=[token])

            held = Held(snapshot, append_and_release, release)
            try:
                yield held
            finally:
                await held.release()

    async def _acquire(self, customer_id: str, key: str, token: str) -> CustomerSnapshot:
        delay, waited = 0.0005, 0.0
        while (snapshot := await self.cache.lock_and_load(customer_id, key, token, self.locks.ttl_ms)) is None:
            if waited * 1000 >= self.locks.wait_ms:
                raise LockTimeout(f"customer lock {key} held for more than {self.locks.wait_ms} ms")
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.02)
        return snapshot


class GuardedHolds:
    """`RedisHolds` through the breaker: taking the hold or appending may raise `StoreUnavailable` (the
    decision path decides degraded; the recorder counts a failed append, as for `append_events`); the
    release at the end of the block never raises a store error (the lease expires by itself)."""

    def __init__(self, inner: CustomerHolds, breaker: CircuitBreaker, failures: tuple[type[BaseException], ...]):
        self.inner, self.breaker, self.failures = inner, breaker, failures

    @asynccontextmanager
    async def hold(self, customer_id: str) -> AsyncIterator[Held]:
        context = self.inner.hold(customer_id)
        held: Held = await self.breaker.call(context.__aenter__)

        async def append_and_release(events: Sequence[ContactEvent], now: float) -> None:
            await self.breaker.call(lambda: held.append_and_release(events, now))

        try:
            yield Held(held.snapshot, append_and_release, held.release)
        except BaseException as error:
            await self._exit(context, error)
            raise
        await self._exit(context, None)

    async def _exit(self, context: AbstractAsyncContextManager[Held], error: BaseException | None) -> None:
        try:
            await context.__aexit__(type(error) if error else None, error, error.__traceback__ if error else None)
        except self.failures as failure:
            if failure is error:
                raise
            log.warning("customer lock not released: it expires by itself", extra={"error": type(failure).__name__})
